"""Virtual keys in Postgres, shared by every replica."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, ClassVar

from thrifty.tenancy.store_sql import Fetch, KeySQL, SQLKeyStore

SQL = KeySQL.build(table="thrifty_virtual_keys", placeholder="%s", real="DOUBLE PRECISION")
SCHEMA = SQL.schema


class PostgresKeyStore(SQLKeyStore):
    """One autocommit connection per replica (key lookups are cached, so traffic is light),
    reopened after a failure."""

    SQL: ClassVar[KeySQL] = SQL

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

    async def _execute(self, sql: str, params: Sequence[Any] | None = None, fetch: Fetch = None) -> Any:
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
