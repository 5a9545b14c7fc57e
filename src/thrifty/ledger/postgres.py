"""Postgres ledger: the lock-free hand-off of QueuedLedger, written with COPY by a writer thread that
keeps rows (bounded) and retries with backoff while Postgres is unreachable.

Several replicas write one Postgres ledger; migrations are applied once under an advisory lock.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, ClassVar

from thrifty.ledger.base import COLUMNS, meta_key
from thrifty.ledger.migrate import migrations
from thrifty.ledger.queued import QueuedLedger

log = logging.getLogger("thrifty.ledger")

_COPY = f"COPY ledger ({', '.join(COLUMNS)}) FROM STDIN"
_MIGRATION_LOCK = 0x7468726966747901  # pg_advisory_xact_lock key: "thrifty" + 1
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


class PostgresLedger(QueuedLedger):
    """Requests append rows to a deque (no lock, no wake-up); a writer thread drains it every
    `flush_interval_ms` with COPY in batches of up to `batch_size`. While Postgres is unreachable the
    batch in hand and the deque are kept and retried with exponential backoff (0.1 s … 5 s); past
    `queue_size` rows waiting, new rows are dropped and counted (`dropped`, shown in /readyz)."""

    backend: ClassVar[str] = "Postgres"
    failing: ClassVar[str] = "unreachable"
    thread_name: ClassVar[str] = "thrifty-ledger-pg"
    join_grace_s: ClassVar[float] = 10.0

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
        super().__init__(
            batch_size=batch_size,
            flush_interval_ms=flush_interval_ms,
            queue_size=queue_size,
            close_timeout_s=close_timeout_s,
        )
        self.dsn = dsn
        self.connect_timeout_s = connect_timeout_s
        self._migrated = False

    # ---- connections

    def _connect(self) -> Any:
        import psycopg

        conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=max(1, int(self.connect_timeout_s)))
        if not self._migrated:
            apply_postgres(conn)
            self._migrated = True
        return conn

    # ---- writing (the hand-off is QueuedLedger's)

    def _open(self) -> Any:
        return self._connect()

    def _usable(self, conn: Any) -> bool:
        return conn is not None and not conn.closed

    def _write(self, conn: Any, batch: list[tuple[Any, ...]]) -> None:
        with conn.transaction(), conn.cursor() as cur, cur.copy(_COPY) as copy:
            for row in batch:
                copy.write_row(row)

    # ---- reading

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        from psycopg.rows import dict_row

        conn = self._connect()
        try:
            with conn.cursor(row_factory=dict_row) as cur:
                cur.execute(to_pyformat(sql), tuple(params))
                return [{k: _plain(v) for k, v in r.items()} for r in cur.fetchall()]
        finally:
            conn.close()

    def meta_text(self, key: str) -> str:
        # `json`, not `jsonb`: one field is read per row, so scanning the text beats converting it
        return f"(meta::json ->> '{meta_key(key)}')"

    def meta_number(self, key: str) -> str:
        return f"CAST(meta::json ->> '{meta_key(key)}' AS DOUBLE PRECISION)"
