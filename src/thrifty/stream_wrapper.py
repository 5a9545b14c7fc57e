"""A chat stream wrapped by a stage: same interface as the inner `ChatStream`, with hooks on its life.

Subclasses override what they need: `_observe(chunk)` sees each chunk on its way to the client,
`_finished()` runs when the stream ends cleanly, `_failed()` when reading it raised, `_closed()` after
the client closed it (whether or not it had ended, or was `cut` by the server first).
"""

from __future__ import annotations

from typing import Any

from thrifty.errors import UpstreamError
from thrifty.streaming import ChatStream
from thrifty.types import Body


class StreamWrapper:
    def __init__(self, inner: ChatStream, headers: dict[str, str]) -> None:
        self.inner = inner
        self.headers = headers

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

    @property
    def prior_cost_usd(self) -> float:
        return self.inner.prior_cost_usd

    @prior_cost_usd.setter
    def prior_cost_usd(self, value: float) -> None:
        self.inner.prior_cost_usd = value

    def __aiter__(self) -> StreamWrapper:
        return self

    async def __anext__(self) -> Body:
        try:
            chunk = await self.inner.__anext__()
        except StopAsyncIteration:
            await self._finished()
            raise
        except BaseException:
            await self._failed()
            raise
        self._observe(chunk)
        return chunk

    def cut(self, error: UpstreamError) -> None:
        self.inner.cut(error)

    async def aclose(self) -> None:
        try:
            await self.inner.aclose()
        finally:
            await self._closed()

    def _observe(self, chunk: Body) -> None:
        pass

    async def _finished(self) -> None:
        pass

    async def _failed(self) -> None:
        pass

    async def _closed(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
