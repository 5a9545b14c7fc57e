"""The in-process vector index: exact per scope, HNSW once a scope grows past the threshold."""

from __future__ import annotations

import numpy as np

from thrifty.cache.index import ExactScope, HnswScope, VectorIndex


def unit_rows(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_exact_scope_returns_best_first():
    rows = unit_rows(50, 16, 1)
    index = VectorIndex(16)
    for i, row in enumerate(rows):
        index.add("s", i, row)
    found = index.search("s", rows[7], 3)
    assert found[0][0] == 7 and abs(found[0][1] - 1.0) < 1e-5
    assert [c for _, c in found] == sorted((c for _, c in found), reverse=True)
    assert index.search("other", rows[7], 3) == []


def test_a_scope_is_searched_exactly_while_its_graph_builds():
    rows = unit_rows(300, 32, 3)
    index = VectorIndex(32, ann_threshold=100)
    for i, row in enumerate(rows):
        index.add("big", i, row)
        assert index.search("big", row, 1)[0][0] == i  # every vector is findable right after its add
    index.wait(60)
    assert isinstance(index.scopes["big"], HnswScope) and len(index) == 300


def test_large_scope_moves_to_hnsw_and_keeps_recall():
    rows = unit_rows(600, 32, 2)
    index = VectorIndex(32, ann_threshold=200)
    for i, row in enumerate(rows):
        index.add("big", i, row)
    index.add("small", 10_000, rows[0])
    index.wait(60)
    assert isinstance(index.scopes["big"], HnswScope) and isinstance(index.scopes["small"], ExactScope)
    assert len(index) == 601
    hits = sum(index.search("big", rows[i], 1)[0][0] == i for i in range(0, 600, 7))
    assert hits >= 0.95 * len(range(0, 600, 7))
    key, cosine = index.search("big", rows[5], 1)[0]
    assert key == 5 and abs(cosine - 1.0) < 1e-4
