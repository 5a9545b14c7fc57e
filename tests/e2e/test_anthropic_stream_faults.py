"""Anthropic streams through `thrifty serve` and the openai SDK, with exact event sequences scripted on
the fake (`anthropic_events`): an error event after `message_start` is retried and failed over (nothing
reached the client yet), a stream is booked on the usage Anthropic reported (1-hour cache writes, a
stream cut by an error), and a cut answer's stop reason is `length`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.conftest import base_config, ledger_rows
from tests.support.servers import GatewayProcess, start_gateway
from thrifty.pricing.catalog import Catalog
from thrifty.testing.fake_provider import FakeProvider

pytestmark = pytest.mark.e2e
MODEL = "claude-sonnet-4-5"
PRICE = Catalog.bundled().get(MODEL)
OVERLOADED = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
PING = {"type": "ping"}
STOP = {"type": "message_stop"}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, fake_server: FakeProvider) -> Iterator[GatewayProcess]:
    config = base_config(fake_server)
    config["models"]["anth-first"] = {
        "price": MODEL,
        "deployments": [
            {"provider": "fakeanthropic", "model": MODEL, "priority": 0},
            {"provider": "fakeai", "model": "gpt-4o", "priority": 1},
        ],
    }
    config["breaker"] = {"failure_threshold": 1000, "cooldown_s": 1.0}  # tests must not trip it
    gp = start_gateway(tmp_path_factory.mktemp("gw"), config)
    yield gp
    gp.stop()


def message_start(**usage: Any) -> dict[str, Any]:
    counts = {"input_tokens": 100, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    message = {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**counts, "output_tokens": 1, **usage},
    }
    return {"type": "message_start", "message": message}


def text(index: int, piece: str) -> list[dict[str, Any]]:
    return [
        {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}},
    ]


def end(stop_reason: str, output_tokens: int) -> list[dict[str, Any]]:
    delta = {"stop_reason": stop_reason, "stop_sequence": None}
    return [
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": delta, "usage": {"output_tokens": output_tokens}},
        STOP,
    ]


def stream(gw: GatewayProcess, model: str = MODEL, **fields: Any):
    client = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
    return client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hello"}], stream=True, **fields
    )


def test_an_error_right_after_message_start_is_retried(gateway, fake):
    fake.script({"anthropic_events": [message_start(), PING, OVERLOADED]}, model=MODEL)
    raw = stream(gateway)
    chunks = list(raw.parse())
    assert chunks[0].choices[0].delta.role == "assistant"  # the role is still on the first chunk
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: hello"
    rows = ledger_rows(gateway.ledger_path, expect=2, request_id=raw.headers["x-request-id"])
    assert [(r["status"], r["http_status"]) for r in rows] == [("error", 529), ("ok", 200)]
    assert len(fake.requests("/v1/messages")) == 2


def test_an_error_before_any_content_fails_over_to_the_next_deployment(gateway, fake):
    events = [message_start(), PING, *text(0, ""), PING, OVERLOADED]  # an empty text block: no content
    fake.script(*[{"anthropic_events": events}] * 3, model=MODEL)  # max_retries 2: three attempts
    raw = stream(gateway, model="anth-first")
    chunks = list(raw.parse())
    assert raw.headers["x-thrifty-provider"] == "fakeai"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: hello"
    rows = ledger_rows(gateway.ledger_path, expect=4, request_id=raw.headers["x-request-id"])
    assert [r["status"] for r in rows] == ["error", "error", "error", "ok"]
    assert rows[-1]["deployment"] != rows[0]["deployment"]


def test_streamed_one_hour_cache_writes_are_billed_at_the_long_rate(gateway, fake):
    usage = {
        "input_tokens": 1000,
        "cache_creation_input_tokens": 3000,
        "cache_read_input_tokens": 4000,
        "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
    }
    events = [message_start(**usage), *text(0, "hi"), *end("end_turn", 100)]
    fake.script({"anthropic_events": events}, model=MODEL)
    raw = stream(gateway, stream_options={"include_usage": True})
    chunks = list(raw.parse())
    expected = (
        1000 * PRICE.input
        + 4000 * PRICE.cached_input
        + 1000 * PRICE.cache_write
        + 2000 * PRICE.cache_write_long
        + 100 * PRICE.output
    ) / 1e6
    (row,) = ledger_rows(gateway.ledger_path, expect=1, request_id=raw.headers["x-request-id"])
    assert row["status"] == "ok" and row["estimated"] == 0
    assert row["cost_usd"] == pytest.approx(expected, rel=1e-9)
    reported = chunks[-1].usage
    assert reported.prompt_tokens == 8000 and reported.completion_tokens == 100
    assert reported.model_extra == {"cost": pytest.approx(expected, rel=1e-6)}  # nothing non-standard
    details = reported.prompt_tokens_details
    assert (details.cached_tokens, details.cache_write_tokens, details.model_extra) == (4000, 3000, {})


def test_a_stream_cut_by_an_error_is_booked_on_the_input_anthropic_reported(gateway, fake):
    start = message_start(input_tokens=10, cache_read_input_tokens=2000)
    fake.script({"anthropic_events": [start, *text(0, "Hello there, partial"), OVERLOADED]}, model=MODEL)
    raw = stream(gateway)
    got = []
    with pytest.raises(openai.APIError):
        for chunk in raw.parse():
            got.append(chunk.choices[0].delta.content or "")
    assert "".join(got) == "Hello there, partial"
    (row,) = ledger_rows(gateway.ledger_path, expect=1, request_id=raw.headers["x-request-id"])
    assert row["status"] == "error"
    assert (row["input_tokens"], row["cached_input_tokens"]) == (2010, 2000)  # exact, from message_start
    assert row["output_tokens"] >= 4 and row["estimated"] == 1  # the output was never reported: counted
    expected = (10 * PRICE.input + 2000 * PRICE.cached_input + row["output_tokens"] * PRICE.output) / 1e6
    assert row["cost_usd"] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("streamed", [False, True])
def test_context_window_exceeded_is_finish_reason_length(gateway, fake, streamed):
    fake.script({"finish_reason": "model_context_window_exceeded"}, model=MODEL)
    client = openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0)
    messages = [{"role": "user", "content": "a long answer please"}]
    if streamed:
        chunks = list(client.chat.completions.create(model=MODEL, messages=messages, stream=True))
        finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        assert finishes == ["length"]
    else:
        answer = client.chat.completions.create(model=MODEL, messages=messages)
        assert answer.choices[0].finish_reason == "length"
