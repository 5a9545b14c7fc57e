"""Retries, fallback, circuit breaker and mid-stream failures, through the real server."""

from __future__ import annotations

import time

import httpx
import openai
import orjson
import pytest

from tests.conftest import ledger_rows

pytestmark = pytest.mark.e2e


@pytest.fixture
def gateway(gateway_factory):
    """A fresh gateway per test: breaker state must not leak between tests."""
    return gateway_factory()


def ask(gw, model: str = "gpt-4o", **kw):
    c = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
    return c.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hello"}], **kw
    )


def test_retries_5xx_then_succeeds_and_books_every_attempt(gateway, fake):
    fake.script({"status": 500}, {"status": 503}, model="gpt-4o")
    raw = ask(gateway)
    assert raw.parse().choices[0].message.content == "echo: hello"
    assert raw.headers["x-thrifty-attempts"] == "3"
    rows = ledger_rows(gateway.ledger_path, expect=3, request_id=raw.headers["x-request-id"])
    assert [r["status"] for r in rows] == ["error", "error", "ok"]
    assert [r["http_status"] for r in rows] == [500, 503, 200]
    assert [r["attempt"] for r in rows] == [1, 2, 3]


def test_a_stream_tells_the_attempts_it_took_to_open(gateway, fake):
    fake.script({"status": 500}, {"status": 503}, model="gpt-4o")
    c = openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0)
    messages = [{"role": "user", "content": "hello"}]
    with c.chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=messages, stream=True
    ) as raw:
        assert raw.headers["x-thrifty-attempts"] == "3"
        assert "echo: hello" in "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)


def test_429_retry_after_is_honoured(gateway, fake):
    fake.script({"status": 429, "retry_after": "0.3"}, model="gpt-4o")
    started = time.monotonic()
    raw = ask(gateway)
    assert raw.status_code == 200
    assert time.monotonic() - started >= 0.3


def test_long_retry_after_falls_back_instead_of_waiting(gateway, fake):
    fake.script({"status": 429, "retry_after": "30"}, model="primary-up")
    started = time.monotonic()
    raw = ask(gateway, "resilient")
    assert time.monotonic() - started < 5
    assert raw.parse().choices[0].message.content == "echo: hello"
    assert fake.requests()[-1]["body"]["model"] == "backup-up"


def test_fallback_to_next_deployment(gateway, fake):
    fake.script(*[{"status": 502}] * 3, model="primary-up")
    raw = ask(gateway, "resilient")
    assert raw.status_code == 200
    models = [r["body"]["model"] for r in fake.requests("/v1/chat/completions")]
    assert models == ["primary-up"] * 3 + ["backup-up"]


def test_fallback_to_other_model_and_provider(gateway, fake):
    fake.script(*[{"status": 500}] * 3, model="flaky-up")
    raw = ask(gateway, "flaky")
    assert raw.headers["x-thrifty-model"] == "claude-sonnet-4-5"
    assert raw.headers["x-thrifty-provider"] == "fakeanthropic"
    assert raw.parse().model == "claude-sonnet-4-5"


def test_dropped_connections_and_timeouts_are_retried(gateway, fake):
    fake.script({"drop": "connect"}, {"drop": "mid_body"}, {"malformed": True}, model="primary-up")
    raw = ask(gateway, "resilient")
    assert raw.status_code == 200


def test_circuit_breaker_skips_dead_deployment_then_probes(gateway_factory, fake):
    from tests.conftest import base_config

    config = base_config(fake)
    config["breaker"] = {"failure_threshold": 3, "cooldown_s": 4.0}
    gateway = gateway_factory(config)
    fake.set_default(status=503)  # everything fails ...
    fake.script(*[{"status": 200}] * 50, model="backup-up")  # ... except the backup
    ask(gateway, "resilient")  # 3 failures on primary open its breaker
    opened = time.monotonic()
    before = len([r for r in fake.requests() if r["body"]["model"] == "primary-up"])
    for _ in range(5):
        assert ask(gateway, "resilient").status_code == 200
    assert time.monotonic() - opened < 4.0, "machine too slow to observe the open state"
    after = len([r for r in fake.requests() if r["body"]["model"] == "primary-up"])
    assert after == before  # primary skipped while open
    time.sleep(max(0.0, 4.1 - (time.monotonic() - opened)))  # cooldown over: one probe goes through
    fake.set_default()
    ask(gateway, "resilient")
    assert fake.requests()[-1]["body"]["model"] == "primary-up"


def test_all_deployments_failing_is_502_in_openai_shape(gateway, fake):
    fake.set_default(status=500)
    r = httpx.post(
        gateway.base_url + "/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]},
        timeout=30,
    )
    assert r.status_code == 502
    err = r.json()["error"]
    assert err["type"] == "upstream_error" and "500" in err["message"]
    assert "Traceback" not in r.text


def test_upstream_timeout_is_504(gateway_factory, fake):
    from tests.conftest import base_config

    config = base_config(fake)
    config["providers"]["fakeai"]["timeouts"] = {"first_byte": 0.3}
    config["retry"]["max_retries"] = 0
    gw = gateway_factory(config)
    fake.set_default(latency_ms=2000)
    r = httpx.post(
        gw.base_url + "/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]},
        timeout=30,
    )
    assert r.status_code == 504
    assert r.json()["error"]["code"] == "upstream_timeout"


def test_upstream_bad_request_is_400_not_retried(gateway, fake):
    fake.script({"status": 400}, model="gpt-4o")
    r = httpx.post(
        gateway.base_url + "/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]},
        timeout=30,
    )
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert r.json()["error"]["code"] == "upstream_bad_request"
    assert len(fake.requests("/v1/chat/completions")) == 1


def sse(r: httpx.Response) -> list[str]:
    return [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]


def test_stream_fails_over_before_first_byte(gateway, fake):
    fake.script({"status": 500}, {"drop": "connect"}, {"status": 500}, model="primary-up")
    r = httpx.post(
        gateway.base_url + "/chat/completions",
        timeout=30,
        json={"model": "resilient", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    )
    events = sse(r)
    assert events[-1] == "[DONE]"
    assert (
        "".join(
            (orjson.loads(e)["choices"] or [{}])[0].get("delta", {}).get("content") or "" for e in events[:-1]
        )
        == "echo: hi"
    )


def test_mid_stream_cut_becomes_error_event_not_clean_end(gateway, fake):
    fake.script({"drop": "mid_stream", "content": "a long answer " * 20}, model="gpt-4o")
    r = httpx.post(
        gateway.base_url + "/chat/completions",
        timeout=30,
        json={"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    )
    events = sse(r)
    assert "[DONE]" not in events
    last = orjson.loads(events[-1])
    assert last["error"]["type"] == "upstream_error"
    # the SDK surfaces it as an error, not a silently short answer
    fake.script({"drop": "mid_stream", "content": "a long answer " * 20}, model="gpt-4o")
    c = openai.OpenAI(base_url=gateway.base_url, api_key="x", max_retries=0)
    with pytest.raises(openai.APIError):
        list(
            c.chat.completions.create(
                model="gpt-4o", stream=True, messages=[{"role": "user", "content": "hi"}]
            )
        )
    rows = ledger_rows(gateway.ledger_path, expect=2)
    assert {r["status"] for r in rows} == {"error"}
    assert all(r["stream"] == 1 for r in rows)


def test_a_bad_request_on_a_half_open_breaker_does_not_wedge_it(gateway_factory, fake):
    from tests.conftest import base_config

    config = base_config(fake)
    config["breaker"] = {"failure_threshold": 3, "cooldown_s": 0.5}
    gateway = gateway_factory(config)
    fake.script({"status": 500}, {"status": 500}, {"status": 500}, model="gpt-4o")
    with pytest.raises(openai.APIStatusError):
        ask(gateway)  # three failures open the breaker
    time.sleep(0.6)  # half-open: the next call is the probe
    fake.script({"status": 400}, model="gpt-4o")  # the probe's request is the client's fault
    with pytest.raises(openai.BadRequestError):
        ask(gateway)
    assert ask(gateway).status_code == 200  # the deployment is not stuck behind a lost probe
    assert ask(gateway).status_code == 200


def test_a_fallback_that_cannot_take_the_request_is_skipped(gateway, fake):
    fake.script(*[{"status": 500}] * 3, model="flaky-up")  # the primary fails; the fallback is Claude
    with pytest.raises(openai.APIStatusError) as exc:
        ask(gateway, "flaky", n=2)  # Claude cannot return two choices: skipped, not a 400
    assert exc.value.status_code == 502


def test_malformed_tools_are_400s_naming_the_parameter_on_every_provider(gateway):
    bad = [
        ({"tools": ["x"]}, "tools[0]"),
        ({"tools": [{"type": "function", "function": "f"}]}, "tools[0].function"),
        ({"tool_choice": {"type": "function", "function": "f"}}, "tool_choice.function"),
    ]
    for model in ("gpt-4o", "claude-sonnet-4-5"):
        for extra, param in bad:
            body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
            r = httpx.post(gateway.base_url + "/chat/completions", json=body)
            assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
        calls = {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "function": "f"}]}
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}, calls]}
        r = httpx.post(gateway.base_url + "/chat/completions", json=body)
        assert r.status_code == 400 and r.json()["error"]["param"] == "messages[1].tool_calls[0].function"
    assert ask(gateway, "claude-sonnet-4-5").status_code == 200  # and nothing was wedged


def test_a_rate_limit_thrifty_cannot_wait_out_reaches_the_client_with_its_retry_after(gateway, fake):
    fake.script({"status": 429, "retry_after": "30"}, model="gpt-4o")  # longer than thrifty waits
    with pytest.raises(openai.RateLimitError) as exc:
        ask(gateway)
    assert exc.value.response.headers["retry-after"] == "30"


def test_a_system_prompt_alone_is_a_clear_400_for_anthropic(gateway, fake):
    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "system", "content": "Be brief."}]}
    r = httpx.post(gateway.base_url + "/chat/completions", json=body, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages", r.text
    assert fake.requests("/v1/messages") == []  # refused before any upstream call


@pytest.mark.parametrize("stream", [False, True])
def test_a_client_that_leaves_stops_its_retries_and_is_booked(gateway_factory, fake, stream):
    """The upstream stalls past first_byte on every attempt; the client leaves once its request has
    reached the upstream. Without a disconnect watch the gateway would go on retrying (three
    attempts, ~1.8 s) for no one."""
    import socket
    from urllib.parse import urlsplit

    from tests.conftest import base_config

    config = base_config(fake)
    config["providers"]["fakeai"]["timeouts"] = {"first_byte": 0.6}
    gw = gateway_factory(config)
    fake.set_default(latency_ms=1500)
    body = orjson.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "stream": stream})
    url = urlsplit(gw.base_url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as client:
        head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: {url.hostname}\r\n"
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        client.sendall(head.encode() + body)
        deadline = time.monotonic() + 10
        while not fake.requests("/v1/chat/completions") and time.monotonic() < deadline:
            time.sleep(0.02)
    time.sleep(2.5)  # long enough for the three attempts a gateway that did not notice would make
    assert len(fake.requests("/v1/chat/completions")) == 1
    rows = ledger_rows(gw.ledger_path, expect=1)
    assert [(r["status"], r["http_status"], r["final"]) for r in rows] == [("error", 499, 0)]
