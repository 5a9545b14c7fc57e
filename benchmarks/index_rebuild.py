"""Search latency while an HNSW scope is rebuilt in the background, against the same searches with no
rebuild running (measured in the same run).

    python benchmarks/index_rebuild.py [--entries 100000] [--dim 384] [--searches 2000]

Fills one scope of `thrifty.cache.index.VectorIndex` past the ANN threshold, then removes a quarter
of its keys, which starts a background rebuild of the graph; searches run back to back from this
thread until the rebuild ends. Prints p50 / p99 / max search latency during the rebuild and without
one, and their ratios. The rebuild copies the graph's vectors outside the index lock (the graph is
frozen meanwhile), so no search should wait for the copy; the build itself shares the CPU.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from thrifty.cache.index import VectorIndex


def unit_rows(n: int, dim: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def timed_searches(index: VectorIndex, queries: np.ndarray, until) -> list[float]:
    times = []
    i = 0
    while until(i):
        t = time.perf_counter()
        index.search("s", queries[i % len(queries)], 4)
        times.append((time.perf_counter() - t) * 1000)
        i += 1
    return times


def summary(times: list[float]) -> tuple[float, float, float]:
    p50, p99 = np.percentile(times, [50, 99])
    return float(p50), float(p99), max(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--searches", type=int, default=2000)
    args = parser.parse_args()

    rows = unit_rows(args.entries, args.dim, 0)
    queries = unit_rows(500, args.dim, 1)
    index = VectorIndex(args.dim)
    t = time.perf_counter()
    for key, row in enumerate(rows):
        index.add("s", key, row)
    index.wait()
    print(f"{args.entries} entries indexed in {time.perf_counter() - t:.1f} s")

    steady = timed_searches(index, queries, lambda i: i < args.searches)
    for key in range(0, args.entries, 4):  # a quarter dead: the last removal starts the rebuild
        index.remove("s", key)
    t = time.perf_counter()
    during = timed_searches(index, queries, lambda i: bool(index.builds) or i == 0)
    print(f"rebuild took {time.perf_counter() - t:.1f} s; {len(during)} searches ran during it")
    for name, times in (("no rebuild", steady), ("during rebuild", during)):
        p50, p99, worst = summary(times)
        print(f"  {name:15s} p50 {p50:7.3f} ms  p99 {p99:7.3f} ms  max {worst:8.3f} ms")
    (s50, s99, smax), (d50, d99, dmax) = summary(steady), summary(during)
    print(f"during / without: p50 {d50 / s50:.2f}x  p99 {d99 / s99:.2f}x  max {dmax / smax:.2f}x")


if __name__ == "__main__":
    main()
