"""Virtual keys in a SQLite file (one machine; the default)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from thrifty.tenancy.keys import COLUMNS, KeyStore, VirtualKey, from_row, to_row

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS virtual_keys (
    id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    hint TEXT NOT NULL,
    tenant TEXT NOT NULL,
    name TEXT,
    models TEXT,
    budgets TEXT,
    rate_limits TEXT,
    expires_at REAL,
    metadata TEXT,
    revoked INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS virtual_keys_tenant ON virtual_keys (tenant);
"""

_SELECT = f"SELECT {', '.join(COLUMNS)} FROM virtual_keys"
_INSERT = f"INSERT INTO virtual_keys ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
_UPDATE_COLUMNS = [c for c in COLUMNS if c not in ("id", "key_hash")]
_UPDATE = f"UPDATE virtual_keys SET {', '.join(c + ' = ?' for c in _UPDATE_COLUMNS)} WHERE id = ?"


class SQLiteKeyStore(KeyStore):
    """One connection used from worker threads under a lock; every call is short."""

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

    async def start(self) -> None:
        await self._run(lambda conn: None)

    async def aclose(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    async def ping(self) -> None:
        await self._run(lambda conn: conn.execute("SELECT 1").fetchone())

    async def insert(self, key: VirtualKey, key_hash: str) -> None:
        await self._run(lambda conn: conn.execute(_INSERT, to_row(key, key_hash)))

    async def _one(self, where: str, value: Any) -> VirtualKey | None:
        row = await self._run(lambda conn: conn.execute(f"{_SELECT} WHERE {where} = ?", (value,)).fetchone())
        return from_row(dict(row)) if row is not None else None

    async def by_hash(self, key_hash: str) -> VirtualKey | None:
        return await self._one("key_hash", key_hash)

    async def by_id(self, key_id: str) -> VirtualKey | None:
        return await self._one("id", key_id)

    async def list(self, tenant: str | None = None, include_revoked: bool = True) -> list[VirtualKey]:
        clauses, params = [], []
        if tenant is not None:
            clauses.append("tenant = ?")
            params.append(tenant)
        if not include_revoked:
            clauses.append("revoked = 0")
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self._run(
            lambda conn: conn.execute(f"{_SELECT}{where} ORDER BY created_at", params).fetchall()
        )
        return [from_row(dict(r)) for r in rows]

    async def save(self, key: VirtualKey) -> None:
        values = dict(zip(COLUMNS, to_row(key, ""), strict=True))
        params = [values[c] for c in _UPDATE_COLUMNS] + [key.id]
        await self._run(lambda conn: conn.execute(_UPDATE, params))

    async def count(self) -> int:
        row = await self._run(lambda conn: conn.execute("SELECT count(*) FROM virtual_keys").fetchone())
        return int(row[0])
