"""Cascades and hints at their edges, through `thrifty serve` + the fake provider: tiers that cannot
express a request, attempts counted across tiers and judges, what gates read and record, and
thrifty-only fields never reaching a provider."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import base_config, ledger_rows

pytestmark = pytest.mark.e2e

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"  # the fake's Anthropic endpoint


def cascade_config(fake, tiers: list[str], gates: list[dict[str, Any]], **models: Any) -> dict:
    config = base_config(fake)
    config["models"]["claude-haiku-4-5"] = {"deployments": [{"provider": "fakeanthropic"}]}
    config["models"]["shaky"] = {
        "price": "gpt-4o-mini",
        "deployments": [{"provider": "fakeai", "model": "shaky-up"}],
    }
    config["models"].update(models)
    config["routing"] = {"virtual_models": {"v/c": {"cascade": {"tiers": tiers, "gates": gates}}}}
    return config


def chat(gw, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(gw.base_url + "/chat/completions", json=body, headers=headers or {}, timeout=30)


def ask(text: str = "hi", **fields: Any) -> dict[str, Any]:
    return {"model": "v/c", "messages": [{"role": "user", "content": text}], **fields}


def rows(gw, response: httpx.Response, expect: int) -> list[dict[str, Any]]:
    return ledger_rows(gw.ledger_path, expect=expect, request_id=response.headers["x-request-id"])


# --- a tier that cannot express the request ----------------------------------------------------


def test_a_tier_that_cannot_take_n_2_is_skipped_not_fatal(gateway_factory, fake):
    gw = gateway_factory(
        cascade_config(fake, ["gpt-4o-mini", "claude-haiku-4-5", "gpt-4o"], [{"type": "format"}])
    )
    fake.script({"content": ""}, model="gpt-4o-mini")  # tier 1 rejected: the request escalates
    resp = chat(gw, ask(n=2))
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-thrifty-route"] == "cascade:tier3" and resp.headers["x-thrifty-model"] == "gpt-4o"
    assert len(resp.json()["choices"]) == 2
    assert fake.requests(MESSAGES) == []  # the Anthropic tier was never called
    booked = rows(gw, resp, 2)
    assert [(r["status"], r["served_model"]) for r in booked] == [
        ("rejected", "gpt-4o-mini"),
        ("ok", "gpt-4o"),
    ]
    skipped = orjson.loads(booked[-1]["meta"])["cascade_skipped"]
    assert list(skipped) == ["claude-haiku-4-5"] and "n must be 1" in skipped["claude-haiku-4-5"]
    assert resp.headers["x-thrifty-attempts"] == "2"
    assert float(resp.headers["x-thrifty-cost-usd"]) == pytest.approx(sum(r["cost_usd"] for r in booked))


def test_without_a_tier_for_the_request_it_is_refused_before_any_call(gateway_factory, fake):
    gw = gateway_factory(
        cascade_config(fake, ["claude-haiku-4-5", "claude-sonnet-4-5"], [{"type": "format"}])
    )
    resp = chat(gw, ask(n=2))
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "n"
    assert fake.requests() == []


def test_the_last_tier_that_can_take_the_request_answers_ungated(gateway_factory, fake):
    gw = gateway_factory(cascade_config(fake, ["gpt-4o-mini", "claude-sonnet-4-5"], [{"type": "heuristic"}]))
    fake.script({"content": "I don't know."}, model="gpt-4o-mini")  # would fail the gate were it gated
    resp = chat(gw, ask(n=2))
    assert resp.status_code == 200 and resp.headers["x-thrifty-route"] == "cascade:tier1"
    assert resp.json()["choices"][0]["message"]["content"] == "I don't know."
    assert len(fake.requests(CHAT)) == 1 and fake.requests(MESSAGES) == []


def test_a_tier_refusing_the_messages_is_skipped_when_called(gateway_factory, fake):
    gw = gateway_factory(cascade_config(fake, ["claude-haiku-4-5", "gpt-4o"], [{"type": "format"}]))
    audio = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
    body = {
        "model": "v/c",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, audio]}],
    }
    resp = chat(gw, body)  # Anthropic's translation refuses audio parts: found only when the tier is called
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-thrifty-route"] == "cascade:tier2" and fake.requests(MESSAGES) == []
    [final] = rows(gw, resp, 1)
    assert "input_audio" in orjson.loads(final["meta"])["cascade_skipped"]["claude-haiku-4-5"]
    assert resp.headers["x-thrifty-attempts"] == "1"


# --- x-thrifty-attempts: every upstream call ----------------------------------------------------


def test_attempts_count_a_tier_that_failed_upstream(gateway_factory, fake):
    gw = gateway_factory(cascade_config(fake, ["shaky", "gpt-4o"], [{"type": "format"}]))
    fake.script({"status": 500}, {"status": 500}, {"status": 500}, model="shaky-up")  # 1 try + 2 retries
    calls = len(fake.requests(CHAT))
    resp = chat(gw, ask())
    assert resp.status_code == 200 and resp.headers["x-thrifty-route"] == "cascade:tier2"
    made = len(fake.requests(CHAT)) - calls
    assert made == 4 and resp.headers["x-thrifty-attempts"] == "4"
    assert [r["status"] for r in rows(gw, resp, 4)] == ["error", "error", "error", "ok"]


@pytest.mark.parametrize(
    ("judge_replies", "made", "route"),
    [
        ([{"status": 500}, {"content": "9"}], 3, "cascade:tier1"),  # tier + the judge's two attempts
        ([{"status": 500}] * 3, 5, "cascade:tier2"),  # tier + three failed judge attempts + tier 2
    ],
    ids=["judge-retried", "judge-failed"],
)
def test_attempts_count_every_judge_call(gateway_factory, fake, judge_replies, made, route):
    gates = [{"type": "judge", "model": "shaky", "min_score": 7}]
    gw = gateway_factory(cascade_config(fake, ["gpt-4o-mini", "gpt-4o"], gates))
    fake.script(*judge_replies, model="shaky-up")
    calls = len(fake.requests(CHAT))
    resp = chat(gw, ask("Capital of France?"))
    assert resp.status_code == 200 and resp.headers["x-thrifty-route"] == route
    assert len(fake.requests(CHAT)) - calls == made
    assert resp.headers["x-thrifty-attempts"] == str(made) and len(rows(gw, resp, made)) == made


# --- what the gates read and record -------------------------------------------------------------


def test_the_judge_grades_the_last_question_sent_in_content_parts(gateway_factory, fake):
    gates = [{"type": "judge", "model": "gpt-4o-mini", "min_score": 7}]
    gw = gateway_factory(cascade_config(fake, ["gpt-4o-mini", "gpt-4o"], gates))
    fake.script({"content": "The capital of France is Paris."}, {"content": "9"}, model="gpt-4o-mini")
    messages = [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": [{"type": "text", "text": "What is the capital of France?"}]},
    ]
    resp = chat(gw, {"model": "v/c", "messages": messages})
    assert resp.headers["x-thrifty-route"] == "cascade:tier1"
    graded = fake.requests(CHAT)[-1]["body"]["messages"][0]["content"]
    request = graded.split("### Answer")[0]
    assert "capital of France" in request and "2+2" not in request


def test_a_tool_call_answer_passes_the_format_gate_under_json_mode(gateway_factory, fake):
    gw = gateway_factory(cascade_config(fake, ["gpt-4o-mini", "gpt-4o"], [{"type": "format"}]))
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
    }
    fake.script({"tool_calls": [call]}, model="gpt-4o-mini")
    tool = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}
    resp = chat(gw, ask("Weather in Paris, as JSON", tools=[tool], response_format={"type": "json_object"}))
    assert resp.headers["x-thrifty-route"] == "cascade:tier1"
    assert resp.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "weather"


def test_the_ledger_says_the_logprob_gate_did_not_judge(gateway_factory, fake):
    gates = [{"type": "format"}, {"type": "logprob", "min_confidence": 0.8}]
    gw = gateway_factory(cascade_config(fake, ["claude-haiku-4-5", "gpt-4o"], gates))
    resp = chat(gw, ask())  # an Anthropic tier returns no logprobs: the gate cannot judge, and passes
    assert resp.headers["x-thrifty-route"] == "cascade:tier1"
    [final] = rows(gw, resp, 1)
    assert orjson.loads(final["meta"])["gate"] == "logprob: no logprobs returned: not judged"


# --- thrifty-only fields ------------------------------------------------------------------------


def test_thrifty_metadata_never_reaches_the_provider_without_virtual_models(gateway_factory, fake):
    gw = gateway_factory(base_config(fake))
    metadata = {"thrifty_task": "code", "thrifty_quality_target": "0.9", "team": "a"}
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "metadata": metadata}
    assert chat(gw, {**body, "thrifty": {"task": "code"}}).status_code == 200
    assert fake.requests(CHAT)[-1]["body"]["metadata"] == {"team": "a"}
    assert "thrifty" not in fake.requests(CHAT)[-1]["body"]
    only = {**body, "metadata": {"thrifty_task": "code"}}
    assert chat(gw, only).status_code == 200
    assert "metadata" not in fake.requests(CHAT)[-1]["body"]


@pytest.mark.parametrize("given", ["code", ["nocache"]])
def test_a_hint_header_does_not_hide_a_bad_thrifty_field(gateway_factory, fake, given):
    config = cascade_config(fake, ["gpt-4o-mini", "gpt-4o"], [{"type": "format"}])
    gw = gateway_factory(config)
    for headers in ({}, {"x-thrifty-route-task": "code"}, {"x-thrifty-quality-target": "0.5"}):
        resp = chat(gw, ask(thrifty=given), headers)
        assert resp.status_code == 400, (headers, resp.text)
        assert resp.json()["error"]["param"] == "thrifty"
    assert fake.requests() == []
