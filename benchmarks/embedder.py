"""Embedding latency per text on one core: each backend of `thrifty.embed` against the float32 numpy
reference measured in the same run (ratio < 1 = faster). Texts: QQP questions (short) and GSM8K prompts
(long) from ../shared/data when present, else built-in samples.

    .venv/bin/python benchmarks/embedder.py [--n 200]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, set before numpy loads
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import json
import statistics
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SHORT = ["How do I learn Python quickly?", "What is the capital of Australia?", "Why is the sky blue?"]
LONG = ["Natalia sold clips to 48 of her friends in April, and then half as many in May. " * 6]


def texts(kind: str, n: int) -> list[str]:
    if kind == "short" and (DATA / "cache" / "qqp_pairs.jsonl").exists():
        with (DATA / "cache" / "qqp_pairs.jsonl").open() as fh:
            return [json.loads(line)["a"] for line, _ in zip(fh, range(n), strict=False)]
    if kind == "long" and (DATA / "routing" / "routellm_gsm8k.jsonl").exists():
        with (DATA / "routing" / "routellm_gsm8k.jsonl").open() as fh:
            return [json.loads(line)["prompt"] for line, _ in zip(fh, range(n), strict=False)]
    base = SHORT if kind == "short" else LONG
    return [base[i % len(base)] + f" ({i})" for i in range(n)]


def timings(embedder: object, sample: list[str]) -> list[float]:
    embedder.embed_one(sample[0])  # warm up
    out = []
    for text in sample:
        start = time.perf_counter()
        embedder.embed_one(text)
        out.append((time.perf_counter() - start) * 1e3)
    return sorted(out)


def main() -> None:
    from thrifty.embed import BACKENDS, load_embedder

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    embedders = {b: load_embedder(b) for b in ("numpy", *(b for b in BACKENDS if b != "numpy"))}
    for kind in ("short", "long"):
        sample = texts(kind, args.n)
        base = None
        for name, embedder in embedders.items():
            ms = timings(embedder, sample)
            p50, p99 = statistics.median(ms), ms[int(0.99 * (len(ms) - 1))]
            base = base or p50
            print(
                f"{kind:5} {name:10} p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  ratio vs numpy {p50 / base:5.2f}"
            )


if __name__ == "__main__":
    main()
