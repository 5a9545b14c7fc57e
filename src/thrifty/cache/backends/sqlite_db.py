"""A SQLite connection for the cache: WAL, busy timeout, one lock so threads can share it.

Several processes may write the same file (WAL + `BEGIN IMMEDIATE` + a busy timeout serialise them).
Each table keeps its row count in `cache_counts` through triggers, so the size bound is checked
without a full count.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUSY_TIMEOUT_MS = 30_000


class SqliteDb:
    def __init__(self, path: str) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.lock = threading.Lock()
        self.conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        self.conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS cache_counts (tbl TEXT PRIMARY KEY, n INTEGER NOT NULL)"
        )

    def counted_table(self, table: str, ddl: str) -> None:
        """Create `table` (with `ddl`) and the triggers that keep its row count."""
        with self.write() as conn:
            conn.execute(ddl)
            conn.execute(
                "INSERT OR IGNORE INTO cache_counts VALUES (?, (SELECT count(*) FROM " + table + "))",
                (table,),
            )
            conn.execute(
                f"CREATE TRIGGER IF NOT EXISTS {table}_ins AFTER INSERT ON {table} "
                f"BEGIN UPDATE cache_counts SET n = n + 1 WHERE tbl = '{table}'; END"
            )
            conn.execute(
                f"CREATE TRIGGER IF NOT EXISTS {table}_del AFTER DELETE ON {table} "
                f"BEGIN UPDATE cache_counts SET n = n - 1 WHERE tbl = '{table}'; END"
            )

    def count(self, table: str) -> int:
        row = self.conn.execute("SELECT n FROM cache_counts WHERE tbl = ?", (table,)).fetchone()
        return int(row[0]) if row else 0

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: waits for other writers instead of failing)."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            yield self.conn

    def close(self) -> None:
        with self.lock:
            self.conn.close()


def evict(conn: sqlite3.Connection, table: str, count: int, max_entries: int, now: float) -> None:
    """Drop expired rows, then the least recently used beyond `max_entries`."""
    conn.execute(f"DELETE FROM {table} WHERE expires <= ?", (now,))  # an index range: cheap when none
    if count <= max_entries:
        return
    row = conn.execute("SELECT n FROM cache_counts WHERE tbl = ?", (table,)).fetchone()
    excess = int(row[0]) - max_entries
    if excess > 0:
        # Trim a little below the bound so eviction runs once per batch of inserts, not every insert.
        excess += max_entries // 20
        conn.execute(
            f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} ORDER BY used LIMIT ?)", (excess,)
        )
