"""benchmarks/index_rebuild.py runs end to end on a small scope and prints its ratios."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_index_rebuild_benchmark_runs_a_rebuild_and_prints_ratios():
    script = str(ROOT / "benchmarks" / "index_rebuild.py")
    args = ["--entries", "6000", "--dim", "32", "--searches", "200"]
    done = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    searched = re.search(r"(\d+) searches ran during it", done.stdout)
    assert searched and int(searched.group(1)) >= 1
    ratios = re.search(r"during / without: p50 ([\d.]+)x  p99 ([\d.]+)x  max ([\d.]+)x", done.stdout)
    assert ratios and all(float(r) > 0 for r in ratios.groups())
