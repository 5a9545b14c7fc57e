"""Exact entries in a SQLite file: TTL, size bound with least-recently-used eviction."""

from __future__ import annotations

import time

from thrifty.cache.backends.sqlite_db import SqliteDb, evict
from thrifty.cache.entry import Entry

TABLE = "cache_exact"
DDL = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    key TEXT PRIMARY KEY, entry BLOB NOT NULL, created REAL NOT NULL, expires REAL NOT NULL,
    used REAL NOT NULL)"""
USED_RESOLUTION_S = 1.0
"""A hit refreshes the entry's last-use time at most this often (saves a write per hit)."""


class SqliteExactStore:
    def __init__(self, path: str, max_entries: int) -> None:
        self.db = SqliteDb(path)
        self.max_entries = max_entries
        self.db.counted_table(TABLE, DDL)
        with self.db.write() as conn:
            conn.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_used ON {TABLE}(used)")
            conn.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_expires ON {TABLE}(expires)")

    async def get(self, key: str) -> Entry | None:
        return self.get_sync(key)

    def get_sync(self, key: str) -> Entry | None:
        now = time.time()
        with self.db.read() as conn:
            row = conn.execute(
                f"SELECT entry, used FROM {TABLE} WHERE key = ? AND expires > ?", (key, now)
            ).fetchone()
        if row is None:
            return None
        if now - row[1] > USED_RESOLUTION_S:
            with self.db.write() as conn:
                conn.execute(f"UPDATE {TABLE} SET used = ? WHERE key = ?", (now, key))
        return Entry.from_bytes(row[0])

    async def put(self, key: str, entry: Entry, ttl_s: float) -> None:
        self.put_sync(key, entry, ttl_s)

    def put_sync(self, key: str, entry: Entry, ttl_s: float) -> None:
        now = time.time()
        with self.db.write() as conn:
            conn.execute(
                f"INSERT INTO {TABLE} (key, entry, created, expires, used) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET entry = excluded.entry, created = excluded.created, "
                "expires = excluded.expires, used = excluded.used",
                (key, entry.to_bytes(), entry.created, now + ttl_s, now),
            )
            evict(conn, TABLE, self.db.count(TABLE), self.max_entries, now)

    def __len__(self) -> int:
        return self.db.count(TABLE)

    async def close(self) -> None:
        self.db.close()
