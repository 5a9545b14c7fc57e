"""Identical requests in flight at once: the first goes upstream, the others wait for its answer.

Twenty clients asking the same question in the same second would otherwise make twenty upstream
calls, since none of them finds an entry yet. The first miss of a key *leads*: it goes upstream and
stores the answer. A later miss of the same key, while the leader is in flight, waits for the leader
to end and is handed the answer it stored, in memory (so it does not depend on the store being up:
with Redis down, twenty identical requests still make one call, each in about one upstream
latency), or, when the leader handed none, looks the key up again. If it stored nothing (it failed,
its stream was cut, or its answer is not one the cache keeps), one of the waiting misses leads next
and the others wait for it in turn, so a failing leader does not release a burst of identical calls;
a miss waits `wait_s` in all, then goes upstream itself. Keys are exact-cache keys, so tenant and
namespace scope the sharing as they scope every entry. Per process: replicas and workers do not wait
for each other.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from thrifty.cache.entry import Entry


@dataclass(eq=False, slots=True)
class Lease:
    """One leader's turn: set once it ends, with the answer it stored (None: it stored none)."""

    ended: asyncio.Event = field(default_factory=asyncio.Event)
    waiters: int = 0
    """Requests that waited for it (none: its answer is not copied for anyone)."""
    stored: bytes | None = None
    """The answer as the store holds it: a snapshot, whatever later happens to the leader's body."""

    def answer(self) -> Entry | None:
        """The leader's answer, a copy of its own for each waiting request (as a store hit would be)."""
        return None if self.stored is None else Entry.from_bytes(self.stored)


class InFlight:
    def __init__(self, wait_s: float) -> None:
        self.wait_s = wait_s
        self._leaders: dict[str, Lease] = {}

    def lead(self, key: str) -> Lease | None:
        """Become the key's leader if it has none; returns the lease to `done` when it ends."""
        if self.wait_s <= 0 or key in self._leaders:
            return None
        lease = self._leaders[key] = Lease()
        return lease

    def done(self, key: str, lease: Lease | None, answer: Entry | None = None) -> None:
        """The leader ended, with the answer it stored (or None: failed, abandoned, not storable):
        hand it to whoever waits on it."""
        if lease is None:
            return
        if self._leaders.get(key) is lease:
            del self._leaders[key]
        if answer is not None and lease.waiters:  # no one can start waiting once it has ended
            lease.stored = answer.to_bytes()
        lease.ended.set()

    async def wait(self, key: str, deadline: float) -> Lease | None:
        """Wait, until `deadline` (loop time), for the key's leader if there is one; its lease when it
        ended while we waited, else None."""
        lease = self._leaders.get(key)
        remaining = deadline - asyncio.get_running_loop().time()
        if lease is None or remaining <= 0:
            return None
        lease.waiters += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(lease.ended.wait(), remaining)
        return lease if lease.ended.is_set() else None

    def deadline(self) -> float:
        """The loop time a miss that starts waiting now stops waiting at, however many leaders fail."""
        return asyncio.get_running_loop().time() + self.wait_s
