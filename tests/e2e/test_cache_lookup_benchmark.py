"""benchmarks/cache_lookup.py runs end to end on a small store, prints its ratios, and its
`--cross-checks` is the gateway's budget: with none, in-band candidates are refused."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_cache_cli import synthetic_pairs

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def _run(pairs: Path, real: int, cross_checks: int) -> str:
    script = str(ROOT / "benchmarks" / "cache_lookup.py")
    args = ["--entries", "5000", "--real", str(real), "--queries", "20", "--pairs", str(pairs),
            "--cross-checks", str(cross_checks)]  # fmt: skip
    done = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_cache_lookup_benchmark_looks_up_both_indexes_and_prints_ratios(tmp_path: Path):
    pairs = tmp_path / "pairs.jsonl"
    rows = synthetic_pairs()
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    hits = {}
    for budget in (0, 1):
        out = _run(pairs, len(rows) // 2, budget)  # the other half give the fillers their texts
        assert re.findall(r"(\d+) entries indexed", out) == ["5000", "5000"]  # HNSW (> 4,096) and numpy
        found = [int(h) for h in re.findall(r"hits: (\d+)/20", out)]
        assert len(found) == 2
        hits[budget] = found[1]  # exact search: the same neighbours whatever the index's luck
        ratio = re.search(r"lookup p50 ratio thrifty/exact-numpy: ([\d.]+)", out)
        assert ratio and float(ratio.group(1)) > 0
    assert hits[1] > hits[0]  # the paraphrases the cross-encoder stage passes
