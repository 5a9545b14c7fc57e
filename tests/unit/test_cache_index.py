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


def test_removed_keys_are_never_returned_and_empty_scopes_are_freed():
    rows = unit_rows(20, 16, 4)
    index = VectorIndex(16)
    for i, row in enumerate(rows):
        index.add("s", i, row)
    index.add("lone", 99, rows[0])
    for i in range(0, 20, 2):
        index.remove("s", i)
    index.remove("s", 12345)  # unknown keys are ignored
    assert len(index) == 11
    for i, row in enumerate(rows):
        keys = [k for k, _ in index.search("s", row, 20)]
        assert (i in keys) == (i % 2 == 1) and len(keys) == 10
    index.remove("lone", 99)
    assert "lone" not in index.scopes


def test_a_graph_with_many_dead_keys_is_rebuilt_without_them():
    rows = unit_rows(400, 32, 5)
    index = VectorIndex(32, ann_threshold=100)
    for i, row in enumerate(rows):
        index.add("big", i, row)
    index.wait(60)
    graph = index.scopes["big"]
    assert isinstance(graph, HnswScope)
    for i in range(90):  # under a quarter dead: marked, skipped, no rebuild
        index.remove("big", i)
    assert index.scopes["big"] is graph and all(index.search("big", rows[i], 1)[0][0] != i for i in range(90))
    for i in range(90, 360):  # the rest: rebuilt, and with 40 left it is exact again
        index.remove("big", i)
    index.wait(60)
    assert isinstance(index.scopes["big"], ExactScope) and len(index) == 40
    assert {index.search("big", rows[i], 1)[0][0] for i in range(360, 400)} == set(range(360, 400))


def test_changes_made_during_a_rebuild_are_kept():
    rows = unit_rows(700, 32, 6)
    index = VectorIndex(32, ann_threshold=200)
    for i in range(600):
        index.add("big", i, rows[i])
        if i >= 200 and i % 3 == 0:
            index.remove("big", i - 150)  # removals while the graph may be building
    for i in range(600, 700):
        index.add("big", i, rows[i])
    index.wait(60)  # and any rebuild started by removals made during the first
    removed = {i - 150 for i in range(200, 600) if i % 3 == 0}
    expected = set(range(700)) - removed
    assert len(index) == len(expected)
    found = {index.search("big", rows[i], 1)[0][0] for i in range(700)}
    assert found <= expected and len(found) >= 0.95 * len(expected)


def test_a_frozen_graph_takes_new_keys_in_its_overlay_and_keeps_its_storage():
    """While a graph is rebuilt it is frozen: its storage does not change (so the rebuild copies it
    without the index lock), new keys are searchable at once from the overlay, removals hold."""
    rows = unit_rows(60, 16, 9)
    scope = HnswScope(16)
    scope.add_many(np.arange(50, dtype=np.int64), rows[:50])
    live = scope.freeze()
    stored = scope.index.ntotal
    for i in range(50, 60):
        scope.add(i, rows[i])
    assert scope.index.ntotal == stored  # the graph was not written to
    assert scope.search(rows[55], 1)[0][0] == 55  # an overlay key, found at once
    assert scope.remove(55) and scope.remove(3)
    assert 55 not in scope.dead and 3 in scope.dead  # an overlay key leaves it; a graph key dies
    assert all(key not in (3, 55) for key, _ in scope.search(rows[3], 5) + scope.search(rows[55], 5))
    keys, vectors = scope.snapshot(live)  # what the rebuild copies: the graph as frozen
    assert sorted(keys.tolist()) == list(range(50)) and np.allclose(vectors[np.argsort(keys)], rows[:50])
    keys, _ = scope.items()
    assert sorted(keys.tolist()) == sorted(set(range(60)) - {3, 55}) and len(scope) == 58
