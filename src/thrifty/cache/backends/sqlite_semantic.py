"""Semantic entries in SQLite, searched through an in-process vector index.

The index is rebuilt from the file on start and catches up with rows other processes added (one cheap
`id > last seen` query per lookup), so several workers on one file see each other's entries. SQLite
stays the truth: expired or evicted rows the index still points at are filtered out when fetched.
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


class SqliteSemanticStore:
    def __init__(self, path: str, dim: int, max_entries: int, ann_threshold: int | None = None) -> None:
        self.db = SqliteDb(path)
        self.dim = dim
        self.max_entries = max_entries
        self.index = VectorIndex(dim) if ann_threshold is None else VectorIndex(dim, ann_threshold)
        self.last_id = 0
        self.db.counted_table(TABLE, DDL)
        with self.db.write() as conn:
            conn.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_used ON {TABLE}(used)")
            conn.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_expires ON {TABLE}(expires)")
        self.catch_up()

    def catch_up(self) -> None:
        """Index rows added since the last look (all live rows on start)."""
        import numpy as np

        with self.db.read() as conn:
            rows = conn.execute(
                f"SELECT id, scope, vector FROM {TABLE} WHERE id > ? AND expires > ? ORDER BY id",
                (self.last_id, time.time()),
            ).fetchall()
        for row_id, scope, blob in rows:
            self.index.add(scope, row_id, np.frombuffer(blob, dtype=np.float32))
            self.last_id = max(self.last_id, row_id)

    async def search(self, scope: str, vector: np.ndarray, k: int, min_cosine: float) -> list[Neighbour]:
        import numpy as np

        self.catch_up()
        # ask for more than k: the index may still hold rows that expired or were evicted
        found = [(i, c) for i, c in self.index.search(scope, vector, 2 * k) if c >= min_cosine]
        if not found:
            return []
        cosines = dict(found)
        marks = ",".join("?" * len(found))
        with self.db.read() as conn:
            rows = conn.execute(
                f"SELECT id, entry, vector FROM {TABLE} WHERE id IN ({marks}) AND expires > ?",
                (*cosines, time.time()),
            ).fetchall()
        out = [
            Neighbour(Entry.from_bytes(blob), cosines[row_id], np.frombuffer(stored, dtype=np.float32))
            for row_id, blob, stored in rows
        ]
        return sorted(out, key=lambda n: -n.cosine)[:k]

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
        self.catch_up()

    def __len__(self) -> int:
        return self.db.count(TABLE)

    async def close(self) -> None:
        self.db.close()
