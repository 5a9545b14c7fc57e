"""Semantic cache lookup latency (embed + search + verify) at N stored entries, one scope.

    python benchmarks/cache_lookup.py [--entries 100000] [--queries 300]
        [--pairs ../shared/data/cache/qqp_pairs.jsonl] [--verifier FILE] [--cross-checks 1]

Stored entries: the first `--real` questions (side `a`) of the QQP pairs file, embedded with the bundled
MiniLM, plus filler vectors drawn around them (embedding 100k real questions takes too long on one
core) up to `--entries`, all in one SQLite file in one scope. Each filler carries the text of another
QQP question (from the pairs after the first `--real`), so the verifier reads real question lengths
when a filler is among a query's neighbours. Queries: the `b` side of the stored real
pairs, so about a third are duplicates and the verifier has real work; each query is embedded once
and the same vector is searched in both indexes (total = embed + search + verify). Prints the rebuild time on
start, p50/p99 of each part and of the whole lookup, for thrifty's index (faiss HNSW above 4,096
entries per scope) and for exact numpy search over the same entries, and the ratio of the two.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from thrifty.cache.backends.sqlite_semantic import TABLE, SqliteSemanticStore  # noqa: E402
from thrifty.cache.entry import Entry  # noqa: E402
from thrifty.cache.semantic import SemanticCache, load_default_verifier  # noqa: E402
from thrifty.embed import get_embedder  # noqa: E402
from thrifty.types import Usage  # noqa: E402

SCOPE = "bench-scope"


def read_pairs(path: Path, n: int) -> list[dict]:
    out = []
    with path.open("rb") as fh:
        for line in fh:
            out.append(orjson.loads(line))
            if len(out) == n:
                break
    return out


def fill(
    path: str, questions: list[str], vectors: np.ndarray, entries: int, dim: int, filler_texts: list[str]
) -> None:
    rng = np.random.default_rng(0)
    store = SqliteSemanticStore(path, dim, max_entries=entries + 1)
    now = time.time()
    body = {"object": "chat.completion", "choices": [{"index": 0, "message": {"content": "stored answer"}}]}
    rows = []
    for i in range(entries):
        if i < len(questions):
            vector, query = vectors[i], questions[i]
        else:
            base = vectors[rng.integers(0, len(vectors))]
            vector = base + 0.8 * rng.standard_normal(dim).astype(np.float32) / np.sqrt(dim)
            vector /= np.linalg.norm(vector)
            query = filler_texts[i % len(filler_texts)] if filler_texts else f"filler question {i}"
        entry = Entry(body, Usage(input_tokens=20, output_tokens=40), "gpt-4o", query=query)
        rows.append((SCOPE, vector.astype(np.float32).tobytes(), entry.to_bytes(), now, now + 1e9, now))
    with store.db.write() as conn:
        conn.executemany(
            f"INSERT INTO {TABLE} (scope, vector, entry, created, expires, used) VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
    asyncio.run(store.close())


def percentiles(values: list[float]) -> str:
    p50, p99 = np.percentile(values, [50, 99])
    return f"p50 {p50:7.3f} ms  p99 {p99:7.3f} ms"


def embed_queries(cache_embed, queries: list[str]) -> tuple[list[np.ndarray], list[float]]:
    """Each query embedded once (the same vectors feed both indexes), with its time."""
    vectors, times = [], []
    for q in queries:
        t = time.perf_counter()
        vectors.append(cache_embed(q))
        times.append((time.perf_counter() - t) * 1000)
    return vectors, times


async def measure(
    cache: SemanticCache, queries: list[str], vectors: list[np.ndarray], embed_ms: list[float]
) -> dict[str, list[float]]:
    parts: dict[str, list[float]] = {"embed": embed_ms, "search+verify": [], "total": []}
    hits = 0
    for q, vector, embed in zip(queries, vectors, embed_ms, strict=True):
        t = time.perf_counter()
        hit = await cache.lookup(SCOPE, q, vector)
        elapsed = (time.perf_counter() - t) * 1000
        hits += hit is not None
        parts["search+verify"].append(elapsed)
        parts["total"].append(embed + elapsed)
    print(f"    hits: {hits}/{len(queries)}")
    return parts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--real", type=int, default=2_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--pairs", default=str(ROOT.parent / "shared" / "data" / "cache" / "qqp_pairs.jsonl"))
    parser.add_argument("--verifier", default=None, help="verifier file (default: the bundled model)")
    parser.add_argument(
        "--cross-checks",
        type=int,
        default=1,
        help="cross-encoder runs per lookup at most (cache.cross_checks)",
    )
    args = parser.parse_args()

    embedder = get_embedder()
    pairs = read_pairs(Path(args.pairs), max(args.real, args.queries))
    questions = [p["a"] for p in pairs[: args.real]]
    t = time.perf_counter()
    vectors = embedder.embed(questions)
    print(f"embedded {len(questions)} real questions in {time.perf_counter() - t:.1f} s")
    queries = [p["b"] for p in pairs[: args.queries]]
    others = read_pairs(Path(args.pairs), max(args.real, args.queries) + args.entries // 2)
    filler_texts = [p[side] for p in others[max(args.real, args.queries) :] for side in ("a", "b")]
    verifier = load_default_verifier(args.verifier)
    print(f"verifier: {type(verifier).__name__} ({args.verifier or 'bundled'})")
    query_vectors, embed_ms = embed_queries(embedder.embed_one, queries)

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "cache.db")
        fill(path, questions, vectors, args.entries, embedder.dim, filler_texts)
        results = {}
        for name, threshold in (("thrifty (faiss HNSW)", None), ("exact numpy", 10**12)):
            t = time.perf_counter()
            store = SqliteSemanticStore(path, embedder.dim, args.entries + 1, ann_threshold=threshold)
            store.index.wait()
            print(f"{name}: {len(store.index)} entries indexed in {time.perf_counter() - t:.1f} s")
            cache = SemanticCache(
                store, embedder, verifier, top_k=4, min_cosine=0.7, cross_checks=args.cross_checks
            )
            results[name] = asyncio.run(measure(cache, queries, query_vectors, embed_ms))
            for part, values in results[name].items():
                print(f"    {part:14s} {percentiles(values)}")
            asyncio.run(store.close())
    ours, base = (np.percentile(r["total"], [50, 99]) for r in results.values())
    search_ours, search_base = (np.percentile(r["search+verify"], 50) for r in results.values())
    print(f"lookup p50 ratio thrifty/exact-numpy: {ours[0] / base[0]:.3f}  (p99 {ours[1] / base[1]:.3f})")
    print(f"search+verify p50 ratio thrifty/exact-numpy: {search_ours / search_base:.3f}")


if __name__ == "__main__":
    main()
