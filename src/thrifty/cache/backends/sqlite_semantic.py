"""Semantic entries in SQLite, searched through an in-process vector index.

The index is rebuilt from the file on start and follows the file afterwards, with two cheap queries per
lookup: rows added since the last look (`id > last seen`) and rows deleted since then. A trigger logs
every deleted row (evicted or expired, by any process) in a small journal table, so every process drops
them from its index: the index holds what the file holds, and its memory stays within the size bound.
SQLite stays the truth: a row the index still points at is served only if it is live when fetched.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from thrifty.cache.backends import Neighbour
from thrifty.cache.backends.sqlite_db import SqliteDb, evict
from thrifty.cache.entry import Entry
from thrifty.cache.index import VectorIndex

if TYPE_CHECKING:
    import numpy as np

TABLE = "cache_semantic"
DDL = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    id INTEGER PRIMARY KEY AUTOINCREMENT, scope TEXT NOT NULL, vector BLOB NOT NULL, entry BLOB NOT NULL,
    created REAL NOT NULL, expires REAL NOT NULL, used REAL NOT NULL)"""
GONE = f"{TABLE}_gone"
NOW_SQL = "(julianday('now') - 2440587.5) * 86400.0"  # Unix seconds with a fraction, in SQLite 3.40
GONE_DDL = [
    f"CREATE TABLE IF NOT EXISTS {GONE} (seq INTEGER PRIMARY KEY AUTOINCREMENT, id INTEGER NOT NULL, "
    "scope TEXT NOT NULL, at REAL NOT NULL)",
    f"CREATE INDEX IF NOT EXISTS {GONE}_at ON {GONE}(at)",
    f"CREATE TRIGGER IF NOT EXISTS {TABLE}_gone AFTER DELETE ON {TABLE} BEGIN "
    f"INSERT INTO {GONE} (id, scope, at) VALUES (old.id, old.scope, {NOW_SQL}); END",
]
GONE_KEEP_S = 3600.0
"""The deletion journal keeps this long; a process that has not looked for half of it checks whether it
missed trimmed entries, and if so rebuilds its index from the file."""
USED_RESOLUTION_S = 1.0
"""A hit refreshes the entry's last-use time at most this often (saves a write per hit)."""


class SqliteSemanticStore:
    def __init__(self, path: str, dim: int, max_entries: int, ann_threshold: int | None = None) -> None:
        self.db = SqliteDb(path)
        self.dim = dim
        self.max_entries = max_entries
        self.ann_threshold = ann_threshold
        self.db.counted_table(TABLE, DDL)
        with self.db.write() as conn:
            conn.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_used ON {TABLE}(used)")
            conn.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_expires ON {TABLE}(expires)")
            for statement in GONE_DDL:
                conn.execute(statement)
        self.reload()

    def reload(self) -> None:
        """A fresh index of every live row."""
        dim, threshold = self.dim, self.ann_threshold
        self.index = VectorIndex(dim) if threshold is None else VectorIndex(dim, threshold)
        self.last_id = 0
        with self.db.read() as conn:
            self.last_gone = conn.execute(f"SELECT coalesce(max(seq), 0) FROM {GONE}").fetchone()[0]
        self.follow()

    def catch_up(self) -> None:
        """Index rows added since the last look and forget rows deleted since then."""
        if time.time() - self.looked > GONE_KEEP_S / 2 and self.missed_deletions():
            self.reload()  # the journal was trimmed past our last look
        else:
            self.follow()

    def missed_deletions(self) -> bool:
        """Whether journal entries this process has not read were trimmed (its sequence has no gaps)."""
        with self.db.read() as conn:
            first = conn.execute(f"SELECT min(seq) FROM {GONE}").fetchone()[0]
            if first is not None:
                return bool(first > self.last_gone + 1)
            last = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (GONE,)).fetchone()
        return last is not None and last[0] > self.last_gone

    def follow(self) -> None:
        import numpy as np

        now = self.looked = time.time()
        with self.db.read() as conn:
            gone = conn.execute(
                f"SELECT seq, id, scope FROM {GONE} WHERE seq > ? ORDER BY seq", (self.last_gone,)
            ).fetchall()
            added = conn.execute(
                f"SELECT id, scope, vector FROM {TABLE} WHERE id > ? AND expires > ? ORDER BY id",
                (self.last_id, now),
            ).fetchall()
        for seq, row_id, scope in gone:
            self.index.remove(scope, row_id)
            self.last_gone = seq
        for row_id, scope, blob in added:
            self.index.add(scope, row_id, np.frombuffer(blob, dtype=np.float32))
            self.last_id = max(self.last_id, row_id)

    async def search(self, scope: str, vector: np.ndarray, k: int, min_cosine: float) -> list[Neighbour]:
        import numpy as np

        self.catch_up()
        # ask for more than k: the index may still hold rows that expired since the last purge
        found = [(i, c) for i, c in self.index.search(scope, vector, 2 * k) if c >= min_cosine]
        if not found:
            return []
        cosines = dict(found)
        marks = ",".join("?" * len(found))
        with self.db.read() as conn:
            rows = conn.execute(
                f"SELECT id, entry, vector, used FROM {TABLE} WHERE id IN ({marks}) AND expires > ?",
                (*cosines, time.time()),
            ).fetchall()
        out = [
            Neighbour(
                Entry.from_bytes(blob),
                cosines[row_id],
                np.frombuffer(stored, dtype=np.float32),
                key=row_id,
                used=used,
            )
            for row_id, blob, stored, used in rows
        ]
        return sorted(out, key=lambda n: -n.cosine)[:k]

    async def touch(self, neighbour: Neighbour) -> None:
        now = time.time()
        if now - neighbour.used > USED_RESOLUTION_S:
            with self.db.write() as conn:
                conn.execute(f"UPDATE {TABLE} SET used = ? WHERE id = ?", (now, neighbour.key))

    async def add(self, scope: str, vector: np.ndarray, entry: Entry, ttl_s: float) -> None:
        import numpy as np

        now = time.time()
        data = np.ascontiguousarray(vector, dtype=np.float32)
        with self.db.write() as conn:
            conn.execute(
                f"INSERT INTO {TABLE} (scope, vector, entry, created, expires, used) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (scope, data.tobytes(), entry.to_bytes(), entry.created, now + ttl_s, now),
            )
            evict(conn, TABLE, self.db.count(TABLE), self.max_entries, now)
            conn.execute(f"DELETE FROM {GONE} WHERE at < ?", (now - GONE_KEEP_S,))
        self.catch_up()

    def __len__(self) -> int:
        return self.db.count(TABLE)

    async def close(self) -> None:
        self.db.close()
