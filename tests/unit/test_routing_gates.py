"""Quality gates: heuristic, format (JSON / schema / truncation), logprob, judge, combinators."""

from __future__ import annotations

import pytest

from thrifty.routing.answer_features import answer_features, check_arithmetic
from thrifty.routing.gates import AllGates, Answer, AnyGate, FormatGate, HeuristicGate, LogprobGate
from thrifty.routing.judge import JudgeGate, parse_grade

REQ = {"model": "m", "messages": [{"role": "user", "content": "q"}]}


def response(content: str, finish: str = "stop", logprobs: list[float] | None = None) -> dict:
    choice: dict = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}
    if logprobs is not None:
        choice["logprobs"] = {"content": [{"token": "t", "logprob": lp} for lp in logprobs]}
    return {"choices": [choice]}


async def test_heuristic_gate():
    gate = HeuristicGate(min_chars=3)
    assert (await gate.check(Answer.of(REQ, response("Paris is the capital.")))).ok
    assert not (await gate.check(Answer.of(REQ, response("I don't know the answer")))).ok
    assert not (await gate.check(Answer.of(REQ, response("ok")))).ok
    assert not (await gate.check(Answer.of(REQ, response("As an AI, I cannot do that")))).ok


async def test_format_gate_empty_truncated_and_json():
    gate = FormatGate()
    assert not (await gate.check(Answer.of(REQ, response("  ")))).ok
    verdict = await gate.check(Answer.of(REQ, response("long text", finish="length")))
    assert not verdict.ok and "length" in verdict.reason
    json_req = {**REQ, "response_format": {"type": "json_object"}}
    assert (await gate.check(Answer.of(json_req, response('{"a": 1}')))).ok
    assert not (await gate.check(Answer.of(json_req, response("{'a': 1}")))).ok
    assert not (await gate.check(Answer.of(json_req, response("[1, 2]")))).ok


async def test_format_gate_json_schema():
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    req = {**REQ, "response_format": {"type": "json_schema", "json_schema": {"name": "p", "schema": schema}}}
    gate = FormatGate()
    assert (await gate.check(Answer.of(req, response('{"name": "a", "age": 3, "tags": ["x"]}')))).ok
    bad = await gate.check(Answer.of(req, response('{"name": "a", "age": "3"}')))
    assert not bad.ok and "$.age" in bad.reason
    assert not (await gate.check(Answer.of(req, response('{"name": "a"}')))).ok
    assert not (await gate.check(Answer.of(req, response('{"name": "a", "age": 1, "x": 0}')))).ok
    assert not (await gate.check(Answer.of(req, response('{"name": "a", "age": true}')))).ok


async def test_logprob_gate():
    gate = LogprobGate(min_confidence=0.8)
    assert (await gate.check(Answer.of(REQ, response("a", logprobs=[-0.01, -0.05])))).ok
    low = await gate.check(Answer.of(REQ, response("a", logprobs=[-1.0, -2.0])))
    assert not low.ok and low.score == pytest.approx(0.2231, abs=1e-3)
    unknown = await gate.check(Answer.of(REQ, response("a")))
    assert unknown.ok and "not judged" in unknown.reason


async def test_combinators():
    both = AllGates([FormatGate(), HeuristicGate()])
    assert (await both.check(Answer.of(REQ, response("A fine answer.")))).ok
    failed = await both.check(Answer.of(REQ, response("I don't know.")))
    assert not failed.ok and failed.reason.startswith("heuristic")
    either = AnyGate([LogprobGate(0.99), HeuristicGate()])
    assert (await either.check(Answer.of(REQ, response("Fine.", logprobs=[-3.0])))).ok
    assert not (await AnyGate([FormatGate()]).check(Answer.of(REQ, response("")))).ok


async def test_judge_gate_grades_through_its_connection():
    asked: list[tuple[str, str]] = []

    async def ask(model: str, messages: list[dict[str, str]]) -> str:
        asked.append((model, messages[0]["content"]))
        return "Grade: 8"

    answer = Answer.of(REQ, response("42"))
    answer.ask = ask
    verdict = await JudgeGate("cheap", min_score=7).check(answer)
    assert verdict.ok and verdict.score == 0.8 and asked[0][0] == "cheap" and "42" in asked[0][1]
    assert not (await JudgeGate("cheap", min_score=9).check(answer)).ok
    assert not (await JudgeGate("cheap").check(Answer.of(REQ, response("42")))).ok  # no connection


def test_parse_grade():
    assert parse_grade("10") == 10.0 and parse_grade("I'd say 3/10") == 3.0 and parse_grade("none") is None


def test_arithmetic_check_counts_wrong_results():
    assert check_arithmetic("3 x 60 = <<3*60=180>>180 and 180 * 3 = 541") == (2, 1)
    assert check_arithmetic("10 / 3 = 3.33") == (1, 0)
    assert check_arithmetic("no maths here") == (0, 0)
    good = answer_features("How many?", "2 + 2 = 4\n#### 4")
    bad = answer_features("How many?", "2 + 2 = 5\n#### 5")
    assert good[6] == 0 and bad[6] > 0  # wrong_equations
