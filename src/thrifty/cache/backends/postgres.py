"""Postgres stores shared by replicas: exact entries in a table, semantic entries with pgvector.

Semantic search runs inside one scope (`WHERE scope = …`, a btree index) ordered by cosine distance
(`<=>`), so results are exact within the scope. Tables are created on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from thrifty.cache.backends import Neighbour
from thrifty.cache.entry import Entry

if TYPE_CHECKING:
    import numpy as np

EXACT = "thrifty_cache_exact"
SEMANTIC = "thrifty_cache_semantic"
USED_RESOLUTION_S = 1.0
"""A hit refreshes the entry's last-use time at most this often (saves a write per hit)."""


class _Pg:
    """One async connection opened lazily, used by one request at a time.

    A statement interrupted midway (the cache's store timeout cancels it, or the server went away)
    leaves the connection in an unknown state: it is dropped, and the next statement reconnects."""

    CONNECT_TIMEOUT_S = 2  # libpq's connect_timeout (whole seconds, at least 2)

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn: Any = None
        self.lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def session(self, setup: list[str]) -> AsyncIterator[Any]:
        async with self.lock:
            conn = await self.connection(setup)
            try:
                yield conn
            except BaseException:
                self._drop(conn)
                raise

    async def connection(self, setup: list[str]) -> Any:
        if self.conn is None or self.conn.closed:
            import psycopg

            conn = await psycopg.AsyncConnection.connect(
                self.dsn, autocommit=True, connect_timeout=self.CONNECT_TIMEOUT_S
            )
            for statement in setup:
                # another replica may create the same object at the same moment
                with contextlib.suppress(psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject):
                    await conn.execute(statement)
            self.conn = conn
        return self.conn

    def _drop(self, conn: Any) -> None:
        """Forget the connection and close its socket without waiting on the server (it may hang)."""
        if self.conn is conn:
            self.conn = None
        with contextlib.suppress(Exception):
            conn.pgconn.finish()

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
            self.conn = None


async def _trim(conn: Any, table: str, max_entries: int) -> None:
    """Drop expired rows, then the least recently used beyond the bound."""
    await conn.execute(f"DELETE FROM {table} WHERE expires <= %s", (time.time(),))
    await conn.execute(
        f"DELETE FROM {table} WHERE ctid IN (SELECT ctid FROM {table} ORDER BY used DESC OFFSET %s)",
        (max_entries,),
    )


class PostgresExactStore:
    TRIM_EVERY = 256

    def __init__(self, dsn: str, max_entries: int) -> None:
        self.pg = _Pg(dsn)
        self.max_entries = max_entries
        self.puts = 0
        self.setup = [
            f"CREATE TABLE IF NOT EXISTS {EXACT} (key TEXT PRIMARY KEY, entry BYTEA NOT NULL, "
            "created DOUBLE PRECISION NOT NULL, expires DOUBLE PRECISION NOT NULL, "
            "used DOUBLE PRECISION NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {EXACT}_used ON {EXACT}(used)",
        ]

    async def get(self, key: str) -> Entry | None:
        async with self.pg.session(self.setup) as conn:
            cur = await conn.execute(
                f"UPDATE {EXACT} SET used = %s WHERE key = %s AND expires > %s RETURNING entry",
                (time.time(), key, time.time()),
            )
            row = await cur.fetchone()
        return None if row is None else Entry.from_bytes(bytes(row[0]))

    async def put(self, key: str, entry: Entry, ttl_s: float) -> None:
        now = time.time()
        async with self.pg.session(self.setup) as conn:
            await conn.execute(
                f"INSERT INTO {EXACT} (key, entry, created, expires, used) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (key) DO UPDATE SET entry = excluded.entry, created = excluded.created, "
                "expires = excluded.expires, used = excluded.used",
                (key, entry.to_bytes(), entry.created, now + ttl_s, now),
            )
            self.puts += 1
            if self.puts % self.TRIM_EVERY == 0 or self.max_entries < self.TRIM_EVERY:
                await _trim(conn, EXACT, self.max_entries)

    async def close(self) -> None:
        await self.pg.close()


def _vector_literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{float(x):.7g}" for x in vector) + "]"


class PostgresSemanticStore:
    TRIM_EVERY = 256

    def __init__(self, dsn: str, dim: int, max_entries: int) -> None:
        self.pg = _Pg(dsn)
        self.max_entries = max_entries
        self.puts = 0
        self.setup = [
            "CREATE EXTENSION IF NOT EXISTS vector",
            f"CREATE TABLE IF NOT EXISTS {SEMANTIC} (id BIGSERIAL PRIMARY KEY, scope TEXT NOT NULL, "
            f"embedding vector({dim}) NOT NULL, entry BYTEA NOT NULL, created DOUBLE PRECISION NOT NULL, "
            "expires DOUBLE PRECISION NOT NULL, used DOUBLE PRECISION NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {SEMANTIC}_scope ON {SEMANTIC}(scope)",
            f"CREATE INDEX IF NOT EXISTS {SEMANTIC}_used ON {SEMANTIC}(used)",
        ]

    async def search(self, scope: str, vector: np.ndarray, k: int, min_cosine: float) -> list[Neighbour]:
        import numpy as np

        literal = _vector_literal(vector)
        async with self.pg.session(self.setup) as conn:
            cur = await conn.execute(
                f"SELECT entry, 1 - (embedding <=> %s::vector) AS cosine, embedding::real[], id, used "
                f"FROM {SEMANTIC} "
                "WHERE scope = %s AND expires > %s ORDER BY embedding <=> %s::vector LIMIT %s",
                (literal, scope, time.time(), literal, k),
            )
            rows = await cur.fetchall()
        return [
            Neighbour(
                Entry.from_bytes(bytes(blob)),
                float(c),
                np.asarray(stored, dtype=np.float32),
                key=row_id,
                used=used,
            )
            for blob, c, stored, row_id, used in rows
            if c >= min_cosine
        ]

    async def touch(self, neighbour: Neighbour) -> None:
        now = time.time()
        if now - neighbour.used > USED_RESOLUTION_S:
            async with self.pg.session(self.setup) as conn:
                await conn.execute(f"UPDATE {SEMANTIC} SET used = %s WHERE id = %s", (now, neighbour.key))

    async def add(self, scope: str, vector: np.ndarray, entry: Entry, ttl_s: float) -> None:
        now = time.time()
        async with self.pg.session(self.setup) as conn:
            await conn.execute(
                f"INSERT INTO {SEMANTIC} (scope, embedding, entry, created, expires, used) "
                "VALUES (%s, %s::vector, %s, %s, %s, %s)",
                (scope, _vector_literal(vector), entry.to_bytes(), entry.created, now + ttl_s, now),
            )
            self.puts += 1
            if self.puts % self.TRIM_EVERY == 0 or self.max_entries < self.TRIM_EVERY:
                await _trim(conn, SEMANTIC, self.max_entries)

    async def close(self) -> None:
        await self.pg.close()
