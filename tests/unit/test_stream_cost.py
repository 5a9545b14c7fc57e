"""A stream's usage chunk carries the request's booked cost, rejected cascade tiers included."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from thrifty.errors import UpstreamError
from thrifty.streaming import ChatStream
from thrifty.types import Body, Usage

CHUNK = {"id": "c", "object": "chat.completion.chunk", "model": "m"}


def text(content: str) -> Body:
    return {**CHUNK, "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}]}


USAGE = {**CHUNK, "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}


async def chunks(*items: Body) -> AsyncIterator[Body]:
    for item in items:
        yield item


def stream(rest: AsyncIterator[Body], booked: list[float], include_usage: bool = True) -> ChatStream:
    def finish(usage: Usage | None, text: str, error: UpstreamError | None, latency: float) -> None:
        booked.append(0.25)
        s.cost_usd = s.prior_cost_usd + 0.25

    s = ChatStream(
        first=text("hi"),
        rest=rest,
        request_id="r",
        served_model="m",
        provider="p",
        include_usage=include_usage,
        finish=finish,
        started=time.perf_counter(),
    )
    return s


async def test_the_last_usage_chunk_has_the_booked_cost_with_earlier_tiers():
    booked: list[float] = []
    s = stream(chunks(text(" there"), USAGE), booked)
    s.prior_cost_usd = 0.5  # a rejected cascade tier
    got = [c async for c in s]
    assert booked == [0.25]  # booked before the usage chunk was handed out
    assert got[-1]["usage"]["cost"] == 0.75 and got[-1]["usage"]["completion_tokens"] == 2
    assert [c["choices"][0]["delta"]["content"] for c in got[:-1]] == ["hi", " there"]


async def test_chunks_after_the_usage_chunk_are_still_delivered():
    booked: list[float] = []
    late = text("!")
    got = [c async for c in stream(chunks(USAGE, late), booked)]
    assert "cost" not in got[1]["usage"]  # not the end yet: no cost known
    assert got[2] == late and booked == [0.25]


async def test_no_usage_chunk_unless_asked():
    booked: list[float] = []
    got = [c async for c in stream(chunks(USAGE), booked, include_usage=False)]
    assert all("usage" not in c for c in got) and booked == [0.25]


async def broken(*items: Body) -> AsyncIterator[Body]:
    for item in items:
        yield item
    raise TypeError("'<' not supported between 'str' and 'int'")  # a translator meeting `"index": "zero"`


async def test_a_chunk_the_provider_layer_cannot_read_ends_the_stream_as_an_upstream_error():
    ended: list[UpstreamError | None] = []
    s = ChatStream(
        first=text("hi"),
        rest=broken(text(" there")),
        request_id="r",
        served_model="m",
        provider="p",
        include_usage=False,
        finish=lambda usage, text, error, latency: ended.append(error),
        started=time.perf_counter(),
    )
    got = []
    try:
        async for chunk in s:
            got.append(chunk)
    except UpstreamError as exc:
        assert exc.status == 502 and "could not be read" in exc.message
    else:
        raise AssertionError("the stream ended cleanly")
    assert len(got) == 2 and len(ended) == 1 and ended[0] is not None and ended[0].status == 502
    await s.aclose()
    assert len(ended) == 1  # booked once, as the upstream's failure, not as a client disconnect


async def test_unreadable_usage_is_counted_locally_and_chunks_name_the_model_asked_for():
    booked: list[Usage | None] = []
    weird = {**USAGE, "model": "primary-up", "usage": {"prompt_tokens": "abc", "completion_tokens": 2}}
    s = ChatStream(
        first={**text("hi"), "model": "primary-up"},
        rest=chunks(weird),
        request_id="r",
        served_model="resilient",
        provider="p",
        include_usage=True,
        finish=lambda usage, text, error, latency: booked.append(usage),
        started=time.perf_counter(),
        estimate=lambda text: Usage(input_tokens=7, output_tokens=1, estimated=True),
    )
    got = [c async for c in s]
    assert {c["model"] for c in got} == {"resilient"}
    assert got[-1]["usage"]["prompt_tokens"] == 7 and booked[0] is not None and booked[0].estimated


def test_usage_counts_that_are_not_counts_are_no_usage():
    assert Usage.from_openai({"prompt_tokens": 3, "completion_tokens": 2.0}) == Usage(3, output_tokens=2)
    for bad in ({"prompt_tokens": "abc"}, {"completion_tokens": -1}, {"prompt_tokens": True}, ["x"]):
        assert Usage.from_openai(bad) is None


async def test_an_endless_stream_keeps_a_bounded_text_for_its_local_count():
    """A stream cut by its client (or without usage) is counted locally at the end; an endless one used to
    hold every byte it sent (18 MB streamed: 869 MB RSS)."""
    from thrifty.streaming import MAX_COUNTED_CHARS

    piece = "x" * 100_000
    counted: list[str] = []

    async def endless() -> AsyncIterator[Body]:
        for _ in range(MAX_COUNTED_CHARS // len(piece) + 20):
            yield text(piece)

    s = ChatStream(
        first=text("hi"),
        rest=endless(),
        request_id="r",
        served_model="m",
        provider="p",
        include_usage=False,
        finish=lambda usage, text, error, latency: counted.append(text),
        started=time.perf_counter(),
    )
    received = [chunk async for chunk in s]
    assert len(received) == MAX_COUNTED_CHARS // len(piece) + 21  # the client still gets everything
    assert MAX_COUNTED_CHARS <= len(counted[0]) <= MAX_COUNTED_CHARS + len(piece)
