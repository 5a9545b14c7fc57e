"""Tests for the fake provider server, driven with plain httpx and the official openai SDK."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest

from thrifty.testing.fake_provider import FakeProvider
from thrifty.testing.fake_scripts import BehaviourError

USER = [{"role": "user", "content": "hello there"}]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeProvider) -> Iterator[FakeProvider]:
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def http(fake: FakeProvider) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.url, timeout=5) as client:
        yield client


@pytest.fixture
def sdk(fake: FakeProvider) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test", max_retries=0, timeout=5)
    yield client
    client.close()


def sse_data(text: str) -> list[Any]:
    """Payloads of an OpenAI SSE stream ('[DONE]' kept as a string)."""
    out: list[Any] = []
    for event in text.split("\n\n"):
        if event.startswith("data: "):
            payload = event.removeprefix("data: ")
            out.append(payload if payload == "[DONE]" else orjson.loads(payload))
    return out


def anthropic_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for event in filter(None, text.split("\n\n")):
        name_line, data_line = event.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: ")
        data = orjson.loads(data_line.removeprefix("data: "))
        assert data["type"] == name_line.removeprefix("event: ")
        out.append((data["type"], data))
    return out


def test_default_answer_and_usage_with_sdk(fake: FakeProvider, sdk: openai.OpenAI) -> None:
    resp = sdk.chat.completions.create(model="gpt-4o-mini", messages=USER)  # type: ignore[arg-type]
    assert resp.object == "chat.completion"
    assert resp.model == "gpt-4o-mini"
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content == "echo: hello there"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None
    assert resp.usage.completion_tokens == 4  # "echo", ":", " hello", " there"
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + 4
    assert resp.usage.prompt_tokens_details is not None
    assert resp.usage.prompt_tokens_details.cached_tokens == 0


def test_n_logprobs_cached_tokens_and_usage_override(fake: FakeProvider, http: httpx.Client) -> None:
    fake.script({"logprob": -0.5, "cached_tokens": 7, "usage": {"prompt_tokens": 100}})
    body = {"model": "m", "messages": USER, "n": 2, "logprobs": True, "top_logprobs": 2}
    data = http.post("/v1/chat/completions", json=body).json()
    assert [c["index"] for c in data["choices"]] == [0, 1]
    tokens = data["choices"][0]["logprobs"]["content"]
    assert "".join(t["token"] for t in tokens) == "echo: hello there"
    assert {t["logprob"] for t in tokens} == {-0.5}
    assert len(tokens[0]["top_logprobs"]) == 2
    usage = data["usage"]
    assert usage["prompt_tokens"] == 100 and usage["completion_tokens"] == 8
    assert usage["prompt_tokens_details"]["cached_tokens"] == 7
    # the queue is empty again: default answer without logprobs
    data = http.post("/v1/chat/completions", json={"model": "m", "messages": USER}).json()
    assert data["choices"][0]["logprobs"] is None and data["usage"]["prompt_tokens"] != 100


def test_stream_with_and_without_include_usage(fake: FakeProvider, sdk: openai.OpenAI) -> None:
    chunks = list(
        sdk.chat.completions.create(
            model="gpt-4o",
            messages=USER,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: hello there"
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 2
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4

    plain = list(sdk.chat.completions.create(model="gpt-4o", messages=USER, stream=True))  # type: ignore[arg-type]
    assert all(c.choices for c in plain) and all(c.usage is None for c in plain)


def test_scripted_429_with_retry_after_then_success(fake: FakeProvider, http: httpx.Client) -> None:
    fake.script({"status": 429, "retry_after": "0.05"}, {"content": "second"})
    first = http.post("/v1/chat/completions", json={"model": "m", "messages": USER})
    assert first.status_code == 429
    assert first.headers["retry-after"] == "0.05"
    assert first.json()["error"]["code"] == "rate_limit_exceeded"
    assert set(first.json()["error"]) >= {"message", "type", "code"}
    second = http.post("/v1/chat/completions", json={"model": "m", "messages": USER})
    assert second.json()["choices"][0]["message"]["content"] == "second"

    fake.script({"status": 429, "retry_after": "0.05"})
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test", max_retries=1)
    with client:
        resp = client.chat.completions.create(model="m", messages=USER)  # type: ignore[arg-type]
    assert resp.choices[0].message.content == "echo: hello there"
    assert len(fake.requests("/v1/chat/completions")) == 4


def test_script_is_per_model_and_fifo(fake: FakeProvider, http: httpx.Client) -> None:
    http.post(
        "/_script", json={"behaviours": [{"content": "b1"}, {"content": "b2"}], "model": "b"}
    ).raise_for_status()
    fake.script({"content": "any"})

    def ask(model: str) -> str:
        body = {"model": model, "messages": USER}
        return str(http.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]["content"])

    echo = "echo: hello there"
    assert [ask("a"), ask("a"), ask("b"), ask("b"), ask("b")] == ["any", echo, "b1", "b2", echo]
    assert http.post("/_script", json={"behaviours": [{"bogus": 1}]}).status_code == 400
    with pytest.raises(BehaviourError):
        fake.script({"drop": "sometimes"})


def test_drop_mid_stream_raises(fake: FakeProvider, sdk: openai.OpenAI, http: httpx.Client) -> None:
    fake.script({"drop": "mid_stream"})
    received: list[str] = []
    with pytest.raises((httpx.HTTPError, openai.APIError)):
        for chunk in sdk.chat.completions.create(model="m", messages=USER, stream=True):  # type: ignore[arg-type]
            received.append(chunk.choices[0].delta.content or "" if chunk.choices else "")
    assert received  # some chunks arrived before the cut

    fake.script({"drop": "mid_body"}, {"drop": "connect"})
    with pytest.raises(httpx.RemoteProtocolError):
        http.post("/v1/chat/completions", json={"model": "m", "messages": USER})
    with pytest.raises(httpx.RemoteProtocolError):
        http.post("/v1/chat/completions", json={"model": "m", "messages": USER})
    assert http.post("/v1/chat/completions", json={"model": "m", "messages": USER}).status_code == 200


def test_malformed_body_and_stream(fake: FakeProvider, http: httpx.Client) -> None:
    fake.script({"malformed": True}, {"malformed": True})
    resp = http.post("/v1/chat/completions", json={"model": "m", "messages": USER})
    assert resp.status_code == 200
    with pytest.raises(ValueError):
        resp.json()
    resp = http.post("/v1/chat/completions", json={"model": "m", "messages": USER, "stream": True})
    with pytest.raises(orjson.JSONDecodeError):
        sse_data(resp.text)
    assert resp.text.endswith("data: [DONE]\n\n")


def test_omit_usage_and_tool_calls(fake: FakeProvider, http: httpx.Client) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    body = {"model": "m", "messages": [{"role": "user", "content": "please call tool"}], "tools": tools}
    fake.script({"omit_usage": True})
    data = http.post("/v1/chat/completions", json=body).json()
    assert "usage" not in data
    assert data["choices"][0]["finish_reason"] == "tool_calls"
    call = data["choices"][0]["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["function"] == {"name": "lookup", "arguments": "{}"}

    stream = http.post("/v1/chat/completions", json={**body, "stream": True}).text
    chunks = [c for c in sse_data(stream) if c != "[DONE]"]
    deltas = [d for c in chunks for d in c["choices"][0]["delta"].get("tool_calls", [])]
    assert deltas[0]["function"]["name"] == "lookup"
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_embeddings_and_models(fake: FakeProvider, sdk: openai.OpenAI, http: httpx.Client) -> None:
    one = sdk.embeddings.create(model="text-embedding-3-small", input="abc")  # SDK asks for base64
    two = sdk.embeddings.create(model="text-embedding-3-small", input=["abc", "xyz"])
    assert len(one.data[0].embedding) == 8
    assert one.data[0].embedding == pytest.approx(two.data[0].embedding)
    assert one.data[0].embedding != pytest.approx(two.data[1].embedding)
    assert two.usage.prompt_tokens == 2
    floats = http.post("/v1/embeddings", json={"model": "e", "input": "abc"}).json()
    assert floats["data"][0]["embedding"] == pytest.approx(one.data[0].embedding, rel=1e-6)
    assert "gpt-4o-mini" in [m.id for m in sdk.models.list()]


def test_anthropic_non_stream_and_errors(fake: FakeProvider, http: httpx.Client) -> None:
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
    body = {"model": "claude-x", "max_tokens": 64, "system": "be brief", "messages": USER}
    fake.script({"cached_tokens": 3, "cache_write_tokens": 2})
    msg = http.post("/v1/messages", json=body, headers=headers).json()
    assert msg["type"] == "message" and msg["role"] == "assistant" and msg["model"] == "claude-x"
    assert msg["content"] == [{"type": "text", "text": "echo: hello there"}]
    assert msg["stop_reason"] == "end_turn"
    usage = msg["usage"]
    assert usage["output_tokens"] == 4
    assert usage["cache_read_input_tokens"] == 3 and usage["cache_creation_input_tokens"] == 2

    fake.script({"status": 529})
    err = http.post("/v1/messages", json=body, headers=headers)
    assert err.status_code == 529
    assert err.json()["type"] == "error" and err.json()["error"]["type"] == "overloaded_error"

    tools = [{"name": "get_weather", "input_schema": {"type": "object"}}]
    call = {**body, "messages": [{"role": "user", "content": [{"type": "text", "text": "call tool"}]}]}
    msg = http.post("/v1/messages", json={**call, "tools": tools}, headers=headers).json()
    assert msg["stop_reason"] == "tool_use"
    assert msg["content"][0]["type"] == "tool_use" and msg["content"][0]["name"] == "get_weather"


def test_anthropic_stream_event_order(fake: FakeProvider, http: httpx.Client) -> None:
    body = {"model": "claude-x", "max_tokens": 64, "stream": True, "messages": USER}
    events = anthropic_events(http.post("/v1/messages", json=body).text)
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"} and len(names[3:-3]) >= 2
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert text == "echo: hello there"
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"
    assert events[-2][1]["usage"]["output_tokens"] == 4

    fake.script({"drop": "mid_stream"})
    with pytest.raises(httpx.RemoteProtocolError):
        http.post("/v1/messages", json=body)


def test_request_log_default_and_reset_over_http(fake: FakeProvider, http: httpx.Client) -> None:
    http.post("/v1/chat/completions", json={"model": "m", "messages": USER}, headers={"X-Trace": "t1"})
    http.post("/v1/messages", content=b"not json")  # logged with body None, answered 400
    log = http.get("/_requests").json()
    assert [e["path"] for e in log] == ["/v1/chat/completions", "/v1/messages"]
    assert log[0]["headers"]["x-trace"] == "t1"
    assert log[0]["body"]["model"] == "m" and log[1]["body"] is None
    assert log[0]["ts"] <= log[1]["ts"] <= time.time()
    assert fake.requests("/v1/messages") == [log[1]]

    http.post("/_default", json={"content": "always", "latency_ms": 20}).raise_for_status()
    started = time.monotonic()
    data = http.post("/v1/chat/completions", json={"model": "m", "messages": USER}).json()
    assert data["choices"][0]["message"]["content"] == "always"
    assert time.monotonic() - started >= 0.02
    http.post("/_reset").raise_for_status()
    assert http.get("/_requests").json() == []
    data = http.post("/v1/chat/completions", json={"model": "m", "messages": USER}).json()
    assert data["choices"][0]["message"]["content"] == "echo: hello there"
