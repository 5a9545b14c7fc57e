"""Key lookups with a small per-replica cache, and the admin operations that invalidate it."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable
from typing import Any, TypeVar

from thrifty.tenancy.errors import StateUnavailable
from thrifty.tenancy.keys import KeyHasher, KeyStore, VirtualKey, mint

log = logging.getLogger("thrifty.tenancy")
T = TypeVar("T")

_MAX_CACHED = 10_000


class _Cache:
    """Bounded LRU of lookups: value (or None for "no such key") and when it was fetched."""

    def __init__(self, size: int = _MAX_CACHED) -> None:
        self.size = size
        self._items: OrderedDict[str, tuple[VirtualKey | None, float]] = OrderedDict()

    def get(self, name: str, max_age: float) -> tuple[bool, VirtualKey | None]:
        item = self._items.get(name)
        if item is None or time.monotonic() - item[1] > max_age:
            return False, None
        self._items.move_to_end(name)
        return True, item[0]

    def put(self, name: str, key: VirtualKey | None) -> None:
        self._items[name] = (key, time.monotonic())
        self._items.move_to_end(name)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def drop_key(self, key_id: str) -> None:
        for name in [n for n, (k, _) in self._items.items() if k is not None and k.id == key_id]:
            del self._items[name]
        self._items.pop("id:" + key_id, None)


class KeyDirectory:
    """Finds the key behind a bearer token or an id. A lookup is trusted for `ttl` seconds; while the
    store is down, entries up to `stale_ttl` old keep serving (then: 503)."""

    def __init__(self, store: KeyStore, hasher: KeyHasher, *, ttl: float, stale_ttl: float) -> None:
        self.store = store
        self.hasher = hasher
        self.ttl = ttl
        self.stale_ttl = max(stale_ttl, ttl)
        self._cache = _Cache()

    async def _lookup(self, name: str, fetch: Any) -> VirtualKey | None:
        fresh, key = self._cache.get(name, self.ttl)
        if fresh:
            return key
        try:
            key = await fetch()
        except Exception as exc:
            stale, old = self._cache.get(name, self.stale_ttl)
            log.warning("key store unreachable (%s); cached entry used: %s", type(exc).__name__, stale)
            if stale:
                return old
            raise StateUnavailable("The key store is unreachable; try again shortly.") from None
        self._cache.put(name, key)
        return key

    async def by_token(self, token: str) -> VirtualKey | None:
        digest = self.hasher.hash(token)
        return await self._lookup("h:" + digest, lambda: self.store.by_hash(digest))

    async def by_id(self, key_id: str) -> VirtualKey | None:
        return await self._lookup("id:" + key_id, lambda: self.store.by_id(key_id))

    # ---- admin operations (uncached reads, invalidate on write)

    async def create(self, tenant: str | None, **fields: Any) -> tuple[str, VirtualKey]:
        token, key = mint(tenant, **fields)
        await _admin(self.store.insert(key, self.hasher.hash(token)))
        return token, key

    async def get(self, key_id: str) -> VirtualKey | None:
        return await _admin(self.store.by_id(key_id))

    async def list(self, tenant: str | None = None, include_revoked: bool = True) -> list[VirtualKey]:
        return await _admin(self.store.list(tenant, include_revoked))

    async def update(self, key_id: str, changes: dict[str, Any]) -> VirtualKey | None:
        key = await self.get(key_id)
        if key is None:
            return None
        key = key.with_changes(changes)
        await _admin(self.store.save(key))
        self._cache.drop_key(key_id)
        return key

    async def revoke(self, key_id: str) -> VirtualKey | None:
        return await self.update(key_id, {"revoked": True})


async def _admin(op: Awaitable[T]) -> T:
    """Run an admin store operation; an unreachable store is a 503, never a 500."""
    try:
        return await op
    except Exception as exc:
        log.error("key store operation failed: %s", type(exc).__name__)
        raise StateUnavailable("The key store is unreachable; try again shortly.") from None
