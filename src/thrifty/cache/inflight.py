"""Identical requests in flight at once: the first goes upstream, the others wait for its answer.

Twenty clients asking the same question in the same second would otherwise make twenty upstream
calls, since none of them finds an entry yet. The first miss of a key *leads*: it goes upstream and
stores the answer. A later miss of the same key, while the leader is in flight, waits for the leader
to end, then looks the key up again: a hit if the leader stored an answer. If it did not (it failed,
or its stream was cut), one of the waiting misses leads next and the others wait for it in turn, so
a failing leader does not release a burst of identical calls; a miss waits `wait_s` in all, then
goes upstream itself. Keys are exact-cache keys, so tenant and namespace scope the
sharing as they scope every entry. Per process: replicas and workers do not wait for each other.
"""

from __future__ import annotations

import asyncio
import contextlib


class InFlight:
    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        self._leaders: dict[str, asyncio.Event] = {}

    def lead(self, key: str) -> asyncio.Event | None:
        """Become the key's leader if it has none; returns the event to `done` when it ends."""
        if self.wait_s <= 0 or key in self._leaders:
            return None
        event = self._leaders[key] = asyncio.Event()
        return event

    def done(self, key: str, event: asyncio.Event | None) -> None:
        """The leader ended (answer stored, failed or abandoned): wake whoever waits on it."""
        if event is None:
            return
        if self._leaders.get(key) is event:
            del self._leaders[key]
        event.set()

    async def wait(self, key: str, deadline: float) -> bool:
        """Wait, until `deadline` (loop time), for the key's leader if there is one; True when one
        ended while we waited."""
        event = self._leaders.get(key)
        remaining = deadline - asyncio.get_running_loop().time()
        if event is None or remaining <= 0:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), remaining)
        return event.is_set()

    def deadline(self) -> float:
        """The loop time a miss that starts waiting now stops waiting at, however many leaders fail."""
        return asyncio.get_running_loop().time() + self.wait_s
