"""A stream still running when the graceful shutdown runs out (`server.graceful_shutdown_s` after
SIGTERM) ends with an SSE error event `server_shutting_down` and a well-formed end of the body, and is
booked as stopped by the shutdown (503), not as a client that left (499), with what it had streamed.

Real `thrifty serve` process, the fake provider streaming slowly, plain httpx and the openai SDK."""

from __future__ import annotations

import signal
import time

import httpx
import openai
import orjson
import pytest

from tests.conftest import base_config, ledger_rows

pytestmark = pytest.mark.e2e

WORDS = 80  # the fake streams them in 8 chunks, 1.5 s apart: 13.5 s, far past 1 s of graceful shutdown
SLOW = {"content": " ".join(["word"] * WORDS), "chunk_delay_ms": 1500}


@pytest.fixture
def gateway(gateway_factory, fake):
    config = base_config(fake)
    config["server"] = {"graceful_shutdown_s": 1}
    fake.script(SLOW, model="gpt-4o")
    return gateway_factory(config)


def _body(**extra) -> dict:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": "talk"}], "stream": True, **extra}


def _booked_row(gw, request_id: str) -> dict:
    assert gw.proc.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM after its shutdown
    (row,) = ledger_rows(gw.ledger_path, expect=1, request_id=request_id)
    return row


def test_a_stream_cut_by_the_shutdown_ends_with_an_error_event_and_is_booked_as_such(gateway):
    events: list[bytes] = []
    started = time.monotonic()
    with httpx.stream("POST", gateway.base_url + "/chat/completions", json=_body(), timeout=30) as r:
        assert r.status_code == 200
        request_id = r.headers["x-request-id"]
        lines = r.iter_lines()  # raises RemoteProtocolError if the body is cut before its end
        for line in lines:
            if line.startswith("data: "):
                events.append(line.removeprefix("data: ").encode())
                if len(events) == 2:  # the role, then words: now the server is told to stop
                    gateway.proc.send_signal(signal.SIGTERM)
                    break
        for line in lines:
            if line.startswith("data: "):
                events.append(line.removeprefix("data: ").encode())
    assert time.monotonic() - started < 9  # cut at the shutdown, not read to its end

    assert events[-1] != b"[DONE]" and b"[DONE]" not in events
    *chunks, last = [orjson.loads(e) for e in events]
    assert last == {
        "error": {
            "message": last["error"]["message"],
            "type": "api_error",
            "param": None,
            "code": "server_shutting_down",
        }
    }
    assert "shutting down" in last["error"]["message"]
    streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert 0 < streamed.count("word") < WORDS  # some of it was streamed, not all

    row = _booked_row(gateway, request_id)
    assert (row["status"], row["http_status"], row["final"]) == ("error", 503, 0)
    assert "shut down" in row["error"] and "client" not in row["error"]
    assert row["output_tokens"] > 0 and row["cost_usd"] > 0  # what was streamed is paid for


def test_the_openai_sdk_raises_the_shutdown_error_mid_stream(gateway):
    client = openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(**_body())
    received = 0
    with pytest.raises(openai.APIError) as cut:
        for _chunk in raw.parse():
            received += 1
            if received == 2:
                gateway.proc.send_signal(signal.SIGTERM)
    assert cut.value.code == "server_shutting_down" and cut.value.type == "api_error"
    assert 2 <= received < 8
    row = _booked_row(gateway, raw.headers["x-request-id"])
    assert (row["status"], row["http_status"]) == ("error", 503)
