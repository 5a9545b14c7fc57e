"""Nearest-neighbour search for the semantic cache: usearch vs hnswlib vs faiss-cpu vs exact numpy.

    python benchmarks/cache_ann.py [--n 100000] [--queries 500]

Vectors: `n` unit vectors of dimension 384 drawn around 2,000 random centres (like clustered question
embeddings); queries are fresh points near random stored vectors. One thread everywhere. Prints build
time, query p50/p99, recall@4 against exact search, and each library's p50 as a ratio of the exact
numpy baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

DIM = 384
K = 4


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def data(n: int, queries: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = unit(rng.standard_normal((2000, DIM)))
    vectors = unit(centres[rng.integers(0, 2000, n)] + 0.6 * unit(rng.standard_normal((n, DIM))))
    picks = vectors[rng.integers(0, n, queries)]
    return vectors, unit(picks + 0.25 * unit(rng.standard_normal((queries, DIM))))


def numpy_index(vectors: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    def search(q: np.ndarray) -> np.ndarray:
        scores = vectors @ q
        top = np.argpartition(-scores, K)[:K]
        return top[np.argsort(-scores[top])]

    return search


def usearch_index(vectors: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    from usearch.index import Index

    index = Index(ndim=DIM, metric="ip", dtype="f32", connectivity=16, expansion_add=128, expansion_search=64)
    index.add(np.arange(len(vectors)), vectors, threads=1)
    return lambda q: index.search(q, K, threads=1).keys


def hnswlib_index(vectors: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    import hnswlib

    index = hnswlib.Index(space="ip", dim=DIM)
    index.init_index(max_elements=len(vectors), ef_construction=128, M=16)
    index.set_num_threads(1)
    index.add_items(vectors, np.arange(len(vectors)))
    index.set_ef(64)
    return lambda q: index.knn_query(q, k=K)[0][0]


def faiss_index(vectors: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    import faiss

    faiss.omp_set_num_threads(1)
    index = faiss.IndexHNSWFlat(DIM, 16, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 128
    index.add(vectors)
    index.hnsw.efSearch = 64
    return lambda q: index.search(q.reshape(1, -1), K)[1][0]


def measure(
    name: str, build: Callable, vectors: np.ndarray, queries: np.ndarray, truth: list[set[int]]
) -> float:
    t0 = time.perf_counter()
    try:
        search = build(vectors)
    except ImportError:
        print(f"{name:8s} not installed")
        return float("nan")
    built = time.perf_counter() - t0
    times, hits = [], 0
    for q, true in zip(queries, truth, strict=True):
        t = time.perf_counter()
        found = search(q)
        times.append((time.perf_counter() - t) * 1000)
        hits += len(true & {int(i) for i in found})
    p50, p99 = np.percentile(times, [50, 99])
    recall = hits / (K * len(queries))
    print(f"{name:8s} build {built:7.2f} s   p50 {p50:7.3f} ms   p99 {p99:7.3f} ms   recall@{K} {recall:.3f}")
    return float(p50)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=500)
    args = parser.parse_args()
    vectors, queries = data(args.n, args.queries)
    exact = numpy_index(vectors)
    truth = [{int(i) for i in exact(q)} for q in queries]
    print(f"{args.n} vectors, dim {DIM}, {args.queries} queries, one thread")
    base = measure("numpy", numpy_index, vectors, queries, truth)
    for name, build in (("usearch", usearch_index), ("hnswlib", hnswlib_index), ("faiss", faiss_index)):
        p50 = measure(name, build, vectors, queries, truth)
        print(f"{'':8s} p50 speed-up over exact numpy: {base / p50:.1f}x")


if __name__ == "__main__":
    main()
