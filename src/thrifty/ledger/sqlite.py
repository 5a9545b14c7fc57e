"""SQLite ledger (WAL) written by a bounded background batch writer that never blocks a request."""

from __future__ import annotations

import logging
import math
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from thrifty.ledger.base import COLUMNS, meta_key
from thrifty.ledger.migrate import apply_sqlite
from thrifty.ledger.queued import QueuedLedger

log = logging.getLogger("thrifty.ledger")

_INSERT = f"INSERT INTO ledger ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
READ_BUSY_TIMEOUT_S = 30.0
"""How long a reader (report, dashboard, start-up migrations) waits for a lock."""
WRITE_BUSY_TIMEOUT_S = 2.0
"""How long the writer waits for a lock before a try counts as failed and is retried with backoff:
short, so a locked file shows in /readyz within seconds and a shutdown is not outlasted by one wait
(writes of other workers hold the lock for milliseconds)."""


def connect(path: str, busy_timeout_s: float = READ_BUSY_TIMEOUT_S) -> sqlite3.Connection:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=busy_timeout_s, check_same_thread=False, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of the file at `path` now, None if there is none."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


class _WriterConn:
    """The writer's connection and the file it opened (to notice the file being deleted or replaced)."""

    __slots__ = ("conn", "identity")

    def __init__(self, conn: sqlite3.Connection, identity: tuple[int, int] | None) -> None:
        self.conn = conn
        self.identity = identity

    def close(self) -> None:
        self.conn.close()


class SQLiteLedger(QueuedLedger):
    """Requests append rows to an in-memory deque (no lock, no thread wake-up on the hot path); a writer
    thread drains it every `flush_interval_ms` in transactions of up to `batch_size` rows. The deque is
    bounded by `queue_size`: past it rows are dropped and counted (visible in /readyz), never blocking.
    A file that cannot be opened or written (locked, read-only, disk full) keeps every row and is
    retried with backoff; /readyz shows it meanwhile. A file deleted or replaced while the gateway runs
    is noticed at the next flush: the writer opens (and, if new, migrates) the file now at `path`."""

    backend: ClassVar[str] = "SQLite"
    failing: ClassVar[str] = "unwritable"
    thread_name: ClassVar[str] = "thrifty-ledger"
    join_grace_s: ClassVar[float] = 2 * WRITE_BUSY_TIMEOUT_S + 1.0  # a try: open (migrate), then write

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

    def _open(self) -> _WriterConn:
        conn = connect(self.path, WRITE_BUSY_TIMEOUT_S)
        try:
            apply_sqlite(conn)  # a file created or replaced since start needs the schema
            return _WriterConn(conn, _identity(self.path))
        except BaseException:
            conn.close()
            raise

    def _usable(self, conn: _WriterConn | None) -> bool:
        """The connection still writes to the file at `path` (one stat per flush): a file deleted or
        replaced under a running gateway would otherwise swallow every later row unseen."""
        if conn is None:
            return False
        now = _identity(self.path)
        if now is not None and now == conn.identity:
            return True
        log.warning(
            "ledger: SQLite file %s was %s while in use; writing to %s file at that path from now on "
            "(rows of the last flush before this may have gone to the old file)",
            self.path, "deleted" if now is None else "replaced", "a new" if now is None else "the",
        )  # fmt: skip
        return False

    def _write(self, wc: _WriterConn, batch: list[tuple[Any, ...]]) -> None:
        """Commit the batch; on failure roll back and raise, so that the batch is kept and retried."""
        conn = wc.conn
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
