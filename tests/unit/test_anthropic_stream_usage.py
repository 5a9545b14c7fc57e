"""A streamed Anthropic answer is booked on the usage Anthropic reported: the 1-hour cache-write split
(which the OpenAI-shaped usage chunk cannot carry), and for a stream cut midway the exact input of
`message_start`, with only the unreported output counted locally."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.unit.test_anthropic_stream_commit import (
    EMPTY_TEXT,
    OVERLOADED,
    anthropic,
    finish,
    pool,
    text_delta,
)
from thrifty.errors import UpstreamError
from thrifty.streaming import ChatStream
from thrifty.types import Body, Usage

SPLIT = {
    "input_tokens": 1000,
    "cache_creation_input_tokens": 3000,
    "cache_read_input_tokens": 4000,
    "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
    "output_tokens": 1,
}
LOCAL = Usage(input_tokens=77, output_tokens=5, estimated=True)


def start(usage: Body) -> Body:
    return {
        "type": "message_start",
        "message": {"id": "msg_u", "model": "claude", "content": [], "usage": usage},
    }


class Booked:
    def __init__(self) -> None:
        self.calls: list[tuple[Usage | None, UpstreamError | None]] = []

    def __call__(self, usage: Usage | None, text: str, error: UpstreamError | None, latency: float) -> None:
        self.calls.append((usage, error))


async def chat_stream(events: list[Body], *, include_usage: bool = False) -> tuple[ChatStream, Booked]:
    """The events through the real provider and pool, into a ChatStream (as `Dispatch` wires it)."""
    opened = await pool(anthropic("a", events), retries=0).stream(
        "m", {"messages": [{"role": "user", "content": "hi"}]}, lambda *_: None
    )
    booked = Booked()
    stream = ChatStream(
        first=opened.first,
        rest=opened.rest,
        request_id="r",
        served_model="claude",
        provider="a",
        include_usage=include_usage,
        finish=booked,
        started=time.perf_counter(),
        estimate=lambda text: LOCAL,
    )
    return stream, booked


async def drain(stream: ChatStream) -> list[Body]:
    return [chunk async for chunk in stream]


@pytest.mark.parametrize("include_usage", [False, True])
async def test_a_finished_stream_is_booked_with_its_one_hour_cache_writes(include_usage: bool) -> None:
    events = [start(SPLIT), EMPTY_TEXT, text_delta("hi"), *finish("end_turn", 100)]
    stream, booked = await chat_stream(events, include_usage=include_usage)
    chunks = await drain(stream)
    expected = Usage(
        input_tokens=8000,
        cached_input_tokens=4000,
        cache_write_tokens=3000,
        cache_write_long_tokens=2000,
        output_tokens=100,
    )
    assert booked.calls == [(expected, None)] and stream.usage == expected
    usage_chunks = [c for c in chunks if c.get("usage")]
    if include_usage:  # the client's usage chunk stays the OpenAI shape: no 1-hour split in it
        (chunk,) = usage_chunks
        assert chunk["usage"]["prompt_tokens_details"] == {"cached_tokens": 4000, "cache_write_tokens": 3000}
        assert set(chunk["usage"]) == {
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "prompt_tokens_details",
        }
    else:
        assert usage_chunks == []


async def test_a_stream_cut_by_an_error_keeps_the_reported_input_and_counts_only_the_output() -> None:
    reported = {"input_tokens": 10, "cache_read_input_tokens": 2000, "output_tokens": 1}
    stream, booked = await chat_stream(
        [start(reported), EMPTY_TEXT, text_delta("Hello there, partial"), OVERLOADED]
    )
    with pytest.raises(UpstreamError):
        await drain(stream)
    ((usage, error),) = booked.calls
    assert error is not None and error.upstream_status == 529
    assert usage == Usage(input_tokens=2010, cached_input_tokens=2000, output_tokens=5, estimated=True)


async def test_a_stream_cut_after_the_output_was_reported_is_exact() -> None:
    events = [
        start({"input_tokens": 10, "output_tokens": 1}),
        EMPTY_TEXT,
        text_delta("x"),
        finish("end_turn", 9)[0],
    ]
    stream, booked = await chat_stream(events)  # message_delta came, then the stream ended early
    with pytest.raises(UpstreamError):
        await drain(stream)
    assert booked.calls[0][0] == Usage(input_tokens=10, output_tokens=9)


async def test_a_client_that_leaves_is_booked_on_the_reported_input() -> None:
    stream, booked = await chat_stream(
        [start({"input_tokens": 10, "output_tokens": 1}), EMPTY_TEXT, text_delta("a")]
    )
    await stream.__anext__()  # the role chunk
    await stream.aclose()
    ((usage, error),) = booked.calls
    assert error is not None and error.status == 499
    assert (usage.input_tokens, usage.output_tokens, usage.estimated) == (10, 5, True)


async def test_a_stream_without_reported_usage_is_booked_as_before() -> None:
    """An OpenAI-shaped stream (no `reported_usage`): the usage chunk's counts, or none (local count)."""

    async def rest(chunks: list[Body]) -> AsyncIterator[Body]:
        for chunk in chunks:
            yield chunk

    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    chunks: list[Any] = [
        {"choices": [{"index": 0, "delta": {"content": "x"}}]},
        {"choices": [], "usage": usage},
    ]
    booked = Booked()
    stream = ChatStream(
        first={"choices": [{"index": 0, "delta": {"role": "assistant"}}]},
        rest=rest(chunks),
        request_id="r",
        served_model="m",
        provider="p",
        include_usage=False,
        finish=booked,
        started=time.perf_counter(),
        estimate=lambda text: LOCAL,
    )
    await drain(stream)
    assert booked.calls == [(Usage(input_tokens=5, output_tokens=2), None)]
