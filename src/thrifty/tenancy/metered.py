"""A chat stream that reports its final cost once it ends, however it ends."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from thrifty.streaming import ChatStream
from thrifty.types import Body

OnEnd = Callable[[float | None], Awaitable[None]]
"""Called once with the stream's booked cost (None when it did not complete)."""


class MeteredStream:
    """Wraps a ChatStream (same interface) and calls `on_end` when it finishes, fails or is closed."""

    def __init__(self, inner: ChatStream, on_end: OnEnd, headers: dict[str, str]) -> None:
        self.inner = inner
        self.headers = headers
        self._on_end: OnEnd | None = on_end

    @property
    def request_id(self) -> str:
        return self.inner.request_id

    @property
    def served_model(self) -> str:
        return self.inner.served_model

    @property
    def provider(self) -> str:
        return self.inner.provider

    @property
    def include_usage(self) -> bool:
        return self.inner.include_usage

    @property
    def cost_usd(self) -> float | None:
        return self.inner.cost_usd

    def __aiter__(self) -> MeteredStream:
        return self

    async def __anext__(self) -> Body:
        try:
            return await self.inner.__anext__()
        except StopAsyncIteration:
            await self._end()
            raise
        except BaseException:
            await self._end()
            raise

    async def _end(self) -> None:
        on_end, self._on_end = self._on_end, None
        if on_end is not None:
            await on_end(self.inner.cost_usd)

    async def aclose(self) -> None:
        try:
            await self.inner.aclose()
        finally:
            await self._end()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
