"""Exact entries in Redis, shared by every gateway replica; TTL is Redis's own (`SET … PX`).

The size bound is Redis's: run it with `maxmemory` and `maxmemory-policy allkeys-lru` (docs/caching.md).
"""

from __future__ import annotations

from typing import Any

from thrifty.cache.entry import Entry

PREFIX = "thrifty:cache:exact:"


class RedisExactStore:
    def __init__(self, url: str) -> None:
        import redis.asyncio as aioredis

        self.client: Any = aioredis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)

    async def get(self, key: str) -> Entry | None:
        raw = await self.client.get(PREFIX + key)
        return None if raw is None else Entry.from_bytes(raw)

    async def put(self, key: str, entry: Entry, ttl_s: float) -> None:
        await self.client.set(PREFIX + key, entry.to_bytes(), px=max(1, int(ttl_s * 1000)))

    async def close(self) -> None:
        await self.client.aclose()
