"""Postgres ledger against a real Postgres (pgserver): batching, migrations, outages, report parity."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest

from tests.unit.test_ledger_sqlite import attempt
from tests.unit.test_report import SEED
from thrifty.config import LedgerConfig, parse
from thrifty.errors import ConfigError
from thrifty.ledger import insights
from thrifty.ledger.migrate import migrations
from thrifty.ledger.open import open_ledger
from thrifty.ledger.postgres import PostgresLedger, apply_postgres, to_postgres_ddl, to_pyformat
from thrifty.ledger.report import Filters, build_report
from thrifty.ledger.sqlite import SQLiteLedger


def wait_for(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_placeholders_and_dialect():
    assert to_pyformat("SELECT a FROM t WHERE b = ? AND c LIKE 'x?%' AND d < ?") == (
        "SELECT a FROM t WHERE b = %s AND c LIKE 'x?%%' AND d < %s"
    )
    ddl = to_postgres_ddl(migrations()[0][1])
    assert "BIGSERIAL PRIMARY KEY" in ddl and "AUTOINCREMENT" not in ddl
    assert " REAL" not in ddl and "DOUBLE PRECISION" in ddl


def test_open_ledger_needs_a_dsn():
    with pytest.raises(ConfigError) as err:  # refused when the config loads (config check, serve, report)
        parse({"ledger": {"backend": "postgres"}}, {})
    assert err.value.errors[0][0] == "ledger.dsn"
    with pytest.raises(ConfigError) as err:  # and by open_ledger, for a config built in code
        open_ledger(LedgerConfig.model_construct(backend="postgres", dsn=None))
    assert err.value.errors[0][0] == "ledger.dsn"


def test_batch_writer_persists_everything_on_close(postgres_dsn):
    ledger = open_ledger(
        LedgerConfig(backend="postgres", dsn=postgres_dsn, batch_size=7, flush_interval_ms=5)
    )
    assert isinstance(ledger, PostgresLedger)
    ledger.start_sync()
    threads = [
        threading.Thread(target=lambda k=k: [ledger.record(attempt(k * 1000 + i)) for i in range(250)])
        for k in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ledger.close_sync()
    rows = ledger.rows()
    assert len(rows) == 1000 and ledger.dropped == 0 and ledger.health == "ok"
    assert {r["request_id"] for r in rows} == {f"r{k * 1000 + i}" for k in range(4) for i in range(250)}
    first = next(r for r in rows if r["request_id"] == "r0")
    assert first["meta"] == '{"k":0}' and first["saved_routing"] == 0.0 and first["final"] == 1


def test_flush_makes_rows_visible_and_newest_first(postgres_dsn):
    ledger = PostgresLedger(postgres_dsn, flush_interval_ms=1000)
    ledger.start_sync()
    for i in range(5):
        ledger.record(attempt(i, ts=1000.0 + i))
    ledger.flush()
    assert [r["request_id"] for r in ledger.rows(limit=2, newest_first=True)] == ["r4", "r3"]
    assert [r["request_id"] for r in ledger.rows(since=1002.0, until=1004.0)] == ["r2", "r3"]
    ledger.close_sync()


def test_full_queue_drops_and_counts_instead_of_blocking(postgres_dsn):
    ledger = PostgresLedger(postgres_dsn, queue_size=10)  # writer not started
    for i in range(15):
        ledger.record(attempt(i))
    assert ledger.dropped == 5 and ledger.health == "dropped 5"


def test_migrations_apply_once_even_when_replicas_start_together(postgres_dsn):
    barrier = threading.Barrier(4)
    versions: list[int] = []

    def migrate() -> None:
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            barrier.wait()
            versions.append(apply_postgres(conn))

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert versions == [migrations()[-1][0]] * 4
    with psycopg.connect(postgres_dsn) as conn:
        done = [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert done == [v for v, _ in migrations()]


def test_unreachable_database_keeps_rows_and_writes_them_when_it_comes_back(postgres_server):
    name = f"late_{time.monotonic_ns() % 10**9}"
    dsn = postgres_server.server.get_uri(name)  # this database does not exist yet
    ledger = PostgresLedger(dsn, flush_interval_ms=10, connect_timeout_s=1)
    ledger.start_sync()
    for i in range(20):
        ledger.record(attempt(i))
    wait_for(lambda: ledger.health.startswith("unreachable"))
    assert ledger.waiting == 20 and ledger.dropped == 0
    assert "20 rows buffered" in ledger.health
    postgres_server.server.psql(f"CREATE DATABASE {name};")
    wait_for(lambda: ledger.health == "ok" and ledger.waiting == 0, timeout=15)
    ledger.close_sync()
    assert sorted(r["request_id"] for r in ledger.rows()) == sorted(f"r{i}" for i in range(20))


def test_a_broken_connection_is_reopened_without_losing_rows(postgres_dsn):
    ledger = PostgresLedger(postgres_dsn, flush_interval_ms=10)
    ledger.start_sync()
    ledger.record(attempt(1))
    ledger.flush()
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert killed is not None and killed[0] >= 1
    for i in range(2, 50):
        ledger.record(attempt(i))
    ledger.close_sync()
    assert sorted(int(r["request_id"][1:]) for r in ledger.rows()) == list(range(1, 50))
    assert ledger.dropped == 0


def test_shutdown_during_an_outage_counts_the_rows_it_could_not_write(postgres_server):
    dsn = postgres_server.server.get_uri("never_created")
    ledger = PostgresLedger(dsn, flush_interval_ms=10, connect_timeout_s=1, close_timeout_s=0.5)
    ledger.start_sync()
    for i in range(7):
        ledger.record(attempt(i))
    ledger.close_sync()
    assert ledger.dropped == 7 and ledger.waiting == 0


def test_report_and_dashboard_read_the_same_from_postgres_as_from_sqlite(postgres_dsn, tmp_path: Path):
    sqlite = SQLiteLedger(str(tmp_path / "l.db"))
    pg = PostgresLedger(postgres_dsn)
    for ledger in (sqlite, pg):
        ledger.start_sync()
        for a in SEED:
            ledger.record(a)
        ledger.close_sync()
    for filters in (Filters(), Filters(tenant="globex"), Filters(since=SEED[0].ts + 100)):
        for by in (None, "tenant", "model", "key", "route"):
            want = build_report(sqlite, filters, by=by).to_dict()
            got = build_report(pg, filters, by=by).to_dict()
            assert _close(got, want)
        span = insights.data_span(sqlite, filters)
        assert insights.data_span(pg, filters) == span
        if span is not None:
            size = insights.bucket_size(span)
            assert _close(insights.series(pg, filters, size), insights.series(sqlite, filters, size))
        assert _close(insights.top_keys(pg, filters), insights.top_keys(sqlite, filters))
        assert _close(insights.latency(pg, filters), insights.latency(sqlite, filters))
        assert _close(insights.recent_errors(pg, filters), insights.recent_errors(sqlite, filters))
    assert build_report(pg, Filters()).totals.answered == 6


def _close(got, want) -> bool:
    """Equal, with floats compared to 1e-12 and ints kept ints (types matter to JSON callers)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), (got, want)
        return all(_close(got[k], want[k]) for k in want)
    if isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), (got, want)
        return all(_close(g, w) for g, w in zip(got, want, strict=True))
    if isinstance(want, float):
        assert got == pytest.approx(want, abs=1e-12), (got, want)
        return True
    assert got == want and type(got) is type(want), (got, want)
    return True
