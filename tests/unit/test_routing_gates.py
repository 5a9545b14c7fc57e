"""Quality gates: heuristic, format (JSON / schema / truncation), logprob, judge, combinators."""

from __future__ import annotations

import pytest

from thrifty.routing.answer_features import answer_features, check_arithmetic
from thrifty.routing.gates import (
    AllGates,
    Answer,
    AnyGate,
    FormatGate,
    HeuristicGate,
    LogprobGate,
    check_choices,
)
from thrifty.routing.judge import JudgeGate, parse_grade

REQ = {"model": "m", "messages": [{"role": "user", "content": "q"}]}


def one(request: dict, response: dict) -> Answer:
    """The answer of a one-choice response."""
    [answer] = Answer.each(request, response)
    return answer


def response(content: str, finish: str = "stop", logprobs: list[float] | None = None) -> dict:
    choice: dict = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}
    if logprobs is not None:
        choice["logprobs"] = {"content": [{"token": "t", "logprob": lp} for lp in logprobs]}
    return {"choices": [choice]}


async def test_heuristic_gate():
    gate = HeuristicGate(min_chars=3)
    assert (await gate.check(one(REQ, response("Paris is the capital.")))).ok
    assert not (await gate.check(one(REQ, response("I don't know the answer")))).ok
    assert not (await gate.check(one(REQ, response("ok")))).ok
    assert not (await gate.check(one(REQ, response("As an AI, I cannot do that")))).ok


async def test_format_gate_empty_truncated_and_json():
    gate = FormatGate()
    assert not (await gate.check(one(REQ, response("  ")))).ok
    verdict = await gate.check(one(REQ, response("long text", finish="length")))
    assert not verdict.ok and "length" in verdict.reason
    json_req = {**REQ, "response_format": {"type": "json_object"}}
    assert (await gate.check(one(json_req, response('{"a": 1}')))).ok
    assert not (await gate.check(one(json_req, response("{'a': 1}")))).ok
    assert not (await gate.check(one(json_req, response("[1, 2]")))).ok


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
    assert (await gate.check(one(req, response('{"name": "a", "age": 3, "tags": ["x"]}')))).ok
    bad = await gate.check(one(req, response('{"name": "a", "age": "3"}')))
    assert not bad.ok and "$.age" in bad.reason
    assert not (await gate.check(one(req, response('{"name": "a"}')))).ok
    assert not (await gate.check(one(req, response('{"name": "a", "age": 1, "x": 0}')))).ok
    assert not (await gate.check(one(req, response('{"name": "a", "age": true}')))).ok


async def test_logprob_gate():
    gate = LogprobGate(min_confidence=0.8)
    assert (await gate.check(one(REQ, response("a", logprobs=[-0.01, -0.05])))).ok
    low = await gate.check(one(REQ, response("a", logprobs=[-1.0, -2.0])))
    assert not low.ok and low.score == pytest.approx(0.2231, abs=1e-3)
    unknown = await gate.check(one(REQ, response("a")))
    assert unknown.ok and "not judged" in unknown.reason


async def test_combinators():
    both = AllGates([FormatGate(), HeuristicGate()])
    assert (await both.check(one(REQ, response("A fine answer.")))).ok
    failed = await both.check(one(REQ, response("I don't know.")))
    assert not failed.ok and failed.reason.startswith("heuristic")
    either = AnyGate([LogprobGate(0.99), HeuristicGate()])
    assert (await either.check(one(REQ, response("Fine.", logprobs=[-3.0])))).ok
    assert not (await AnyGate([FormatGate()]).check(one(REQ, response("")))).ok


async def test_judge_gate_grades_through_its_connection():
    asked: list[tuple[str, str]] = []

    async def ask(model: str, messages: list[dict[str, str]]) -> str:
        asked.append((model, messages[0]["content"]))
        return "Grade: 8"

    answer = one(REQ, response("42"))
    answer.ask = ask
    verdict = await JudgeGate("cheap", min_score=7).check(answer)
    assert verdict.ok and verdict.score == 0.8 and asked[0][0] == "cheap" and "42" in asked[0][1]
    assert not (await JudgeGate("cheap", min_score=9).check(answer)).ok
    assert not (await JudgeGate("cheap").check(one(REQ, response("42")))).ok  # no connection


def test_parse_grade():
    assert parse_grade("10") == 10.0 and parse_grade("I'd say 3/10") == 3.0 and parse_grade("none") is None


def test_arithmetic_check_counts_wrong_results():
    assert check_arithmetic("3 x 60 = <<3*60=180>>180 and 180 * 3 = 541") == (2, 1)
    assert check_arithmetic("10 / 3 = 3.33") == (1, 0)
    assert check_arithmetic("no maths here") == (0, 0)
    good = answer_features("How many?", "2 + 2 = 4\n#### 4")
    bad = answer_features("How many?", "2 + 2 = 5\n#### 5")
    assert good[6] == 0 and bad[6] > 0  # wrong_equations


# --- what a gate reads -------------------------------------------------------------------------

PARTS_REQ = {
    "model": "m",
    "messages": [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
        {
            "role": "user",
            "content": [{"type": "text", "text": "Capital of"}, {"type": "text", "text": "France?"}],
        },
    ],
}


def test_the_prompt_is_the_last_user_turn_even_in_content_parts():
    assert one(PARTS_REQ, response("Paris")).prompt == "Capital of\nFrance?"
    image_only = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}
    assert one({"messages": [*PARTS_REQ["messages"], image_only]}, response("A cat")).prompt == ""
    assert one({"messages": []}, response("hi")).prompt == ""


async def test_the_judge_grades_the_question_sent_in_content_parts():
    asked: list[str] = []

    async def ask(model: str, messages: list[dict[str, str]]) -> str:
        asked.append(messages[0]["content"])
        return "9"

    answer = one(PARTS_REQ, response("Paris."))
    answer.ask = ask
    assert (await JudgeGate("cheap").check(answer)).ok
    request = asked[0].split("### Answer")[0]
    assert "Capital of\nFrance?" in request and "2+2" not in request


async def test_the_learned_gate_scores_the_question_sent_in_content_parts():
    import numpy as np

    from thrifty.routing.learned_gate import GateFeaturizer, GateModel, LearnedGate

    width = GateFeaturizer([]).matrix(["q"], ["a"], [None], None).shape[1]
    weights = np.random.default_rng(3).normal(size=width).astype(np.float32)
    gate = LearnedGate(GateModel(weights=weights, use_embedding=False))
    verdict = await gate.check(one(PARTS_REQ, response("Paris.")))
    assert verdict.score == pytest.approx(gate.probability("Capital of\nFrance?", "Paris.", "m"))
    assert verdict.score != pytest.approx(gate.probability("What is 2+2?", "Paris.", "m"))


# --- tool calls under response_format -----------------------------------------------------------


def tool_call_response(arguments: str = '{"city": "Paris"}', content: str | None = None) -> dict:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": arguments}}
    message = {"role": "assistant", "content": content, "tool_calls": [call]}
    return {"choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]}


@pytest.mark.parametrize(
    "fmt",
    [
        {"type": "json_object"},
        {
            "type": "json_schema",
            "json_schema": {"name": "w", "schema": {"type": "object", "required": ["t"]}},
        },
    ],
    ids=["json_object", "json_schema"],
)
async def test_a_tool_call_answer_passes_the_json_check(fmt):
    request = {**REQ, "response_format": fmt}
    gate = FormatGate()
    assert (await gate.check(one(request, tool_call_response()))).ok
    assert (await gate.check(one(request, tool_call_response(arguments="not json: the tool's business")))).ok
    prose = await gate.check(one(request, tool_call_response(content="Let me look that up.")))
    assert not prose.ok and "not valid JSON" in prose.reason  # content beside the calls is still checked
    truncated = one(request, {"choices": [{**tool_call_response()["choices"][0], "finish_reason": "length"}]})
    assert not (await gate.check(truncated)).ok


async def test_graders_still_read_the_tool_calls():
    answer = one(REQ, tool_call_response())
    assert answer.text == 'get_weather{"city": "Paris"}' and answer.message == "" and answer.tool_calls == 1
    assert (await HeuristicGate(min_chars=5).check(answer)).ok


# --- every choice of an n > 1 answer ------------------------------------------------------------


def choices(*specs: tuple[str, str, list[float] | None]) -> dict:
    out = []
    for i, (content, finish, logprobs) in enumerate(specs):
        choice = response(content, finish, logprobs)["choices"][0]
        out.append({**choice, "index": i})
    return {"choices": out}


async def test_every_choice_is_checked_by_each_kind_of_gate():
    json_req = {**REQ, "response_format": {"type": "json_object"}}
    good = ('{"answer": 4}', "stop", [-0.01])
    cut = check_choices(FormatGate(), Answer.each(json_req, choices(good, ('{"answ', "length", None))))
    verdict = await cut
    assert not verdict.ok and verdict.reason.startswith("choice 1: answer cut off")
    hedged = Answer.each(REQ, choices(good, ("I don't know, sorry.", "stop", None)))
    assert not (await check_choices(HeuristicGate(), hedged)).ok
    unsure = Answer.each(REQ, choices(good, ("4", "stop", [-3.0, -2.0])))
    verdict = await check_choices(LogprobGate(0.8), unsure)
    assert not verdict.ok and verdict.reason.startswith("choice 1: mean token probability")
    both = await check_choices(
        AllGates([FormatGate(), LogprobGate(0.5)]), Answer.each(json_req, choices(good, good))
    )
    assert both.ok


async def test_the_judge_grades_each_choice_and_stops_at_the_first_failure():
    grades = iter(["9", "3", "9"])
    asked: list[str] = []

    async def ask(model: str, messages: list[dict[str, str]]) -> str:
        asked.append(messages[0]["content"])
        return next(grades)

    answers = Answer.each(
        REQ, choices(("Paris", "stop", None), ("Lyon", "stop", None), ("Nice", "stop", None))
    )
    for answer in answers:
        answer.ask = ask
    verdict = await check_choices(JudgeGate("cheap", min_score=7), answers)
    assert not verdict.ok and verdict.reason == "choice 1: judge grade 3/10"
    assert len(asked) == 2 and "Lyon" in asked[1]  # the third choice was not graded


async def test_passing_choices_report_the_weakest():
    answers = Answer.each(REQ, choices(("a", "stop", [-0.01]), ("b", "stop", [-0.1]), ("c", "stop", [-0.05])))
    verdict = await check_choices(LogprobGate(0.8), answers)
    assert verdict.ok and verdict.score == pytest.approx(0.905, abs=1e-3)
    assert verdict.reason == "choice 1: mean token probability 0.905"
    [single] = Answer.each(REQ, choices(("a", "stop", None)))
    assert (await check_choices(FormatGate(), [single])).reason == "ok"


# --- what a passing combination says ------------------------------------------------------------


async def test_all_gates_keep_the_reasons_of_passing_gates():
    unjudged = await AllGates([FormatGate(), LogprobGate(0.8)]).check(one(REQ, response("A fine answer.")))
    assert unjudged.ok and unjudged.score == 1.0
    assert unjudged.reason == "logprob: no logprobs returned: not judged"
    judged = await AllGates([LogprobGate(0.5), FormatGate()]).check(
        one(REQ, response("Fine.", logprobs=[-0.1]))
    )
    assert judged.ok and judged.reason == "logprob: mean token probability 0.905"
    assert (await AllGates([FormatGate(), HeuristicGate()]).check(one(REQ, response("Fine.")))).reason == "ok"


# --- hedges start at a word ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "The API cannot be called twice; cache the token instead.",
        "Taxis in Hawaii don't know the shortcut, so walk.",
        "Your Wi-Fi can't help if the router is down; restart it.",
        "Wasabi cannot be grown in dry soil.",
    ],
)
async def test_words_ending_in_i_are_not_hedges(text):
    assert (await HeuristicGate().check(one(REQ, response(text)))).ok


@pytest.mark.parametrize(
    "text", ["I can't help with that.", "Sorry, I don't know.", "Honestly, i'm not sure.", "(I cannot say.)"]
)
async def test_hedges_are_still_caught(text):
    verdict = await HeuristicGate().check(one(REQ, response(text)))
    assert not verdict.ok and "hedges" in verdict.reason
