"""`thrifty serve` with the Postgres ledger (real Postgres from pgserver): the report reads it, two
replicas write it, an outage buffers rows and shows in /readyz, SIGTERM under load loses no row."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import base_config
from tests.support.load import Load

pytestmark = pytest.mark.e2e


def pg_config(fake, dsn: str, **ledger: Any) -> dict[str, Any]:
    data = base_config(fake)
    data["ledger"] = {"backend": "postgres", "dsn": dsn, **ledger}
    return data


def pg_rows(dsn: str, *, expect: int = 0, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Ledger rows in Postgres, waiting (up to `timeout`) until at least `expect` are there."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(dsn) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
                rows = cur.execute("SELECT * FROM ledger ORDER BY id").fetchall()
        except psycopg.Error:
            rows = []
        if len(rows) >= expect or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def final_ids(rows: list[dict[str, Any]]) -> list[str]:
    return [r["request_id"] for r in rows if r["final"] == 1]


def chat_body(n: int) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"question {n}"}]}


def test_report_and_dashboard_read_the_postgres_ledger(gateway_factory, fake, postgres_dsn, tmp_path):
    gw = gateway_factory(pg_config(fake, postgres_dsn))
    costs = []
    for i in range(6):
        r = httpx.post(gw.base_url + "/chat/completions", json=chat_body(i), timeout=30)
        assert r.status_code == 200
        costs.append(float(r.headers["x-thrifty-cost-usd"]))
    assert len(final_ids(pg_rows(postgres_dsn, expect=6))) == 6
    out = subprocess.run(
        [sys.executable, "-m", "thrifty.cli", "report", "--config", str(gw.config_path), "--format", "json"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    totals = json.loads(out.stdout)["totals"]
    assert totals["answered"] == 6 and totals["requests"] == 6
    assert totals["actual_usd"] == pytest.approx(sum(costs), abs=1e-7)
    summary = httpx.get(gw.url + "/dashboard/api/summary", timeout=30).json()
    assert summary["report"]["totals"]["answered"] == 6
    assert httpx.get(gw.url + "/readyz").json()["checks"]["ledger"] == "ok"


def test_two_replicas_under_load_book_every_answer_once(gateway_factory, fake, postgres_dsn):
    fake.set_default(latency_ms=5)
    a = gateway_factory(pg_config(fake, postgres_dsn))
    b = gateway_factory(pg_config(fake, postgres_dsn))
    load = Load([a.url, b.url], chat_body, clients=16)
    load.run_for(4)
    answered = load.answered()
    assert not load.failed() and len(answered) >= 10
    assert {o.url for o in answered} == {a.url, b.url}
    rows = pg_rows(postgres_dsn, expect=len(answered))
    assert sorted(final_ids(rows)) == sorted(o.request_id for o in answered)
    assert {r["deployment"] for r in rows} == {"fakeai:gpt-4o-mini"}


def test_unreachable_postgres_buffers_rows_and_readyz_says_so(gateway_factory, fake, postgres_server):
    name = f"later_{time.monotonic_ns() % 10**9}"
    dsn = postgres_server.server.get_uri(name)  # not created yet: every write fails
    gw = gateway_factory(pg_config(fake, dsn, flush_interval_ms=20))
    ids = []
    for i in range(5):
        r = httpx.post(gw.base_url + "/chat/completions", json=chat_body(i), timeout=30)
        assert r.status_code == 200  # requests never wait on the ledger
        ids.append(r.headers["x-thrifty-request-id"])
    deadline = time.monotonic() + 10
    while not (ready := httpx.get(gw.url + "/readyz").json())["checks"]["ledger"].startswith("unreachable"):
        assert time.monotonic() < deadline, ready
        time.sleep(0.1)
    assert ready["status"] == "ready"  # buffering, not refusing
    assert "5 rows buffered" in ready["checks"]["ledger"]
    postgres_server.server.psql(f"CREATE DATABASE {name};")
    assert sorted(final_ids(pg_rows(dsn, expect=5, timeout=20))) == sorted(ids)
    deadline = time.monotonic() + 10
    while httpx.get(gw.url + "/readyz").json()["checks"]["ledger"] != "ok":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    gw.stop()
    assert "Postgres write failed" in gw.output()


def test_sigterm_under_load_loses_no_postgres_row(gateway_factory, fake, postgres_dsn):
    fake.set_default(latency_ms=20)
    # a long flush interval: at SIGTERM many rows are still waiting in memory
    gw = gateway_factory(pg_config(fake, postgres_dsn, flush_interval_ms=60_000))
    warm = httpx.post(gw.base_url + "/chat/completions", json=chat_body(-1), timeout=30)
    load = Load([gw.url], chat_body, clients=12).start()
    time.sleep(3.0)
    assert pg_rows(postgres_dsn) == []  # nothing flushed yet
    gw.proc.send_signal(signal.SIGTERM)
    assert gw.proc.wait(40) in (0, -signal.SIGTERM)
    outcomes = load.stop()
    answered = [warm.headers["x-thrifty-request-id"]] + [o.request_id for o in outcomes if o.status == 200]
    assert len(answered) >= 10
    assert sorted(final_ids(pg_rows(postgres_dsn))) == sorted(answered)
