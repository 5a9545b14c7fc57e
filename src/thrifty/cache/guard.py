"""A cache store's health, so that a store that is down or hung costs a request little and fails none.

Every call to a store (Redis, Postgres, SQLite) goes through its `StoreGuard`: it is bounded by
`timeout_s`, and a call that fails or times out is logged and answered with the caller's fallback
(a miss, nothing stored). After a failure the store is left alone for `cooldown_s` — calls in that
time get the fallback at once instead of each paying the timeout — and then one call at a time
probes it (the others still get the fallback) until one succeeds. The calls already in flight when
it failed still wait out their timeouts. The exact and the semantic store have a guard each, so one
store's outage leaves the other one serving.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

log = logging.getLogger("thrifty.cache")
T = TypeVar("T")


class StoreGuard:
    def __init__(self, name: str, timeout_s: float, cooldown_s: float) -> None:
        self.name = name
        self.timeout_s = timeout_s
        self.cooldown_s = cooldown_s
        self.down_until = 0.0
        """0 while the store is healthy; else when it may be tried again."""
        self.probing = False
        self._down_since = 0.0
        self._error = ""

    @property
    def health(self) -> str:
        """`ok`, or since when and why the store is bypassed (`/readyz`): `exact store down for 12s
        (ConnectionError)`."""
        if self.up:
            return "ok"
        since = time.monotonic() - self._down_since
        return f"{self.name} store down for {since:.0f}s ({self._error})"

    @property
    def up(self) -> bool:
        return self.down_until == 0.0

    def _admit(self) -> bool:
        """Healthy: every call. Down: none until the cooldown ends, then one probe at a time."""
        if self.up:
            return True
        if self.probing or time.monotonic() < self.down_until:
            return False
        self.probing = True
        return True

    async def run(self, call: Callable[[], Awaitable[T]], fallback: T) -> T:
        """`call()`'s result, or `fallback` when the store is resting, fails or exceeds the timeout."""
        if not self._admit():
            return fallback
        probe = not self.up
        try:
            async with asyncio.timeout(self.timeout_s):
                result = await call()
        except Exception as exc:  # TimeoutError included: any store failure degrades to the fallback
            if self.up or probe:  # calls already in flight when it went down change nothing
                log.warning(
                    "cache %s store failed (%s: %s); bypassing it for %.0f s",
                    self.name, type(exc).__name__, exc, self.cooldown_s,
                )  # fmt: skip
                if self.up:  # a failed probe leaves the outage's start as it was
                    self._down_since = time.monotonic()
                self._error = type(exc).__name__
                self.down_until = time.monotonic() + self.cooldown_s
            return fallback
        finally:
            if probe:
                self.probing = False
        if probe:
            self.down_until = 0.0
            log.warning("cache %s store is back", self.name)
        return result
