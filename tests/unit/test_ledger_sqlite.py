from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

from thrifty.ledger.migrate import apply_sqlite, migrations
from thrifty.ledger.sqlite import WRITE_BUSY_TIMEOUT_S, SQLiteLedger
from thrifty.types import Attempt, Savings, Usage


def attempt(i: int, **kw) -> Attempt:
    base = dict(
        request_id=f"r{i}",
        attempt=1,
        tenant_id="t",
        key_id=None,
        requested_model="m",
        served_model="m",
        provider="p",
        deployment="p:m",
        status="ok",
        usage=Usage(input_tokens=i, output_tokens=1),
        cost_usd=0.001 * i,
        baseline_cost_usd=0.002 * i,
        savings=Savings(routing=0.001 * i),
        final=True,
        meta={"k": i},
    )
    base.update(kw)
    return Attempt(**base)


def test_batch_writer_persists_everything_on_close(tmp_path):
    ledger = SQLiteLedger(str(tmp_path / "l.db"), batch_size=7, flush_interval_ms=5)
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
    assert len(rows) == 1000 and ledger.dropped == 0
    assert {r["request_id"] for r in rows} == {f"r{k * 1000 + i}" for k in range(4) for i in range(250)}
    assert rows[0]["meta"] == '{"k":0}' and rows[0]["saved_routing"] == 0.0


def test_flush_makes_rows_visible_and_newest_first(tmp_path):
    ledger = SQLiteLedger(str(tmp_path / "l.db"))
    ledger.start_sync()
    for i in range(5):
        ledger.record(attempt(i, ts=1000.0 + i))
    ledger.flush()
    assert [r["request_id"] for r in ledger.rows(limit=2, newest_first=True)] == ["r4", "r3"]
    assert [r["request_id"] for r in ledger.rows(since=1002.0, until=1004.0)] == ["r2", "r3"]
    ledger.close_sync()


def test_full_queue_drops_and_counts_instead_of_blocking(tmp_path):
    ledger = SQLiteLedger(str(tmp_path / "l.db"), queue_size=10)  # writer not started
    for i in range(15):
        ledger.record(attempt(i))
    assert ledger.dropped == 5


def test_wal_mode_and_migrations_are_idempotent(tmp_path):
    path = tmp_path / "l.db"
    SQLiteLedger(str(path))
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert apply_sqlite(conn) == migrations()[-1][0]
    versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations")]
    assert versions == [v for v, _ in migrations()]


def test_an_unwritable_ledger_keeps_its_rows_shows_it_and_writes_them_once_it_recovers(tmp_path):
    """Before, a write that failed five times dropped its batch, and a file that could not be opened
    killed the writer thread silently: every later row was lost and /readyz still said "ok"."""
    path = tmp_path / "l.db"
    ledger = SQLiteLedger(str(path), flush_interval_ms=5)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("ALTER TABLE ledger RENAME TO ledger_away")  # every write now fails
    ledger.start_sync()
    for i in range(3):
        ledger.record(attempt(i))
    deadline = time.monotonic() + 5
    while ledger.health == "ok" and time.monotonic() < deadline:
        time.sleep(0.01)
    health = ledger.health
    assert health.startswith("unwritable for ") and "(OperationalError); 3 rows buffered" in health
    other.execute("ALTER TABLE ledger_away RENAME TO ledger")
    other.close()
    ledger.flush(timeout=10)
    assert ledger.health == "ok" and ledger.dropped == 0
    assert sorted(r["request_id"] for r in ledger.rows()) == ["r0", "r1", "r2"]
    ledger.close_sync()


def _wait_for(predicate, timeout: float) -> float:
    """Seconds until `predicate()` held (raises past `timeout`)."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout}s")
        time.sleep(0.02)
    return time.monotonic() - started


def test_a_locked_file_shows_within_seconds_counted_from_the_start_of_the_lock(tmp_path):
    """Before, the writer's first try blocked for the 30 s busy timeout: /readyz said "ok" meanwhile,
    and then "unwritable for 0s"."""
    path = tmp_path / "l.db"
    ledger = SQLiteLedger(str(path), flush_interval_ms=5)
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    ledger.start_sync()
    ledger.record(attempt(1))
    took = _wait_for(lambda: ledger.health != "ok", timeout=15)
    assert took < WRITE_BUSY_TIMEOUT_S + 3
    health = ledger.health
    assert health.startswith("unwritable for ") and "(OperationalError); 1 rows buffered" in health
    assert int(health.split()[2].rstrip("s")) >= WRITE_BUSY_TIMEOUT_S - 1  # since the blocked write began
    locker.execute("ROLLBACK")
    locker.close()
    ledger.close_sync()
    assert [r["request_id"] for r in ledger.rows()] == ["r1"] and ledger.dropped == 0


def test_shutdown_while_the_file_stays_locked_counts_and_logs_what_it_could_not_write(tmp_path, caplog):
    """Before, `close` gave up joining the writer while it was still blocked in its first 30 s wait for
    the lock: the rows vanished with the process, uncounted and unlogged."""
    path = tmp_path / "l.db"
    ledger = SQLiteLedger(str(path), flush_interval_ms=5)
    ledger.close_timeout_s = 1.0
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    ledger.start_sync()
    for i in range(5):
        ledger.record(attempt(i))
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="thrifty.ledger"):
        ledger.close_sync()
    assert time.monotonic() - started < ledger.close_timeout_s + SQLiteLedger.join_grace_s
    assert ledger.dropped == 5 and ledger.waiting == 0
    assert any("5 rows lost" in r.getMessage() for r in caplog.records)
    locker.execute("ROLLBACK")
    locker.close()


def test_rows_recorded_without_a_started_writer_are_written_at_close(tmp_path):
    ledger = SQLiteLedger(str(tmp_path / "l.db"))
    for i in range(3):
        ledger.record(attempt(i))
    ledger.close_sync()
    assert [r["request_id"] for r in ledger.rows()] == ["r0", "r1", "r2"]


def _remove(path: Path) -> None:
    for name in (path.name, path.name + "-wal", path.name + "-shm"):
        (path.parent / name).unlink(missing_ok=True)


def test_a_deleted_file_is_recreated_with_its_schema_and_later_rows_land_in_it(tmp_path, caplog):
    """Before, the writer kept writing to the deleted file (still open): every later row was lost
    and /readyz said "ok"."""
    path = tmp_path / "l.db"
    ledger = SQLiteLedger(str(path), flush_interval_ms=5)
    ledger.start_sync()
    ledger.record(attempt(1))
    ledger.flush()
    _remove(path)
    with caplog.at_level(logging.WARNING, logger="thrifty.ledger"):
        for i in range(2, 5):
            ledger.record(attempt(i))
        ledger.flush()
    assert sorted(r["request_id"] for r in ledger.rows()) == ["r2", "r3", "r4"]
    assert ledger.health == "ok" and ledger.dropped == 0
    assert any("was deleted while in use" in r.getMessage() for r in caplog.records)
    ledger.close_sync()
    assert len(ledger.rows()) == 3


def test_a_replaced_file_gets_the_schema_and_the_rows_from_then_on(tmp_path, caplog):
    path = tmp_path / "l.db"
    ledger = SQLiteLedger(str(path), flush_interval_ms=5)
    ledger.start_sync()
    ledger.record(attempt(1))
    ledger.flush()
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE unrelated (x)").connection.close()
    _remove(path)
    os.replace(other, path)
    with caplog.at_level(logging.WARNING, logger="thrifty.ledger"):
        ledger.record(attempt(2))
        ledger.flush()
    assert [r["request_id"] for r in ledger.rows()] == ["r2"]
    assert any("was replaced while in use" in r.getMessage() for r in caplog.records)
    ledger.close_sync()
