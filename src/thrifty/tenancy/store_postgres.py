"""Virtual keys in Postgres, shared by every replica."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from thrifty.tenancy.keys import COLUMNS, KeyStore, VirtualKey, from_row, to_row

SCHEMA = """
CREATE TABLE IF NOT EXISTS thrifty_virtual_keys (
    id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    hint TEXT NOT NULL,
    tenant TEXT NOT NULL,
    name TEXT,
    models TEXT,
    budgets TEXT,
    rate_limits TEXT,
    expires_at DOUBLE PRECISION,
    metadata TEXT,
    revoked INTEGER NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS thrifty_virtual_keys_tenant ON thrifty_virtual_keys (tenant);
"""

_SELECT = f"SELECT {', '.join(COLUMNS)} FROM thrifty_virtual_keys"
_INSERT = (
    f"INSERT INTO thrifty_virtual_keys ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"
)
_UPDATE_COLUMNS = [c for c in COLUMNS if c not in ("id", "key_hash")]
_UPDATE = f"UPDATE thrifty_virtual_keys SET {', '.join(c + ' = %s' for c in _UPDATE_COLUMNS)} WHERE id = %s"


class PostgresKeyStore(KeyStore):
    """One autocommit connection per replica (key lookups are cached, so traffic is light),
    reopened after a failure."""

    def __init__(self, dsn: str, *, timeout_s: float = 2.0) -> None:
        self.dsn = dsn
        self.timeout_s = timeout_s
        self._conn: Any = None
        self._lock = asyncio.Lock()
        self._schema_ready = False

    async def _connection(self) -> Any:
        import psycopg
        from psycopg.rows import dict_row

        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self.dsn, autocommit=True, row_factory=dict_row, connect_timeout=max(1, int(self.timeout_s))
            )
            if not self._schema_ready:
                await self._conn.execute(SCHEMA)
                self._schema_ready = True
        return self._conn

    async def _execute(self, sql: str, params: Any = None, fetch: str | None = None) -> Any:
        import psycopg

        async with self._lock:
            try:
                conn = await asyncio.wait_for(self._connection(), self.timeout_s * 3)
                cur = await asyncio.wait_for(conn.execute(sql, params), self.timeout_s * 3)
                if fetch == "one":
                    return await cur.fetchone()
                if fetch == "all":
                    return await cur.fetchall()
                return None
            except (psycopg.Error, OSError, TimeoutError):
                await self._drop()
                raise

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # already broken
                await conn.close()

    async def start(self) -> None:
        await self._execute("SELECT 1")

    async def aclose(self) -> None:
        async with self._lock:
            await self._drop()

    async def ping(self) -> None:
        await self._execute("SELECT 1", fetch="one")

    async def insert(self, key: VirtualKey, key_hash: str) -> None:
        await self._execute(_INSERT, to_row(key, key_hash))

    async def _one(self, column: str, value: Any) -> VirtualKey | None:
        row = await self._execute(f"{_SELECT} WHERE {column} = %s", (value,), fetch="one")
        return from_row(row) if row is not None else None

    async def by_hash(self, key_hash: str) -> VirtualKey | None:
        return await self._one("key_hash", key_hash)

    async def by_id(self, key_id: str) -> VirtualKey | None:
        return await self._one("id", key_id)

    async def list(self, tenant: str | None = None, include_revoked: bool = True) -> list[VirtualKey]:
        clauses, params = [], []
        if tenant is not None:
            clauses.append("tenant = %s")
            params.append(tenant)
        if not include_revoked:
            clauses.append("revoked = 0")
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self._execute(f"{_SELECT}{where} ORDER BY created_at", params, fetch="all")
        return [from_row(r) for r in rows]

    async def save(self, key: VirtualKey) -> None:
        values = dict(zip(COLUMNS, to_row(key, ""), strict=True))
        await self._execute(_UPDATE, [values[c] for c in _UPDATE_COLUMNS] + [key.id])

    async def count(self) -> int:
        row = await self._execute("SELECT count(*) AS n FROM thrifty_virtual_keys", fetch="one")
        return int(row["n"])
