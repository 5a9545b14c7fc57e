"""The hand-off every ledger backend shares (QueuedLedger), through a backend that keeps rows in a list
and can be told to fail: held batches, flush across failures, giving up at shutdown."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from tests.unit.test_ledger_sqlite import attempt
from thrifty.ledger.queued import QueuedLedger


class Conn:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


class ListLedger(QueuedLedger):
    """Commits into `committed`; the next `failures` writes raise; `_failed` retries or, with
    `fatal`, stops the writer."""

    backend = "list"
    join_grace_s = 2.0  # close() outwaits the writer's close_timeout_s

    def __init__(self, *, failures: int = 0, fatal: bool = False, close_timeout_s: float = 5.0) -> None:
        super().__init__(batch_size=3, flush_interval_ms=5, queue_size=100, close_timeout_s=close_timeout_s)
        self.committed: list[tuple[Any, ...]] = []
        self.failures = failures
        self.fatal = fatal
        self.opened: list[Conn] = []
        self.delays: list[float] = []

    def _open(self) -> Conn:
        self.opened.append(Conn())
        return self.opened[-1]

    def _write(self, conn: Conn, batch: list[tuple[Any, ...]]) -> None:
        assert not conn.closed
        if self.failures:
            self.failures -= 1
            raise OSError("down")
        self.committed.extend(batch)

    def _failed(self, exc: Exception, delay: float) -> float:
        if self.fatal:
            raise exc
        self.delays.append(delay)
        super()._failed(exc, delay)  # the outage shown by `health`
        return 0.01


def ids(ledger: ListLedger) -> list[str]:
    return [row[1] for row in ledger.committed]  # COLUMNS[1] is request_id


def test_failed_batches_are_held_and_retried_in_order_on_a_new_connection():
    ledger = ListLedger(failures=3)
    for i in range(8):
        ledger.record(attempt(i))
    ledger.start_sync()
    ledger.flush(timeout=5)
    assert ids(ledger) == [f"r{i}" for i in range(8)]
    assert ledger.waiting == 0 and ledger.dropped == 0
    assert len(ledger.opened) == 4 and all(c.closed for c in ledger.opened[:3])
    assert ledger.delays == [0.0, 0.01, 0.01]  # the wait before each failed try
    ledger.close_sync()
    assert ledger.opened[-1].closed


def test_flush_waits_through_a_failure_until_the_rows_are_committed():
    ledger = ListLedger(failures=5)
    ledger.start_sync()
    ledger.record(attempt(1))
    ledger.flush(timeout=5)
    assert ids(ledger) == ["r1"] and ledger.failures == 0
    ledger.close_sync()


def test_close_writes_everything_recorded_before_it():
    ledger = ListLedger()
    ledger.start_sync()
    writers = [
        threading.Thread(target=lambda k=k: [ledger.record(attempt(k * 100 + i)) for i in range(20)])
        for k in range(3)
    ]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    ledger.close_sync()
    assert sorted(ids(ledger)) == sorted(f"r{k * 100 + i}" for k in range(3) for i in range(20))
    assert ledger.flush() is None  # no writer any more: returns at once


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_failure_the_backend_will_not_retry_stops_the_writer():
    ledger = ListLedger(failures=1, fatal=True)
    ledger.record(attempt(1))
    ledger.start_sync()
    started = time.monotonic()
    ledger.flush(timeout=0.5)  # the writer died with the failure: this waits out its timeout
    assert time.monotonic() - started >= 0.4
    assert ledger.committed == [] and ledger.waiting == 1
    assert ledger.health == "writer stopped (OSError); 1 rows not written"  # shown in /readyz
    ledger.close_sync()
    ledger.start_sync()  # a new writer picks up the held row
    ledger.close_sync()
    assert ids(ledger) == ["r1"]


def test_shutdown_during_an_outage_counts_what_it_could_not_write():
    ledger = ListLedger(failures=10**6, close_timeout_s=0.2)
    ledger.start_sync()
    for i in range(7):
        ledger.record(attempt(i))
    ledger.close_sync()
    assert ledger.dropped == 7 and ledger.waiting == 0 and ledger.committed == []
    assert ledger.health.startswith("failing for ") and ledger.health.endswith("0 rows buffered, dropped 7")


def test_the_in_flight_batch_counts_towards_the_bound():
    ledger = ListLedger(failures=10**6, close_timeout_s=0.1)
    ledger._capacity = 5
    for i in range(3):
        ledger.record(attempt(i))
    ledger.start_sync()
    deadline = time.monotonic() + 5
    while ledger._pending and time.monotonic() < deadline:  # the writer holds the batch of 3
        time.sleep(0.01)
    for i in range(3, 6):
        ledger.record(attempt(i))
    assert ledger.waiting == 5 and ledger.dropped == 1
    ledger.close_sync()


def test_health_shows_an_outage_while_it_lasts_and_ok_once_the_rows_are_written():
    ledger = ListLedger(failures=10**6)
    ledger.start_sync()
    for i in range(4):
        ledger.record(attempt(i))
    deadline = time.monotonic() + 5
    while not ledger.delays and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ledger.health.startswith("failing for ") and "(OSError); 4 rows buffered" in ledger.health
    ledger.failures = 0  # the backend comes back
    ledger.flush(timeout=5)
    assert ids(ledger) == [f"r{i}" for i in range(4)] and ledger.health == "ok"
    ledger.close_sync()


def test_the_default_retry_backs_off_exponentially_up_to_five_seconds():
    ledger = ListLedger()
    waits = [QueuedLedger._failed(ledger, OSError("down"), 0.0)]
    for _ in range(8):
        waits.append(QueuedLedger._failed(ledger, OSError("down"), waits[-1]))
    assert waits[:4] == [0.1, 0.2, 0.4, 0.8] and waits[-1] == 5.0


class StuckLedger(ListLedger):
    """Every write blocks until `release` is set (a call the backend cannot bound), then fails."""

    join_grace_s = 0.3

    def __init__(self) -> None:
        super().__init__(close_timeout_s=0.2)
        self.release = threading.Event()
        self.entered = threading.Event()

    def _write(self, conn: Conn, batch: list[tuple[Any, ...]]) -> None:
        self.entered.set()
        self.release.wait(10)
        raise OSError("still down")


def test_close_counts_and_logs_the_rows_of_a_writer_stuck_past_the_deadline(caplog):
    """Before, `close` stopped waiting for a stuck writer and returned: its rows died with the process
    with no count and no log line."""
    ledger = StuckLedger()
    for i in range(4):
        ledger.record(attempt(i))
    ledger.start_sync()
    assert ledger.entered.wait(5)
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="thrifty.ledger"):
        ledger.close_sync()
    assert time.monotonic() - started < 2
    assert ledger.dropped == 4 and ledger.waiting == 0
    assert any("blocked" in r.getMessage() and "4 rows lost" in r.getMessage() for r in caplog.records)
    ledger.release.set()  # the writer comes back, fails, gives up: nothing is counted twice
    time.sleep(0.2)
    assert ledger.dropped == 4


class SlowRetryLedger(ListLedger):
    """Always failing, with a backoff far longer than the close timeout."""

    def _failed(self, exc: Exception, delay: float) -> float:
        QueuedLedger._failed(self, exc, delay)
        return 30.0


def test_the_stop_deadline_holds_through_a_long_backoff(caplog):
    """Before, a writer waiting out its backoff when `close` came tried once more, then slept the whole
    backoff again: `close` stopped waiting first and the rows were lost uncounted."""
    ledger = SlowRetryLedger(failures=10**6, close_timeout_s=0.3)
    ledger.start_sync()
    for i in range(3):
        ledger.record(attempt(i))
    deadline = time.monotonic() + 5
    while ledger.health == "ok" and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="thrifty.ledger"):
        ledger.close_sync()
    assert time.monotonic() - started < 1.5
    assert ledger.dropped == 3 and ledger.waiting == 0
    assert any("still failing at shutdown: 3 rows lost" in r.getMessage() for r in caplog.records)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_rows_a_dead_writer_left_are_written_at_close_or_counted(caplog):
    ledger = ListLedger(failures=10**6, fatal=True)
    ledger.record(attempt(1))
    ledger.start_sync()
    deadline = time.monotonic() + 5
    while ledger.health == "ok" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ledger.health.startswith("writer stopped (OSError)")
    with caplog.at_level(logging.ERROR, logger="thrifty.ledger"):
        ledger.close_sync()  # one more writer; it dies of the same defect
    assert ledger.dropped == 1 and ledger.waiting == 0
    assert any("writer stopped (OSError): 1 rows lost" in r.getMessage() for r in caplog.records)
