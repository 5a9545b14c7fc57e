"""Anthropic streaming events → OpenAI chunks, and the provider over a fake HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from thrifty.config import ProviderConfig, Timeouts
from thrifty.errors import UpstreamError
from thrifty.providers.anthropic import AnthropicProvider
from thrifty.providers.anthropic_request import to_anthropic_request
from thrifty.providers.anthropic_response import StreamTranslator, stream_error
from thrifty.types import Body, Usage

MODEL = "claude-sonnet-4-5"


def request(messages: list[Body], **fields: object) -> Body:
    return to_anthropic_request({"model": "x", "messages": messages, **fields}, MODEL)


# ── streaming ────────────────────────────────────────────────────────────────────────────────────


def run_stream(events: list[Body]) -> tuple[StreamTranslator, list[Body]]:
    translator = StreamTranslator(created=42)
    chunks: list[Body] = []
    for event in events:
        chunks.extend(translator.feed(event["type"], event))
    return translator, chunks


START = {
    "type": "message_start",
    "message": {
        "id": "msg_s",
        "model": MODEL,
        "content": [],
        "usage": {
            "input_tokens": 12,
            "cache_read_input_tokens": 30,
            "cache_creation_input_tokens": 0,
            "output_tokens": 1,
        },
    },
}


def test_stream_text_and_tool_call_fragments_then_finish_and_usage() -> None:
    events = [
        START,
        {"type": "ping"},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me "}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "check."}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "tool_use", "id": "toolu_9", "name": "wx", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": ""},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"c":'},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '"Rome"}'},
        },
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 25}},
        {"type": "message_stop"},
    ]
    translator, chunks = run_stream(events)
    translator.finish()  # does not raise

    assert all(c["object"] == "chat.completion.chunk" and c["id"] == "msg_s" for c in chunks)
    assert all(c["model"] == MODEL and c["created"] == 42 for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}

    deltas = [c["choices"][0]["delta"] for c in chunks[1:-2]]
    assert [d["content"] for d in deltas if "content" in d] == ["Let me ", "check."]
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert calls[0] == {
        "index": 0,
        "id": "toolu_9",
        "type": "function",
        "function": {"name": "wx", "arguments": ""},
    }
    assert [c["function"]["arguments"] for c in calls[1:]] == ['{"c":', '"Rome"}']
    assert all(c["index"] == 0 for c in calls)
    assert orjson.loads("".join(c["function"]["arguments"] for c in calls)) == {"c": "Rome"}

    finish = chunks[-2]["choices"][0]
    assert finish["finish_reason"] == "tool_calls"
    assert finish["delta"] == {}
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 42,
        "completion_tokens": 25,
        "total_tokens": 67,
        "prompt_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 0},
    }


def test_stream_two_tool_calls_get_distinct_indices() -> None:
    def tool(index: int, call_id: str) -> list[Body]:
        return [
            {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "tool_use", "id": call_id, "name": "f", "input": {}},
            },
            {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "input_json_delta", "partial_json": "{}"},
            },
        ]

    events = [START, *tool(0, "a"), *tool(1, "b"), {"type": "message_stop"}]
    _, chunks = run_stream(events)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert [(c["index"], c.get("id")) for c in calls] == [(0, "a"), (0, None), (1, "b"), (1, None)]


def test_stream_max_tokens_finish_reason() -> None:
    events = [
        START,
        {"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 9}},
    ]
    _, chunks = run_stream([*events, {"type": "message_stop"}])
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"


def test_stream_error_event_raises() -> None:
    translator, _ = run_stream([START])
    event = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    with pytest.raises(UpstreamError) as info:
        translator.feed("error", event)
    assert "Overloaded" in info.value.message
    assert info.value.retryable is True


def test_stream_invalid_request_error_is_not_retryable() -> None:
    err = stream_error({"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}})
    assert err.retryable is False
    assert "bad" in err.message


def test_stream_without_message_stop_raises_on_finish() -> None:
    translator, _ = run_stream(
        [START, {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}}]
    )
    with pytest.raises(UpstreamError):
        translator.finish()


# ── provider wiring over a fake HTTP client ──────────────────────────────────────────────────────


class FakeContent:
    def __init__(self, lines: list[bytes]) -> None:
        self._lines = lines

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        for line in self._lines:
            yield line


class FakeResponse:
    def __init__(self, status: int, raw: bytes = b"", lines: list[bytes] | None = None) -> None:
        self.status = status
        self.headers: dict[str, str] = {}
        self._raw = raw
        self.content = FakeContent(lines or [])
        self.released = False

    async def read(self) -> bytes:
        return self._raw

    def release(self) -> None:
        self.released = True


class FakeHttp:
    """Stands in for the gateway's HttpClient and for the provider's own pool in it (`upstream`)."""

    def __init__(self, response: FakeResponse) -> None:
        self.response = response
        self.calls: list[tuple[str, Body, dict[str, str]]] = []

    def upstream(self, name: str, max_connections: int | None = None) -> FakeHttp:
        return self

    async def post(self, url: str, body: bytes, headers: dict[str, str], timeouts: Timeouts) -> FakeResponse:
        self.calls.append((url, orjson.loads(body), headers))
        return self.response


def provider(response: FakeResponse, **config: Any) -> tuple[AnthropicProvider, FakeHttp]:
    http = FakeHttp(response)
    cfg = ProviderConfig(type="anthropic", api_key="sk-ant", **config)
    return AnthropicProvider("anthropic", cfg, http), http  # type: ignore[arg-type]


def sse(events: list[Body]) -> list[bytes]:
    lines: list[bytes] = []
    for event in events:
        lines += [f"event: {event['type']}\n".encode(), b"data: " + orjson.dumps(event) + b"\n", b"\n"]
    return lines


async def test_provider_chat_posts_messages_and_translates_back() -> None:
    answer = {
        "id": "msg_1",
        "model": MODEL,
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 3, "cache_read_input_tokens": 4, "output_tokens": 2},
    }
    prov, http = provider(FakeResponse(200, orjson.dumps(answer)), headers={"anthropic-beta": "x"})
    reply = await prov.chat({"model": "alias", "messages": [{"role": "user", "content": "hi"}]}, MODEL)
    [(url, sent, headers)] = http.calls
    assert url == "https://api.anthropic.com/v1/messages"
    assert headers["x-api-key"] == "sk-ant"
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["anthropic-beta"] == "x"
    assert sent["model"] == MODEL
    assert "stream" not in sent
    assert reply.body["choices"][0]["message"]["content"] == "ok"
    assert reply.usage == Usage(input_tokens=7, cached_input_tokens=4, output_tokens=2)


async def test_provider_http_error_extracts_anthropic_message() -> None:
    raw = orjson.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    prov, http = provider(FakeResponse(529, raw), base_url="http://localhost:9/v1/")
    with pytest.raises(UpstreamError) as info:
        await prov.chat({"messages": [{"role": "user", "content": "hi"}]}, MODEL)
    assert http.calls[0][0] == "http://localhost:9/v1/messages"
    assert "Overloaded" in info.value.message
    assert info.value.retryable is True
    assert info.value.upstream_status == 529


async def test_provider_stream_yields_chunks_and_releases() -> None:
    events = [
        START,
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hey"}},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}},
        {"type": "message_stop"},
    ]
    response = FakeResponse(200, lines=sse(events))
    prov, http = provider(response)
    chunks = [c async for c in prov.stream({"messages": [{"role": "user", "content": "hi"}]}, MODEL)]
    assert http.calls[0][1]["stream"] is True
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:-2]] == ["hey"]
    assert chunks[-1]["usage"]["completion_tokens"] == 2
    assert response.released


async def test_provider_stream_cut_short_raises() -> None:
    prov, _ = provider(FakeResponse(200, lines=sse([START])))
    with pytest.raises(UpstreamError):
        async for _ in prov.stream({"messages": [{"role": "user", "content": "hi"}]}, MODEL):
            pass
