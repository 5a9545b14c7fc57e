"""Storage seams of the cache: `ExactStore` (key → entry) and `SemanticStore` (scoped vectors)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

    from thrifty.cache.config import CacheConfig
    from thrifty.cache.entry import Entry


class ExactStore(Protocol):
    async def get(self, key: str) -> Entry | None:
        """The live entry under `key`, or None (expired entries are never returned)."""
        ...

    async def put(self, key: str, entry: Entry, ttl_s: float) -> None: ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class Neighbour:
    entry: Entry
    cosine: float
    vector: np.ndarray | None = None  # the stored request's embedding (the verifier's head uses it)
    key: int | None = None  # the store's id of the entry (for `touch`)
    used: float = 0.0  # when the entry was last served or stored


class SemanticStore(Protocol):
    async def search(self, scope: str, vector: np.ndarray, k: int, min_cosine: float) -> list[Neighbour]:
        """Up to `k` live entries of `scope` nearest to `vector`, best first, cosine ≥ `min_cosine`."""
        ...

    async def add(self, scope: str, vector: np.ndarray, entry: Entry, ttl_s: float) -> None: ...

    async def touch(self, neighbour: Neighbour) -> None:
        """Mark a served entry as used, so the size bound evicts the least recently used first."""
        ...

    async def close(self) -> None: ...


def open_exact(config: CacheConfig) -> ExactStore:
    if config.backend == "redis":
        from thrifty.cache.backends.redis_exact import RedisExactStore

        return RedisExactStore(_required(config.redis_url, "cache.redis_url"))
    if config.backend == "postgres":
        from thrifty.cache.backends.postgres import PostgresExactStore

        return PostgresExactStore(_required(config.postgres_dsn, "cache.postgres_dsn"), config.max_entries)
    from thrifty.cache.backends.sqlite_exact import SqliteExactStore

    return SqliteExactStore(config.path, config.max_entries)


def open_semantic(config: CacheConfig, dim: int) -> SemanticStore:
    if config.semantic_store() == "postgres":
        from thrifty.cache.backends.postgres import PostgresSemanticStore

        dsn = _required(config.postgres_dsn, "cache.postgres_dsn")
        return PostgresSemanticStore(dsn, dim, config.max_entries)
    from thrifty.cache.backends.sqlite_semantic import SqliteSemanticStore

    return SqliteSemanticStore(config.path, dim, config.max_entries)


def _required(value: str | None, name: str) -> str:
    if not value:
        from thrifty.errors import ConfigError

        raise ConfigError([(name, "required by the chosen cache backend")])
    return value
