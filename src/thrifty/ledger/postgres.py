"""Postgres ledger: the same lock-free hand-off as the SQLite one, written with COPY by a writer thread
that keeps rows (bounded) and retries with backoff while Postgres is unreachable.

Several replicas write one Postgres ledger; migrations are applied once under an advisory lock.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from thrifty.ledger.base import COLUMNS, Ledger, to_row
from thrifty.ledger.migrate import migrations
from thrifty.types import Attempt

log = logging.getLogger("thrifty.ledger")

_COPY = f"COPY ledger ({', '.join(COLUMNS)}) FROM STDIN"
_MIGRATION_LOCK = 0x7468726966747901  # pg_advisory_xact_lock key: "thrifty" + 1
_BACKOFF_MIN_S = 0.1
_BACKOFF_MAX_S = 5.0
_DIALECT: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b", re.I), "BIGSERIAL PRIMARY KEY"),
    (re.compile(r"\bREAL\b", re.I), "DOUBLE PRECISION"),
)
_QUOTED = re.compile(r"('(?:[^']|'')*')")


def to_postgres_ddl(sql: str) -> str:
    """The SQLite migration text in Postgres syntax (the migrations keep one source of truth)."""
    for pattern, replacement in _DIALECT:
        sql = pattern.sub(replacement, sql)
    return sql


def to_pyformat(sql: str) -> str:
    """`?` placeholders (outside string literals) → psycopg's `%s`; literal `%` escaped."""
    parts = _QUOTED.split(sql)
    for i in range(0, len(parts), 2):  # even parts are outside quotes
        parts[i] = parts[i].replace("%", "%%").replace("?", "%s")
    for i in range(1, len(parts), 2):
        parts[i] = parts[i].replace("%", "%%")
    return "".join(parts)


def _plain(value: Any) -> Any:
    """Decimals from SUM over integers become int (or float), as SQLite returns them."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def apply_postgres(conn: Any) -> int:
    """Apply pending migrations once, under an advisory lock so replicas starting together agree."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, applied DOUBLE PRECISION)"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        version = max(done, default=0)
        for number, sql in migrations():
            if number in done:
                continue
            conn.execute(to_postgres_ddl(sql))
            conn.execute("INSERT INTO schema_migrations VALUES (%s, extract(epoch from now()))", (number,))
            version = number
    return version


class PostgresLedger(Ledger):
    """Requests append rows to a deque (no lock, no wake-up); a writer thread drains it every
    `flush_interval_ms` with COPY in batches of up to `batch_size`. While Postgres is unreachable the
    batch in hand and the deque are kept and retried with exponential backoff (0.1 s … 5 s); past
    `queue_size` rows waiting, new rows are dropped and counted (`dropped`, shown in /readyz)."""

    def __init__(
        self,
        dsn: str,
        *,
        batch_size: int = 512,
        flush_interval_ms: int = 50,
        queue_size: int = 100_000,
        connect_timeout_s: float = 5.0,
        close_timeout_s: float = 30.0,
    ) -> None:
        self.dsn = dsn
        self.batch_size = batch_size
        self.flush_interval = flush_interval_ms / 1000
        self.connect_timeout_s = connect_timeout_s
        self.close_timeout_s = close_timeout_s
        self._capacity = queue_size
        self._pending: deque[tuple] = deque()
        self._held: list[tuple] = []
        self._waiters: deque[threading.Event] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._dropped = 0
        self._lock = threading.Lock()
        self._migrated = False
        self._error: str | None = None
        self._error_since: float | None = None

    # ---- state

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def waiting(self) -> int:
        """Rows recorded but not yet committed."""
        return len(self._pending) + len(self._held)

    @property
    def health(self) -> str:
        if self._error is not None:
            since = time.monotonic() - (self._error_since or time.monotonic())
            text = f"unreachable for {since:.0f}s ({self._error}); {self.waiting} rows buffered"
            return text + (f", dropped {self._dropped}" if self._dropped else "")
        return "ok" if self._dropped == 0 else f"dropped {self._dropped}"

    # ---- connections

    def _connect(self) -> Any:
        import psycopg

        conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=max(1, int(self.connect_timeout_s)))
        if not self._migrated:
            apply_postgres(conn)
            self._migrated = True
        return conn

    # ---- writing

    def record(self, attempt: Attempt) -> None:
        if len(self._pending) + len(self._held) >= self._capacity:
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
                self._thread = threading.Thread(target=self._writer, name="thrifty-ledger-pg", daemon=True)
                self._thread.start()

    def _writer(self) -> None:
        conn: Any = None
        backoff = 0.0
        stop_deadline: float | None = None
        try:
            while True:
                self._wake.wait(backoff or self.flush_interval)
                self._wake.clear()
                stopping = self._stopping
                if stopping and stop_deadline is None:
                    stop_deadline = time.monotonic() + self.close_timeout_s
                waiters = [self._waiters.popleft() for _ in range(len(self._waiters))]
                try:
                    conn = conn if conn is not None and not conn.closed else self._connect()
                    self._drain(conn)
                except Exception as exc:
                    conn = _discard(conn)
                    backoff = min(_BACKOFF_MAX_S, max(_BACKOFF_MIN_S, backoff * 2))
                    self._failed(exc, backoff)
                    self._waiters.extendleft(reversed(waiters))  # flush() waits on
                    if stopping and stop_deadline is not None and time.monotonic() >= stop_deadline:
                        self._give_up()
                        return
                    continue
                backoff = 0.0
                self._recovered()
                for event in waiters:
                    event.set()
                if stopping and not self._pending:
                    return
        finally:
            _discard(conn)

    def _drain(self, conn: Any) -> None:
        """Write the held batch, then everything pending now, in batches of up to batch_size."""
        while self._held or self._pending:
            if not self._held:
                take = min(self.batch_size, len(self._pending))
                self._held = [self._pending.popleft() for _ in range(take)]
            with conn.transaction(), conn.cursor() as cur, cur.copy(_COPY) as copy:
                for row in self._held:
                    copy.write_row(row)
            self._held = []

    def _failed(self, exc: Exception, backoff: float) -> None:
        first = self._error is None
        self._error = type(exc).__name__
        if first:
            self._error_since = time.monotonic()
        log.warning(
            "ledger: Postgres write failed (%s: %s); %d rows kept, retrying in %.1fs",
            type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "", self.waiting, backoff,
        )  # fmt: skip

    def _recovered(self) -> None:
        if self._error is not None:
            log.warning("ledger: Postgres reachable again; buffered rows written")
        self._error = None
        self._error_since = None

    def _give_up(self) -> None:
        lost = self.waiting
        self._dropped += lost
        self._pending.clear()
        self._held = []
        log.error("ledger: Postgres still unreachable at shutdown: %d rows lost", lost)

    def flush(self, timeout: float = 5.0) -> None:
        """Block until every row recorded before this call is committed (or `timeout` passes)."""
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
            self._thread.join(timeout=self.close_timeout_s + 10)
        self._thread = None

    # ---- reading

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
        return self.query(sql, params)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        from psycopg.rows import dict_row

        conn = self._connect()
        try:
            with conn.cursor(row_factory=dict_row) as cur:
                cur.execute(to_pyformat(sql), tuple(params))
                return [{k: _plain(v) for k, v in r.items()} for r in cur.fetchall()]
        finally:
            conn.close()


def _discard(conn: Any) -> None:
    if conn is not None:
        try:
            conn.close()
        except Exception as exc:  # already broken
            log.debug("ledger: closing a broken connection: %s", exc)
    return None
