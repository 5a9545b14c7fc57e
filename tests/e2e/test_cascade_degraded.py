"""A cascade whose final tier fails upstream, through `thrifty serve` + the fake provider: the client
gets the rejected tier's answer (fit to stand in) rather than a 502, marked `x-thrifty-cascade:
degraded`, replayed as SSE to a streaming client, booked as the final row and never cached; an answer
that is empty, cut off or broken JSON is never served, and the error stands. Also: an accepted tier
replayed to a streaming client is booked `stream = 1`."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.conftest import base_config, ledger_rows

pytestmark = pytest.mark.e2e

HEDGE = "I don't know for sure, but it is probably 4."
FAIL = [{"status": 500}] * 3  # one try and two retries (base_config)


def cascade_config(fake: Any, **extra: Any) -> dict[str, Any]:
    """Tiers gpt-4o-mini → strong (the fake's `strong-up` on its own provider, priced as gpt-4o)."""
    config = base_config(fake)
    config["providers"]["strongai"] = {**config["providers"]["fakeai"], "timeouts": {"first_byte": 0.5}}
    config["models"]["strong"] = {
        "price": "gpt-4o",
        "deployments": [{"provider": "strongai", "model": "strong-up"}],
    }
    gates = [{"type": "format"}, {"type": "heuristic"}]
    config["routing"] = {
        "virtual_models": {"v/c": {"cascade": {"tiers": ["gpt-4o-mini", "strong"], "gates": gates}}}
    }
    config.update(extra)
    return config


def ask(text: str = "What is 2 + 2?", **fields: Any) -> dict[str, Any]:
    return {"model": "v/c", "messages": [{"role": "user", "content": text}], **fields}


def post(gw: Any, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(gw.base_url + "/chat/completions", json=body, timeout=30)


def rows(gw: Any, request_id: str, expect: int) -> list[dict[str, Any]]:
    return ledger_rows(gw.ledger_path, expect=expect, request_id=request_id)


def test_the_rejected_answer_is_served_when_the_final_tier_fails(gateway_factory, fake):
    gw = gateway_factory(cascade_config(fake))
    fake.script({"content": HEDGE}, model="gpt-4o-mini")  # the heuristic gate rejects the hedge
    fake.script(*FAIL, model="strong-up")
    resp = post(gw, ask())
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] == HEDGE
    assert resp.headers["x-thrifty-cascade"] == "degraded"
    assert resp.headers["x-thrifty-route"] == "cascade:tier1"
    assert resp.headers["x-thrifty-model"] == "gpt-4o-mini"
    assert resp.headers["x-thrifty-attempts"] == "4"  # tier 1, then the final tier's three tries
    booked = rows(gw, resp.headers["x-request-id"], 5)
    assert [(r["status"], r["served_model"], r["route"], r["final"]) for r in booked] == [
        ("rejected", "gpt-4o-mini", "cascade:tier1", 0),
        ("error", "strong", "cascade:tier2", 0),
        ("error", "strong", "cascade:tier2", 0),
        ("error", "strong", "cascade:tier2", 0),
        ("ok", "gpt-4o-mini", "cascade:tier1", 1),
    ]
    final = booked[-1]
    degraded = orjson.loads(final["meta"])["cascade_degraded"]
    assert degraded["tier"] == 1 and degraded["failed_tier"] == 2
    assert degraded["rejected"] == booked[0]["error"] and "hedges" in degraded["rejected"]
    assert "HTTP 500" in degraded["error"]
    # the answer was paid for once, on its rejected row: the costs add up to the header
    assert final["cost_usd"] == 0 and booked[0]["cost_usd"] > 0
    cost = float(resp.headers["x-thrifty-cost-usd"])
    assert cost == pytest.approx(sum(r["cost_usd"] for r in booked), abs=1e-8)
    assert resp.json()["usage"]["cost"] == pytest.approx(cost, abs=1e-8)


def test_a_streaming_client_gets_the_rejected_answer_replayed(gateway_factory, fake):
    gw = gateway_factory(cascade_config(fake))
    fake.script({"content": HEDGE}, model="gpt-4o-mini")
    fake.script(*FAIL, model="strong-up")
    client = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="v/c",
        messages=[{"role": "user", "content": "What is 2 + 2?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    assert raw.headers["x-thrifty-cascade"] == "degraded"
    assert raw.headers["x-thrifty-route"] == "cascade:tier1"
    chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == HEDGE
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    booked = rows(gw, raw.headers["x-request-id"], 5)
    assert [(r["status"], r["final"], r["stream"]) for r in booked][-1] == ("ok", 1, 1)
    usage: Any = chunks[-1].usage
    assert usage.cost == pytest.approx(sum(r["cost_usd"] for r in booked), abs=1e-8)


def test_a_final_tier_timing_out_is_answered_for_too(gateway_factory, fake):
    config = cascade_config(fake)
    config["retry"]["max_retries"] = 0
    gw = gateway_factory(config)
    fake.script({"content": HEDGE}, model="gpt-4o-mini")
    fake.script({"latency_ms": 3000}, model="strong-up")  # past the strong provider's first-byte timeout
    resp = post(gw, ask())
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-thrifty-cascade"] == "degraded"
    final = rows(gw, resp.headers["x-request-id"], 3)[-1]
    assert orjson.loads(final["meta"])["cascade_degraded"]["failed_tier"] == 2


def test_a_served_rejection_is_never_cached(gateway_factory, fake, tmp_path):
    gw = gateway_factory(cascade_config(fake, cache={"enabled": True, "path": str(tmp_path / "cache.db")}))
    fake.script({"content": HEDGE}, {"content": HEDGE}, {"content": HEDGE}, model="gpt-4o-mini")
    fake.script(*FAIL, model="strong-up")
    first = post(gw, ask())
    assert first.headers["x-thrifty-cascade"] == "degraded"
    # three failures opened the final tier's breaker: not called, no healthy deployment, answered for
    called = len(fake.requests())
    again = post(gw, ask())
    assert again.headers["x-thrifty-cache"] == "miss" and again.headers["x-thrifty-cascade"] == "degraded"
    assert [r["body"]["model"] for r in fake.requests()[called:]] == ["gpt-4o-mini"]
    time.sleep(1.2)  # past the breaker's cooldown: the final tier answers again
    last = post(gw, ask())
    assert last.status_code == 200 and last.headers["x-thrifty-cache"] == "miss"
    assert last.headers["x-thrifty-route"] == "cascade:tier2" and "x-thrifty-cascade" not in last.headers
    assert last.json()["choices"][0]["message"]["content"] == "echo: What is 2 + 2?"


@pytest.mark.parametrize(
    ("tier1", "fields"),
    [
        ({"content": ""}, {}),
        ({"content": "It is", "finish_reason": "length"}, {}),
        ({"content": '{"answer": '}, {"response_format": {"type": "json_object"}}),
    ],
    ids=["empty", "cut-off", "invalid-json"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_an_empty_or_broken_answer_is_never_served(gateway_factory, fake, tier1, fields, stream):
    gw = gateway_factory(cascade_config(fake))
    fake.script(tier1, model="gpt-4o-mini")
    fake.script(*FAIL, model="strong-up")
    resp = post(gw, ask(stream=stream, **fields))
    assert resp.status_code == 502, resp.text
    assert resp.json()["error"]["code"] == "upstream_error" and "x-thrifty-cascade" not in resp.headers
    assert [r["status"] for r in rows(gw, resp.headers["x-request-id"], 4)] == ["rejected"] + ["error"] * 3


def test_without_an_earlier_answer_the_final_tiers_error_stands(gateway_factory, fake):
    gw = gateway_factory(cascade_config(fake))
    fake.script(*FAIL, model="gpt-4o-mini")  # tier 1 fails upstream: skipped, nothing in hand
    fake.script(*FAIL, model="strong-up")
    resp = post(gw, ask())
    assert resp.status_code == 502 and "x-thrifty-cascade" not in resp.headers


def test_an_accepted_tier_replayed_to_a_streaming_client_is_booked_as_streamed(gateway_factory, fake):
    gw = gateway_factory(cascade_config(fake))
    with httpx.stream("POST", gw.base_url + "/chat/completions", json=ask(stream=True), timeout=30) as resp:
        assert resp.status_code == 200 and resp.headers["x-thrifty-route"] == "cascade:tier1"
        body = resp.read().decode()
    assert body.rstrip().endswith("data: [DONE]")
    [row] = rows(gw, resp.headers["x-request-id"], 1)
    assert (row["status"], row["final"], row["route"]) == ("ok", 1, "cascade:tier1")
    assert row["stream"] == 1
