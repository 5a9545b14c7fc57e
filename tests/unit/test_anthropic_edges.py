"""Anthropic translation edges: parameters that would change the answer and cannot be carried are
refused (not dropped), answers with fields of odd types fail as upstream errors, and an answer
without usage leaves the usage to the gateway's local estimate."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.unit.test_anthropic_stream import FakeResponse, provider, sse
from thrifty.errors import InvalidRequest, UpstreamError
from thrifty.providers.anthropic_request import to_anthropic_request
from thrifty.providers.anthropic_response import StreamTranslator, to_openai_response, usage_from_anthropic
from thrifty.types import Body, Usage

MODEL = "claude-sonnet-4-5"
HI = [{"role": "user", "content": "hi"}]
FUNCTION = {"name": "wx", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}


def request(messages: list[Body] = HI, **fields: Any) -> Body:
    return to_anthropic_request({"model": "x", "messages": messages, **fields}, MODEL)


# ── request: refused rather than silently dropped ────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"functions": [FUNCTION]}, "functions"),
        ({"functions": [FUNCTION], "function_call": {"name": "wx"}}, "functions"),
        ({"function_call": "auto"}, "function_call"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
    ],
)
def test_parameters_that_change_the_answer_are_a_400_naming_them(fields: Body, param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        request(**fields)
    assert info.value.param == param
    assert info.value.status == 400
    assert param in info.value.message


def test_functions_400_says_to_use_tools() -> None:
    with pytest.raises(InvalidRequest) as info:
        request(functions=[FUNCTION])
    assert "tools" in info.value.message


def test_legacy_function_call_history_is_a_400() -> None:
    history = [
        *HI,
        {"role": "assistant", "content": None, "function_call": {"name": "wx", "arguments": "{}"}},
    ]
    with pytest.raises(InvalidRequest) as info:
        request(history)
    assert info.value.param == "messages"
    assert "function_call" in info.value.message


@pytest.mark.parametrize(
    "part",
    [
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
        {"type": "file", "file": {"file_id": "file-1"}},
    ],
)
def test_audio_and_file_parts_are_a_400(part: Body) -> None:
    with pytest.raises(InvalidRequest) as info:
        request([{"role": "user", "content": [part]}])
    assert info.value.param == "messages"


@pytest.mark.parametrize("fields", [{"modalities": ["text"]}, {"modalities": None}, {"audio": None}])
def test_text_only_modalities_are_fine(fields: Body) -> None:
    assert request(**fields)["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]


def test_empty_functions_list_is_harmless() -> None:
    assert "tools" not in request(functions=[])


def test_logprobs_are_dropped_not_refused() -> None:
    """The cascade's logprob gate asks every tier for logprobs; an Anthropic tier must still answer."""
    out = request(logprobs=True, top_logprobs=3)
    assert "logprobs" not in out and "top_logprobs" not in out


def test_message_name_is_dropped() -> None:
    out = request([{"role": "user", "content": "hi", "name": "alice"}])
    assert out["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]


# ── answers with fields of odd types ─────────────────────────────────────────────────────────────


START: Body = {
    "type": "message_start",
    "message": {"id": "m", "model": MODEL, "usage": {"input_tokens": 5, "output_tokens": 1}},
}


def feed_all(events: list[Body]) -> tuple[StreamTranslator, list[Body]]:
    translator = StreamTranslator(created=1)
    chunks: list[Body] = []
    for event in events:
        chunks.extend(translator.feed(str(event.get("type")), event))
    return translator, chunks


@pytest.mark.parametrize(
    "event",
    [
        {"type": "content_block_start", "index": "zero", "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_start", "index": None, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_start", "index": True, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_start", "index": 0, "content_block": "text"},
        {"type": "content_block_delta", "index": [0], "delta": {"type": "text_delta", "text": "x"}},
        {"type": "content_block_delta", "index": 0, "delta": "x"},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": 5}},
        {"type": "content_block_stop", "index": {"i": 0}},
        {"type": "message_start", "message": "hello"},
        {"type": "message_delta", "delta": "end_turn"},
        {"type": "message_delta", "delta": {"stop_reason": ["end_turn"]}},
    ],
)
def test_unreadable_stream_event_is_an_upstream_error(event: Body) -> None:
    translator = StreamTranslator(created=1)
    translator.feed("message_start", START)
    with pytest.raises(UpstreamError) as info:
        translator.feed(str(event["type"]), event)
    assert info.value.status == 502
    assert "could not be read" in info.value.message


@pytest.mark.parametrize(
    "usage",
    [
        {"input_tokens": "abc", "output_tokens": 1},
        {"input_tokens": 5, "output_tokens": 1.5},
        {"input_tokens": 5, "output_tokens": True},
        {"input_tokens": -5, "output_tokens": 1},
        {"input_tokens": 5, "output_tokens": 1, "cache_read_input_tokens": "lots"},
        "abc",
        ["input_tokens", 5],
    ],
)
def test_unreadable_stream_usage_is_treated_as_missing(usage: object) -> None:
    start = {"type": "message_start", "message": {"id": "m", "model": MODEL, "usage": usage}}
    translator, chunks = feed_all(
        [
            start,
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": "hi"}},
            {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": usage},
            {"type": "message_stop"},
        ]
    )
    assert translator.final_usage() is None
    assert all("usage" not in chunk for chunk in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    "usage",
    [
        None,
        {},
        "abc",
        {"input_tokens": "abc", "output_tokens": 3},
        {"input_tokens": 3},
        {"output_tokens": 3},
        {"input_tokens": 3, "output_tokens": None},
    ],
)
def test_unreadable_or_missing_usage_is_none(usage: Any) -> None:
    assert usage_from_anthropic(usage) is None


def test_null_cache_counts_are_zero() -> None:
    usage = {
        "input_tokens": 3,
        "output_tokens": 2,
        "cache_read_input_tokens": None,
        "cache_creation_input_tokens": None,
    }
    assert usage_from_anthropic(usage) == Usage(input_tokens=3, output_tokens=2)


@pytest.mark.parametrize(
    "content",
    [
        ["hello"],
        [{"type": "text", "text": "hi"}, 7],
        [None],
        [{"type": "text", "text": ["hi"]}],
        [{"type": "tool_use", "id": "t", "name": ["wx"], "input": {}}],
        [{"type": "tool_use", "id": 5, "name": "wx", "input": {}}],
    ],
)
def test_unreadable_content_block_is_an_upstream_error(content: list[Any]) -> None:
    data = {"id": "m", "model": MODEL, "content": content, "stop_reason": "end_turn"}
    with pytest.raises(UpstreamError) as info:
        to_openai_response(data, created=1)
    assert info.value.status == 502
    assert "could not be read" in info.value.message


@pytest.mark.parametrize("stop_reason", [["end_turn"], {"x": 1}, 7])
def test_unreadable_stop_reason_is_an_upstream_error(stop_reason: object) -> None:
    data = {"id": "m", "model": MODEL, "content": [{"type": "text", "text": "x"}], "stop_reason": stop_reason}
    with pytest.raises(UpstreamError):
        to_openai_response(data, created=1)


def test_unreadable_usage_in_a_message_is_left_to_the_gateway() -> None:
    data = {
        "id": "m",
        "model": MODEL,
        "content": [{"type": "text", "text": "hello"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": "abc", "output_tokens": 2},
    }
    body = to_openai_response(data, created=1)
    assert body["choices"][0]["message"]["content"] == "hello"
    assert "usage" not in body


# ── the provider: no usage → None (the gateway estimates) ────────────────────────────────────────


async def test_provider_chat_without_usage_reports_none() -> None:
    answer = {
        "id": "m",
        "model": MODEL,
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
    }
    prov, _ = provider(FakeResponse(200, orjson.dumps(answer)))
    reply = await prov.chat({"messages": HI}, MODEL)
    assert reply.usage is None
    assert "usage" not in reply.body


async def test_provider_stream_without_usage_sends_no_usage_chunk() -> None:
    events = [
        {"type": "message_start", "message": {"id": "m", "model": MODEL}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hey"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}},
        {"type": "message_stop"},
    ]
    prov, _ = provider(FakeResponse(200, lines=sse(events)))
    chunks = [c async for c in prov.stream({"messages": HI}, MODEL)]
    assert all(c.get("usage") is None for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_provider_chat_with_odd_content_is_an_upstream_error() -> None:
    answer = {"id": "m", "model": MODEL, "content": ["hello"], "stop_reason": "end_turn"}
    prov, _ = provider(FakeResponse(200, orjson.dumps(answer)))
    with pytest.raises(UpstreamError) as info:
        await prov.chat({"messages": HI}, MODEL)
    assert info.value.status == 502
