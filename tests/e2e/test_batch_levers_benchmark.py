"""benchmarks/levers.py runs end to end on a tiny workload and prints a ratio per lever."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_levers_benchmark_runs_and_prints_ratios():
    args = ["--requests", "6", "--rag", "3", "--bursts", "2"]
    script = str(ROOT / "benchmarks" / "levers.py")
    done = subprocess.run(
        [sys.executable, script, *args], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    ratios = {
        m.group(1).strip(): float(m.group(2))
        for m in re.finditer(r"^(\S.{43})\s.*\s(\d+\.\d{3})$", done.stdout, re.MULTILINE)
    }
    assert set(ratios) == {
        "support, Anthropic: cache breakpoints",
        "support x12 stores, 3 OpenAI deps: sticky",
        "rag 10 passages: compression",
        "classify bursts of 8: live micro-batching",
        "classify: provider batch API (vs live, off)",
    }
    assert ratios["support, Anthropic: cache breakpoints"] < 1.0
    assert ratios["classify: provider batch API (vs live, off)"] == pytest.approx(0.5, abs=1e-3)
    assert "fake provider's usage model" in done.stdout
