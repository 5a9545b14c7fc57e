"""Virtual keys in a SQLite file (one machine; the default)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from thrifty.tenancy.store_sql import Fetch, KeySQL, SQLKeyStore

T = TypeVar("T")

SQL = KeySQL.build(table="virtual_keys", placeholder="?", real="REAL")
SCHEMA = SQL.schema


class SQLiteKeyStore(SQLKeyStore):
    """One connection used from worker threads under a lock; every call is short."""

    SQL: ClassVar[KeySQL] = SQL

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.executescript(SCHEMA)
            self._conn = conn
        return self._conn

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def work() -> T:
            with self._lock:
                return fn(self._connect())

        return await asyncio.to_thread(work)

    async def _execute(self, sql: str, params: Sequence[Any] | None = None, fetch: Fetch = None) -> Any:
        def run(conn: sqlite3.Connection) -> Any:
            cur = conn.execute(sql, params or ())
            if fetch == "one":
                row = cur.fetchone()
                return dict(row) if row is not None else None
            if fetch == "all":
                return [dict(r) for r in cur.fetchall()]
            return None

        return await self._run(run)

    async def start(self) -> None:
        await self._run(lambda conn: None)

    async def aclose(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
