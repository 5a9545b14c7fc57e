"""A chat stream that reports its final cost once it ends, however it ends."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from thrifty.stream_wrapper import StreamWrapper
from thrifty.streaming import ChatStream

OnEnd = Callable[[float | None], Awaitable[None]]
"""Called once with the stream's booked cost (None when it did not complete)."""


class MeteredStream(StreamWrapper):
    """Calls `on_end` once when the stream finishes, fails or is closed."""

    def __init__(self, inner: ChatStream, on_end: OnEnd, headers: dict[str, str]) -> None:
        super().__init__(inner, headers)
        self._on_end: OnEnd | None = on_end

    async def _end(self) -> None:
        on_end, self._on_end = self._on_end, None
        if on_end is not None:
            await on_end(self.inner.cost_usd)

    _finished = _failed = _closed = _end
