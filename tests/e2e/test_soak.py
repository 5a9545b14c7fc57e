"""A short run of benchmarks/soak.py: 20 % provider faults, a fallback, a budgeted key, SIGTERM at the end.
Clients see zero failures, every answer has its final ledger row, the budget holds, memory stays flat."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
SOAK = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"


def run_soak(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, str(SOAK), "--json", *args], capture_output=True, text=True, timeout=240
    )
    assert out.stdout.strip(), out.stderr[-3000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert out.returncode == (0 if figures["ok"] else 1)
    return figures


def check(f: dict) -> None:
    assert f["failed"] == 0, f["failures"]
    assert f["succeeded"] > 20
    assert f["answers_without_row"] == 0
    assert f["ledger_final_rows"] == f["succeeded"]
    # every provider call (failed ones too) is booked, and about a fifth of them were faults
    assert f["ledger_rows"] == f["provider_calls"]
    injected = sum(f["faults_injected"].values())
    assert 0.1 <= injected / f["provider_calls"] <= 0.3
    assert len(f["faults_injected"]) >= 5  # 5xx, 429, drops and timeouts all happened
    # the budgeted key ran dry, and the overspend is at most one request's worst case
    assert f["refused_budget"] > 0
    assert f["budget_overspend_usd"] <= f["worst_case_usd"]
    # memory: no unbounded queues or tasks (generous bound: the run is short and the box shared)
    assert f["rss_end_mb"] <= f["rss_start_mb"] * 1.25 + 16
    assert f["ok"] is True


def test_soak_with_faults_sqlite_ledger():
    check(run_soak("--seconds", "12", "--clients", "12"))


def test_soak_with_faults_postgres_ledger(postgres_dsn):
    check(run_soak("--seconds", "10", "--clients", "12", "--postgres-dsn", postgres_dsn))
