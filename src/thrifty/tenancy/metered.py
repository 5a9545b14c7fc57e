"""A chat stream that reports its final cost once it ends, however it ends."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from thrifty.stream_wrapper import StreamWrapper
from thrifty.streaming import ChatStream

OnEnd = Callable[[float | None], Awaitable[None]]
"""Called once with the stream's booked cost (None when it did not complete)."""


class MeteredStream(StreamWrapper):
    """Calls `on_end` once when the stream finishes, fails or is closed, with what it was booked at.

    A client that leaves cancels the stream while it waits for a chunk: that failure comes before the
    stream is booked (its 499 row is written when it is closed), so it settles on close, not then."""

    def __init__(self, inner: ChatStream, on_end: OnEnd, headers: dict[str, str]) -> None:
        super().__init__(inner, headers)
        self._on_end: OnEnd | None = on_end

    async def _end(self) -> None:
        on_end, self._on_end = self._on_end, None
        if on_end is not None:
            await on_end(self.inner.cost_usd)

    async def _failed(self) -> None:
        if self.inner.cost_usd is not None:  # an upstream failure, already booked
            await self._end()

    _finished = _closed = _end
