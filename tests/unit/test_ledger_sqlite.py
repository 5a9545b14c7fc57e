from __future__ import annotations

import sqlite3
import threading
import time

from thrifty.ledger.migrate import apply_sqlite, migrations
from thrifty.ledger.sqlite import SQLiteLedger
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
