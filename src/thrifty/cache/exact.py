"""Exact lookup: the canonical request hash (keys.exact_key) in an `ExactStore`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from thrifty.cache.backends import ExactStore
    from thrifty.cache.entry import Entry


class ExactCache:
    def __init__(self, store: ExactStore) -> None:
        self.store = store

    async def lookup(self, key: str, max_age: float | None = None) -> Entry | None:
        entry = await self.store.get(key)
        if entry is None or (max_age is not None and entry.age() > max_age):
            return None
        return entry

    async def store_answer(self, key: str, entry: Entry, ttl_s: float) -> None:
        await self.store.put(key, entry, ttl_s)

    async def close(self) -> None:
        await self.store.close()
