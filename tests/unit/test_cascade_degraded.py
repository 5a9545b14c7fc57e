"""A cascade whose final tier fails upstream serves a rejected tier's answer fit to stand in (library
mode, fake provider upstream); which answers are fit, which failures allow it, how it is booked.

Tiers `gpt-4o-mini → gpt-4.1-mini → shaky` (shaky: the fake's `shaky-up`, scripted to fail), gated
by the heuristic and format gates."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import base_config, ledger_rows
from thrifty import config as config_mod
from thrifty.errors import UpstreamError
from thrifty.gateway import Gateway
from thrifty.routing.degraded import degradable, unfit
from thrifty.types import Body

GATES = [{"type": "format"}, {"type": "heuristic"}]
FAIL = [{"status": 500}] * 3  # one try and two retries
HEDGE = "I don't know, but probably 4."


def config(fake: Any, tmp_path: Path, tiers: list[str]) -> dict[str, Any]:
    cfg = base_config(fake)
    cfg["models"]["gpt-4.1-mini"] = {"deployments": [{"provider": "fakeai"}]}
    cfg["models"]["shaky"] = {"price": "gpt-4o", "deployments": [{"provider": "fakeai", "model": "shaky-up"}]}
    cfg["ledger"] = {"path": str(tmp_path / "ledger.db"), "flush_interval_ms": 5}
    cfg["routing"] = {"virtual_models": {"v/c": {"cascade": {"tiers": tiers, "gates": GATES}}}}
    return cfg


def ask(**fields: Any) -> Body:
    return {"model": "v/c", "messages": [{"role": "user", "content": "What is 2 + 2?"}], **fields}


def rows(tmp_path: Path) -> list[dict[str, Any]]:
    return ledger_rows(tmp_path / "ledger.db")


async def run(fake: Any, tmp_path: Path, tiers: list[str], body: Body, *, stream: bool = False) -> Any:
    parsed = config_mod.parse(config(fake, tmp_path, tiers), env={})
    async with Gateway(parsed) as gw:
        if not stream:
            return await gw.chat(body)
        replayed = await gw.chat_stream(body)
        return replayed, [chunk async for chunk in replayed]


# --- which answers may stand in, which failures allow it -------------------------------------------


def answer(content: Any, finish: str | None = "stop", **message: Any) -> Body:
    return {
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, **message},
                "finish_reason": finish,
            }
        ]
    }


CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
JSON = {"messages": [{"role": "user", "content": "as JSON"}], "response_format": {"type": "json_object"}}


@pytest.mark.parametrize(
    ("request_", "response", "stream", "why"),
    [
        ({}, answer(HEDGE), False, None),  # rejected for its quality: fit
        ({}, answer("4"), True, None),
        ({}, answer(None, "tool_calls", tool_calls=[CALL]), True, None),
        (JSON, answer('{"a": 1}'), False, None),
        ({}, answer(""), False, "empty answer"),
        ({}, answer("   "), False, "empty answer"),
        ({}, answer("The answer is", "length"), False, "answer cut off (finish_reason=length)"),
        ({}, answer("4", None), False, "unfinished answer"),
        ({}, answer("4", "content_filter"), False, "answer cut by the content filter"),
        ({}, {"choices": []}, False, "no choices"),
        (JSON, answer('{"a": '), False, "answer is not valid JSON"),
        (JSON, answer("[1]"), False, "answer is JSON but not an object"),
        ({}, answer(None, refusal="I can't help with that."), False, "empty answer"),
        ({}, answer("4", audio={"id": "a1"}), True, "answer cannot be replayed to a stream"),
        ({}, answer("4", audio={"id": "a1"}), False, None),
    ],
)
async def test_which_rejected_answers_are_fit_to_stand_in(request_, response, stream, why):
    assert await unfit(request_, response, stream=stream) == why


async def test_a_second_choice_cut_off_makes_the_answer_unfit():
    response = answer("4")
    response["choices"].append({"index": 1, "message": {"content": "The"}, "finish_reason": "length"})
    assert await unfit({}, response, stream=False) == "choice 1: answer cut off (finish_reason=length)"


@pytest.mark.parametrize(
    ("error", "ok"),
    [
        (UpstreamError("HTTP 500", upstream_status=500), True),
        (UpstreamError("HTTP 429", upstream_status=429, status=429), True),
        (UpstreamError("timeout", status=504, code="upstream_timeout"), True),
        (UpstreamError("no healthy deployment", status=503, code="no_healthy_deployment"), True),
        (UpstreamError("bad request", upstream_status=400, status=400, code="upstream_bad_request"), False),
    ],
)
def test_only_the_providers_failures_let_a_held_answer_stand_in(error, ok):
    assert degradable(error) is ok


# --- through a Gateway ---------------------------------------------------------------------------


async def test_the_rejected_answer_is_served_when_the_final_tier_fails(fake, tmp_path):
    fake.script({"content": HEDGE}, model="gpt-4o-mini")
    fake.script(*FAIL, model="shaky-up")
    result = await run(fake, tmp_path, ["gpt-4o-mini", "shaky"], ask())
    assert result.body["choices"][0]["message"]["content"] == HEDGE
    assert result.served_model == "gpt-4o-mini"
    assert result.headers["x-thrifty-cascade"] == "degraded"
    assert result.headers["x-thrifty-route"] == "cascade:tier1"
    assert result.storable is False and result.attempts == 4
    booked = rows(tmp_path)
    assert [(r["status"], r["served_model"], r["final"]) for r in booked] == [
        ("rejected", "gpt-4o-mini", 0),
        ("error", "shaky", 0),
        ("error", "shaky", 0),
        ("error", "shaky", 0),
        ("ok", "gpt-4o-mini", 1),
    ]
    final = booked[-1]
    assert final["route"] == "cascade:tier1" and final["cost_usd"] == 0
    assert final["input_tokens"] == 0 and final["output_tokens"] == 0  # they are on the rejected row
    assert result.cost_usd == pytest.approx(sum(r["cost_usd"] for r in booked)) and result.cost_usd > 0
    savings = sum(final[c] for c in final if c.startswith("saved_"))
    assert final["baseline_cost_usd"] > 0 and savings == pytest.approx(final["baseline_cost_usd"])
    degraded = orjson.loads(final["meta"])["cascade_degraded"]
    assert degraded["tier"] == 1 and degraded["failed_tier"] == 2
    assert "hedges" in degraded["rejected"] and "HTTP 500" in degraded["error"]
    assert [r["route"] for r in booked[1:4]] == ["cascade:tier2"] * 3


async def test_the_last_fit_answer_is_served_past_an_unfit_one(fake, tmp_path):
    fake.script({"content": HEDGE}, model="gpt-4o-mini")
    fake.script({"content": "Four, because", "finish_reason": "length"}, model="gpt-4.1-mini")
    fake.script(*FAIL, model="shaky-up")
    result = await run(fake, tmp_path, ["gpt-4o-mini", "gpt-4.1-mini", "shaky"], ask())
    assert result.served_model == "gpt-4o-mini" and result.headers["x-thrifty-route"] == "cascade:tier1"
    degraded = orjson.loads(rows(tmp_path)[-1]["meta"])["cascade_degraded"]
    assert degraded["tier"] == 1 and degraded["failed_tier"] == 3


async def test_a_later_fit_answer_is_preferred(fake, tmp_path):
    fake.script({"content": HEDGE}, model="gpt-4o-mini")
    fake.script({"content": "I'm not sure: 4."}, model="gpt-4.1-mini")
    fake.script(*FAIL, model="shaky-up")
    result = await run(fake, tmp_path, ["gpt-4o-mini", "gpt-4.1-mini", "shaky"], ask())
    assert result.served_model == "gpt-4.1-mini" and result.headers["x-thrifty-route"] == "cascade:tier2"


@pytest.mark.parametrize(
    ("tier1", "fields"),
    [
        ({"content": ""}, {}),
        ({"content": "The answer is", "finish_reason": "length"}, {}),
        ({"content": '{"answer": '}, {"response_format": {"type": "json_object"}}),
        ({"content": "I don't know", "finish_reason": "content_filter"}, {}),
    ],
    ids=["empty", "cut-off", "invalid-json", "content-filter"],
)
async def test_without_a_fit_answer_the_final_tiers_error_stands(fake, tmp_path, tier1, fields):
    fake.script(tier1, model="gpt-4o-mini")
    fake.script(*FAIL, model="shaky-up")
    with pytest.raises(UpstreamError) as raised:
        await run(fake, tmp_path, ["gpt-4o-mini", "shaky"], ask(**fields))
    assert raised.value.status == 502
    assert [r["status"] for r in rows(tmp_path)] == ["rejected", "error", "error", "error"]


async def test_a_final_tier_refusing_the_request_is_not_answered_for(fake, tmp_path):
    fake.script({"content": HEDGE}, model="gpt-4o-mini")
    fake.script({"status": 400, "error_message": "context too long"}, model="shaky-up")
    with pytest.raises(UpstreamError) as raised:
        await run(fake, tmp_path, ["gpt-4o-mini", "shaky"], ask())
    assert raised.value.status == 400


async def test_when_only_the_final_tier_answered_its_error_stands(fake, tmp_path):
    fake.script(*FAIL, model="gpt-4o-mini")  # tier 1 fails upstream: skipped, nothing held
    fake.script(*FAIL, model="shaky-up")
    with pytest.raises(UpstreamError):
        await run(fake, tmp_path, ["gpt-4o-mini", "shaky"], ask())
    assert [r["status"] for r in rows(tmp_path)] == ["error"] * 6


async def test_a_streaming_client_gets_the_rejected_answer_replayed(fake, tmp_path):
    fake.script({"content": HEDGE}, model="gpt-4o-mini")
    fake.script(*FAIL, model="shaky-up")
    body = ask(stream=True, stream_options={"include_usage": True})
    stream, chunks = await run(fake, tmp_path, ["gpt-4o-mini", "shaky"], body, stream=True)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == HEDGE and stream.headers["x-thrifty-cascade"] == "degraded"
    booked = rows(tmp_path)
    assert chunks[-1]["usage"]["cost"] == pytest.approx(sum(r["cost_usd"] for r in booked))
    assert [(r["status"], r["stream"]) for r in booked] == [
        ("rejected", 0),  # called without streaming
        ("error", 1),
        ("error", 1),
        ("error", 1),
        ("ok", 1),  # the answer the client got, as SSE
    ]


async def test_an_accepted_tier_replayed_to_a_stream_is_booked_as_streamed(fake, tmp_path):
    body = ask(stream=True)
    _, chunks = await run(fake, tmp_path, ["gpt-4o-mini", "shaky"], body, stream=True)
    assert chunks
    [final] = rows(tmp_path)
    assert final["route"] == "cascade:tier1" and final["final"] == 1 and final["stream"] == 1


async def test_a_logprob_gate_s_logprobs_are_dropped_from_a_served_rejection(fake, tmp_path):
    cfg = config(fake, tmp_path, ["gpt-4o-mini", "shaky"])
    cfg["routing"]["virtual_models"]["v/c"]["cascade"]["gates"] = [{"type": "logprob", "min_confidence": 0.9}]
    fake.script({"content": "4", "logprob": -2.0}, model="gpt-4o-mini")
    fake.script(*FAIL, model="shaky-up")
    async with Gateway(config_mod.parse(cfg, env={})) as gw:
        result = await gw.chat(ask())
    assert result.headers["x-thrifty-cascade"] == "degraded"
    assert result.body["choices"][0]["logprobs"] is None


async def test_a_micro_batched_final_tier_s_wasted_share_counts_in_the_degraded_cost(fake, tmp_path):
    """The final tier is micro-batched: its batched answer cannot be split, so each request's share is
    booked `rejected` and re-sent alone, which fails. The degraded answer's cost is every row's."""
    fake.script({"content": HEDGE}, {"content": HEDGE}, model="gpt-4o-mini")
    fake.script({"content": "not a json array"}, *FAIL, *FAIL, model="shaky-up")
    cfg = config(fake, tmp_path, ["gpt-4o-mini", "shaky"])
    cfg["batching"] = {"live": {"enabled": True, "models": ["shaky"], "window_ms": 200}}
    async with Gateway(config_mod.parse(cfg, env={})) as gw:
        bodies = [ask(messages=[{"role": "user", "content": f"What is {i} + 2?"}]) for i in range(2)]
        results = await asyncio.gather(*(gw.chat(body) for body in bodies))
    booked = rows(tmp_path)
    for result in results:
        assert result.headers["x-thrifty-cascade"] == "degraded"
        mine = [r for r in booked if r["request_id"] == result.request_id]
        shares = [r for r in mine if r["status"] == "rejected" and "micro-batch" in (r["error"] or "")]
        assert len(shares) == 1 and shares[0]["cost_usd"] > 0  # the batched call's share, not used
        assert result.cost_usd == pytest.approx(sum(r["cost_usd"] for r in mine))
        assert result.attempts == len([r for r in mine if r["status"] != "ok"])  # every call it took


def test_a_degraded_answer_s_row_is_no_upstream_call_in_the_metrics():
    from thrifty.metrics import Metrics
    from thrifty.types import DEGRADED, Attempt

    metrics = Metrics()
    row = dict(request_id="r", tenant_id="t", key_id=None, requested_model="v/c", served_model="gpt-4o-mini")
    row |= dict(provider="fakeai", deployment="fakeai:gpt-4o-mini", status="ok", final=True)
    metrics.observe(Attempt(attempt=1, latency_ms=150.0, **{**row, "final": False, "status": "rejected"}))
    metrics.observe(Attempt(attempt=2, latency_ms=1700.0, meta={DEGRADED: {"tier": 1}}, **row))
    value = metrics.registry.get_sample_value
    labels = {"deployment": "fakeai:gpt-4o-mini"}
    assert value("thrifty_upstream_latency_seconds_count", labels) == 1  # the real call only
    assert value("thrifty_upstream_latency_seconds_sum", labels) == pytest.approx(0.15)
    assert value("thrifty_attempts_total", {**labels, "status": "ok"}) is None
    assert value("thrifty_requests_total", {"model": "gpt-4o-mini", "status": "ok"}) == 1  # answered
