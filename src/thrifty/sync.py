"""Blocking library calls: a Gateway driven on a private event loop thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

from thrifty.config import Config
from thrifty.gateway import DEFAULT_TENANT, Gateway
from thrifty.types import Body, ChatResult, Tenant

T = TypeVar("T")


class SyncGateway:
    """`with SyncGateway(config) as gw: gw.chat({...})` — the same pipeline, no async needed."""

    def __init__(self, config: Config | None = None, *, gateway: Gateway | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="thrifty-sync", daemon=True)
        self._thread.start()
        self.gateway = gateway if gateway is not None else self._run(_make(config))
        self._run(self.gateway.start())

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def chat(self, body: Body, tenant: Tenant = DEFAULT_TENANT) -> ChatResult:
        return self._run(self.gateway.chat(body, tenant))

    def chat_stream(self, body: Body, tenant: Tenant = DEFAULT_TENANT) -> Iterator[Body]:
        stream = self._run(self.gateway.chat_stream(body, tenant))
        try:
            while True:
                try:
                    yield self._run(stream.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            self._run(stream.aclose())

    def embeddings(self, body: Body, tenant: Tenant = DEFAULT_TENANT) -> ChatResult:
        return self._run(self.gateway.embeddings(body, tenant))

    def close(self) -> None:
        if self._loop.is_running():
            self._run(self.gateway.aclose())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    def __enter__(self) -> SyncGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _make(config: Config | None) -> Gateway:
    return Gateway(config)
