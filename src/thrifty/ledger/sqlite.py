"""SQLite ledger (WAL) written by a bounded background batch writer that never blocks a request."""

from __future__ import annotations

import logging
import math
import sqlite3
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from thrifty.ledger.base import COLUMNS, Ledger, to_row
from thrifty.ledger.migrate import apply_sqlite
from thrifty.types import Attempt

log = logging.getLogger("thrifty.ledger")

_INSERT = f"INSERT INTO ledger ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


def connect(path: str) -> sqlite3.Connection:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class SQLiteLedger(Ledger):
    """Requests append rows to an in-memory deque (no lock, no thread wake-up on the hot path); a writer
    thread drains it every `flush_interval_ms` in transactions of up to `batch_size` rows. The deque is
    bounded by `queue_size`: past it rows are dropped and counted (visible in /readyz), never blocking."""

    def __init__(
        self, path: str, *, batch_size: int = 512, flush_interval_ms: int = 50, queue_size: int = 100_000
    ) -> None:
        self.path = path
        self.batch_size = batch_size
        self.flush_interval = flush_interval_ms / 1000
        self._capacity = queue_size
        self._pending: deque[tuple] = deque()
        self._waiters: deque[threading.Event] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._dropped = 0
        self._lock = threading.Lock()
        conn = connect(path)
        try:
            apply_sqlite(conn)
        finally:
            conn.close()

    @property
    def dropped(self) -> int:
        return self._dropped

    def record(self, attempt: Attempt) -> None:
        if len(self._pending) >= self._capacity:
            self._dropped += 1
            log.error("ledger queue full: row dropped", extra={"request_id": attempt.request_id})
            return
        self._pending.append(to_row(attempt))

    async def start(self) -> None:
        self.start_sync()

    def start_sync(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stopping = False
                self._thread = threading.Thread(target=self._writer, name="thrifty-ledger", daemon=True)
                self._thread.start()

    def _writer(self) -> None:
        conn = connect(self.path)
        try:
            while True:
                self._wake.wait(self.flush_interval)
                self._wake.clear()
                stopping = self._stopping
                waiters = [self._waiters.popleft() for _ in range(len(self._waiters))]
                self._drain(conn)
                for event in waiters:
                    event.set()
                if stopping and not self._pending:
                    return
        finally:
            conn.close()

    def _drain(self, conn: sqlite3.Connection) -> None:
        """Write everything pending now, in batches."""
        while self._pending:
            batch = [self._pending.popleft() for _ in range(min(self.batch_size, len(self._pending)))]
            self._write(conn, batch)

    def _write(self, conn: sqlite3.Connection, batch: list[tuple]) -> None:
        for attempt in range(5):
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(_INSERT, batch)
                conn.execute("COMMIT")
                return
            except sqlite3.OperationalError as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                log.warning("ledger write failed (try %d): %s", attempt + 1, exc)
        log.error("ledger write gave up: %d rows lost", len(batch))
        self._dropped += len(batch)

    def flush(self, timeout: float = 5.0) -> None:
        """Block until every row recorded before this call is committed."""
        if self._thread is None or not self._thread.is_alive():
            return
        event = threading.Event()
        self._waiters.append(event)
        self._wake.set()
        event.wait(timeout)

    async def close(self) -> None:
        self.close_sync()

    def close_sync(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._stopping = True
            self._wake.set()
            self._thread.join(timeout=30)
        self._thread = None

    def rows(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        where, params = [], []
        if since is not None:
            where.append("ts >= ?")
            params.append(since)
        if until is not None:
            where.append("ts < ?")
            params.append(until)
        sql = "SELECT id, " + ", ".join(COLUMNS) + " FROM ledger"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC" if newest_first else " ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        conn = connect(self.path)
        try:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(sql, params)]
        finally:
            conn.close()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        conn = connect(self.path)
        try:
            conn.create_function("FLOOR", 1, math.floor, deterministic=True)  # older builds lack it
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(sql, tuple(params))]
        finally:
            conn.close()
