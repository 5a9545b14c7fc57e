"""SQLite ledger (WAL) written by a bounded background batch writer that never blocks a request."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from thrifty.ledger.base import COLUMNS, meta_key
from thrifty.ledger.migrate import apply_sqlite
from thrifty.ledger.queued import QueuedLedger

_INSERT = f"INSERT INTO ledger ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


def connect(path: str) -> sqlite3.Connection:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class SQLiteLedger(QueuedLedger):
    """Requests append rows to an in-memory deque (no lock, no thread wake-up on the hot path); a writer
    thread drains it every `flush_interval_ms` in transactions of up to `batch_size` rows. The deque is
    bounded by `queue_size`: past it rows are dropped and counted (visible in /readyz), never blocking.
    A file that cannot be opened or written (locked past the busy timeout, read-only, disk full) keeps
    every row and is retried with backoff; /readyz shows it meanwhile."""

    backend: ClassVar[str] = "SQLite"
    failing: ClassVar[str] = "unwritable"
    thread_name: ClassVar[str] = "thrifty-ledger"

    def __init__(
        self, path: str, *, batch_size: int = 512, flush_interval_ms: int = 50, queue_size: int = 100_000
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            flush_interval_ms=flush_interval_ms,
            queue_size=queue_size,
            close_timeout_s=30.0,
        )
        self.path = path
        conn = connect(path)
        try:
            apply_sqlite(conn)
        finally:
            conn.close()

    # ---- writing (the hand-off is QueuedLedger's)

    def _open(self) -> sqlite3.Connection:
        return connect(self.path)

    def _write(self, conn: sqlite3.Connection, batch: list[tuple[Any, ...]]) -> None:
        """Commit the batch; on failure roll back and raise, so that the batch is kept and retried."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_INSERT, batch)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # ---- reading

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        conn = connect(self.path)
        try:
            conn.create_function("FLOOR", 1, math.floor, deterministic=True)  # older builds lack it
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(sql, tuple(params))]
        finally:
            conn.close()

    def meta_text(self, key: str) -> str:
        return f"json_extract(meta, '$.{meta_key(key)}')"

    def meta_number(self, key: str) -> str:
        return f"CAST(json_extract(meta, '$.{meta_key(key)}') AS REAL)"
