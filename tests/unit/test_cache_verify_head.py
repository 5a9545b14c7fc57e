"""The embedding head end to end: its training pieces, the embedding cache per backend, and the live
lookup path handing the query's and the stored request's vectors to the verifier."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from thrifty.cache.backends.sqlite_semantic import SqliteSemanticStore
from thrifty.cache.entry import Entry
from thrifty.cache.semantic import SemanticCache
from thrifty.cache.verify.features import BUCKETS, DENSE
from thrifty.cache.verify.fitting import SparseRows, fit_head
from thrifty.cache.verify.head import PARTS, Whitening, head_features
from thrifty.cache.verify.model import COMBINER, LEXICAL, VerifierModel
from thrifty.cache.verify.train import TrainSettings, combiner_matrix, out_of_fold_logits, with_cosines
from thrifty.embed import get_embedder
from thrifty.embed.diskcache import EmbeddingCache, embedder_id
from thrifty.types import Usage

DIM = 384


def _unit(rng: np.random.Generator, dim: int = DIM) -> np.ndarray:
    v = rng.normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def _model_with_head(seed: int = 0, hidden: int = 6) -> VerifierModel:
    rng = np.random.default_rng(seed)
    d = len(LEXICAL)
    return VerifierModel(
        idf=rng.uniform(1, 5, BUCKETS).astype(np.float32),
        mean=np.zeros(d, np.float32),
        std=np.ones(d, np.float32),
        w1=rng.normal(size=(d, 4)).astype(np.float32),
        b1=np.zeros(4, np.float32),
        w2=rng.normal(size=4).astype(np.float32),
        sparse=np.zeros(BUCKETS, np.float32),
        combiner=rng.normal(size=len(COMBINER) + 1).astype(np.float32),
        cmean=np.zeros(len(COMBINER), np.float32),
        cstd=np.ones(len(COMBINER), np.float32),
        hw1=(0.05 * rng.normal(size=(len(COMBINER) + 2 * DIM, hidden))).astype(np.float32),
        hb1=rng.normal(size=hidden).astype(np.float32),
        hw2=rng.normal(size=hidden).astype(np.float32),
        vetoes=(),
    ).with_threshold(1e-9, text_threshold=1e-9)


def test_merged_head_is_the_mean_of_its_member_mlps() -> None:
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 5)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.float32)
    merged = fit_head(x, y, TrainSettings(head_hidden=4, head_seeds=3, seed=10))
    assert merged[0].shape == (5, 12) and merged[2].shape == (12,)

    def logit(w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: float) -> np.ndarray:
        return np.maximum(x @ w1 + b1, 0) @ w2 + b2

    members = [fit_head(x, y, TrainSettings(head_hidden=4, head_seeds=1, seed=s)) for s in (10, 11, 12)]
    expected = np.mean([logit(*m) for m in members], axis=0)
    assert np.allclose(logit(*merged), expected, atol=1e-4)
    assert ((logit(*merged) > 0) == (y > 0)).mean() > 0.9  # and it learned the rule


def test_out_of_fold_logits_come_from_models_that_never_saw_the_pair() -> None:
    # every pair has a word of its own that decides its label: a model that saw the pair could learn
    # it, a model trained on the other folds cannot, so out-of-fold logits carry no signal
    rng = np.random.default_rng(0)
    n = 400
    dense = np.zeros((n, len(DENSE)), dtype=np.float32)
    rows = SparseRows([[i] for i in range(n)])
    labels = (rng.random(n) < 0.5).astype(np.float32)
    settings = TrainSettings(epochs=40, folds=4, l2_sparse=0.0)
    oof = out_of_fold_logits(dense, rows, labels, np.ones(BUCKETS, np.float32), settings)
    assert np.allclose(oof, oof[0], atol=0.3)  # only the fold's bias: no pair's own word
    combined = combiner_matrix(oof, with_cosines(dense, np.full(n, 0.9, np.float32)))
    assert combined.shape == (n, len(COMBINER))
    assert np.allclose(combined[:, 2 + DENSE.index("cosine")], 0.9)
    assert np.allclose(combined[:, 1], oof * 0.9)


def test_embedding_cache_keeps_vectors_per_embedder(tmp_path: Path) -> None:
    embedder = get_embedder()
    cache = EmbeddingCache(embedder, tmp_path)
    assert cache.directory == tmp_path / embedder_id(embedder) and cache.embedder_id
    cache.fill(["How do I learn Python?", "Why is the sky blue?"])
    assert len(list(cache.directory.glob("chunk-*.json"))) == 1
    # another backend's vectors under the same text are never read back
    other = tmp_path / "some-other-backend"
    other.mkdir()
    np.save(other / "chunk-1.npy", np.ones((1, embedder.dim), np.float32))
    (other / "chunk-1.json").write_text(json.dumps(["What is love?"]))
    reopened = EmbeddingCache(embedder, tmp_path)
    assert len(reopened) == 2 and reopened.missing(["What is love?"]) == ["What is love?"]
    fresh = embedder.embed(["How do I learn Python?"])[0]
    assert np.allclose(reopened.matrix(["How do I learn Python?"])[0], fresh, atol=1e-5)
    # a chunk cut short by an interrupted run is skipped, not fatal
    (cache.directory / "chunk-9.npy").write_bytes(b"\x93NUMPY broken")
    (cache.directory / "chunk-9.json").write_text("[")
    assert len(EmbeddingCache(embedder, tmp_path)) == 2


def _entry(text: str) -> Entry:
    body = {"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": {"content": text}}]}
    return Entry(body, Usage(input_tokens=10, output_tokens=5), "gpt-4o", "fakeai")


def test_sqlite_store_returns_each_neighbours_stored_vector(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    vectors = [_unit(rng) for _ in range(3)]
    store = SqliteSemanticStore(str(tmp_path / "c.db"), DIM, 100)

    async def scenario() -> list:
        for i, v in enumerate(vectors):
            await store.add("s", v, _entry(str(i)), ttl_s=60)
        return await store.search("s", vectors[1], 3, -1.0)

    found = asyncio.run(scenario())
    assert len(found) == 3 and found[0].entry.body["choices"][0]["message"]["content"] == "1"
    for neighbour in found:
        answer = int(neighbour.entry.body["choices"][0]["message"]["content"])
        assert neighbour.vector is not None and np.array_equal(neighbour.vector, vectors[answer])
        assert neighbour.cosine == pytest.approx(float(vectors[answer] @ vectors[1]), abs=1e-5)


def test_semantic_lookup_scores_with_both_vectors(tmp_path: Path) -> None:
    """The served score is the head's (query vector, stored vector), not the text-only fallback."""
    rng = np.random.default_rng(2)
    model = _model_with_head()
    stored, query = _unit(rng), _unit(rng)
    query = (query + 3 * stored) / np.linalg.norm(query + 3 * stored)  # a near neighbour
    store = SqliteSemanticStore(str(tmp_path / "c.db"), DIM, 100)
    cache = SemanticCache(store, get_embedder(), model, top_k=3, min_cosine=-1.0)
    q_text, c_text = "How can I learn Go quickly?", "What is the fastest way to learn Go?"

    async def scenario():
        await cache.store_answer("scope", c_text, stored, _entry("answer"), ttl_s=60)
        return await cache.lookup("scope", q_text, query)

    hit = asyncio.run(scenario())
    assert hit is not None and hit.cosine == pytest.approx(float(query @ stored), abs=1e-5)
    with_vectors = model.score(q_text, c_text, hit.cosine, query, stored)
    assert hit.score == pytest.approx(with_vectors, abs=1e-6)
    assert hit.score != pytest.approx(model.score(q_text, c_text, hit.cosine), abs=1e-3)


def test_whitening_decorrelates_and_single_rows_match_batches() -> None:
    rng = np.random.default_rng(3)
    mixing = rng.normal(size=(16, 16)).astype(np.float32)
    vectors = rng.normal(size=(4000, 16)).astype(np.float32) @ mixing + 5.0  # correlated, off-centre
    whitening = Whitening.fit(vectors)
    raw = (vectors - whitening.mean) @ whitening.matrix
    assert np.allclose(np.cov(raw.T), np.eye(16), atol=0.05)
    assert np.allclose(np.linalg.norm(whitening(vectors), axis=1), 1.0, atol=1e-5)
    u, v = vectors[:5] / 10, vectors[5:10] / 10
    rows = rng.normal(size=(5, 3)).astype(np.float32)
    batch = head_features(rows, u, v, PARTS, whitening)
    assert batch.shape == (5, 3 + 5 * 16 + 1)
    for i in range(5):
        assert np.allclose(head_features(rows[i], u[i], v[i], PARTS, whitening), batch[i], atol=1e-5)
    # parts come in a fixed order and only the named ones
    only = head_features(rows, u, v, ("white_cos", "absdiff"), whitening)
    assert np.allclose(only[:, 3:19], np.abs(u - v)) and only.shape == (5, 3 + 16 + 1)
    with pytest.raises(ValueError, match="whitening"):
        head_features(rows, u, v, ("white_prod",), None)


def test_whitened_head_round_trips_through_its_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    whitening = Whitening.fit(rng.normal(size=(2000, DIM)).astype(np.float32))
    inputs = len(COMBINER) + 5 * DIM + 1
    model = _model_with_head()
    model.head_parts, model.wmean, model.wmatrix = PARTS, whitening.mean, whitening.matrix
    model.hw1 = (0.05 * rng.normal(size=(inputs, 6))).astype(np.float32)
    model.save(tmp_path / "w.npz")
    loaded = VerifierModel.load(tmp_path / "w.npz")
    assert loaded.head_parts == PARTS and loaded.wmatrix is not None
    q, c = "How can I learn Go quickly?", "What is the fastest way to learn Go?"
    u, v = _unit(rng), _unit(rng)
    assert loaded.score(q, c, 0.8, u, v) == pytest.approx(model.score(q, c, 0.8, u, v), abs=5e-3)
    assert loaded.score(q, c, 0.8, u, v) != pytest.approx(loaded.score(q, c, 0.8, u, u), abs=1e-4)
