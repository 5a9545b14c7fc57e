"""The learned router's n-gram head: hashed WordPiece TF-IDF rows, the CSR operations and the L-BFGS
logistic regression (checked against dense numpy and the Newton solver), and the embedding cache key."""

from __future__ import annotations

import numpy as np
import pytest

from thrifty.embed.diskcache import EmbeddingCache
from thrifty.routing import logistic
from thrifty.routing.ngrams import NgramFeaturizer, SparseRows, bucket_counts
from thrifty.routing.sparse_logistic import Design, fit

TEXTS = [
    "What is the derivative of x^2 with respect to x?",
    "Translate 'good morning' into French.",
    "What is the integral of x^2 with respect to x?",
    "",
    "Which of these two scenarios is morally wrong?\nA. Scenario 1\nB. Scenario 2",
]


def dense(rows: SparseRows) -> np.ndarray:
    out = np.zeros((len(rows), rows.dim))
    for i in range(len(rows)):
        sl = slice(rows.indptr[i], rows.indptr[i + 1])
        out[i, rows.indices[sl]] = rows.values[sl]
    return out


def test_rows_are_unit_tfidf_and_similar_prompts_share_grams():
    feats = NgramFeaturizer(dim=1 << 12).fit(TEXTS + TEXTS[:3])
    x = dense(feats.transform(TEXTS))
    norms = np.linalg.norm(x, axis=1)
    assert norms[[0, 1, 2, 4]] == pytest.approx(1.0) and norms[3] == 0.0  # the empty prompt: no grams
    sims = x @ x.T
    assert sims[0, 2] > 0.5 > sims[0, 1]  # derivative vs integral question share most grams
    # bigrams are counted too: same words in another order differ
    a, _ = bucket_counts([10, 11, 12])
    b, _ = bucket_counts([12, 11, 10])
    assert set(a) != set(b) and len(a) == 5


def test_csr_operations_match_dense():
    rng = np.random.default_rng(1)
    rows = NgramFeaturizer(dim=1 << 10).fit(TEXTS).transform(TEXTS)
    x = dense(rows)
    w, r = rng.normal(size=rows.dim), rng.normal(size=len(rows))
    assert rows.matvec(w) == pytest.approx(x @ w)
    assert rows.rmatvec(r) == pytest.approx(x.T @ r)
    pick = np.array([4, 0, 3])
    assert dense(rows.take(pick)) == pytest.approx(x[pick])


def test_lbfgs_matches_newton_on_a_dense_problem():
    rng = np.random.default_rng(0)
    n, d = 400, 6
    x = np.hstack([rng.normal(size=(n, d)), np.ones((n, 1))])
    y = (rng.random(n) < 1 / (1 + np.exp(-(x[:, 0] - 2 * x[:, 1])))).astype(float)
    newton = logistic.fit(x, y, 3.0, iterations=60, tol=1e-12)
    lbfgs = fit(Design(x, None), y, 3.0)
    assert lbfgs == pytest.approx(newton, abs=1e-3)
    assert abs(newton[0] - 1) < 0.4 and abs(newton[1] + 2) < 0.5  # it learned the generating weights


def test_lbfgs_on_sparse_grams_learns_the_signal():
    texts = [f"question about {'quantum' if i % 2 else 'poetry'} number {i}" for i in range(200)]
    y = np.array([float(i % 2) for i in range(200)])
    rows = NgramFeaturizer(dim=1 << 12).fit(texts).transform(texts)
    w = fit(Design(np.ones((200, 1)), rows), y, 1.0)
    p = logistic.sigmoid(rows.matvec(w[1:]) + w[0])
    assert p[y == 1].min() > 0.8 and p[y == 0].max() < 0.2


class _Fake:
    """A stand-in embedder (the cache only reads `id`, `max_tokens`, `dim`, `embed`)."""

    dim = 2

    def __init__(self, ident: str, value: float, max_tokens: int = 32) -> None:
        self.id, self.max_tokens, self.value, self.calls = ident, max_tokens, value, 0

    def embed(self, texts):
        self.calls += 1
        return np.full((len(texts), 2), self.value, dtype=np.float32)


def test_embedding_cache_is_keyed_by_embedder_id_and_token_window(tmp_path):
    old, new = _Fake("minilm-numpy", 1.0), _Fake("minilm-onnx-int8-g1", 2.0)
    assert EmbeddingCache(old, tmp_path).matrix(["a", "b"])[0, 0] == 1.0
    assert EmbeddingCache(new, tmp_path).matrix(["a", "b"])[0, 0] == 2.0  # never the other backend's vectors
    again = EmbeddingCache(_Fake("minilm-onnx-int8-g1", 9.0), tmp_path).matrix(["a", "b"])
    assert again[0, 0] == 2.0 and new.calls == 1  # same id: read from disk
    full = _Fake("minilm-onnx-int8-g1", 5.0, max_tokens=256)
    assert EmbeddingCache(full, tmp_path).matrix(["a"])[0, 0] == 5.0  # 32 tokens are not the whole text
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "minilm-numpy-t32", "minilm-onnx-int8-g1", "minilm-onnx-int8-g1-t32",
    ]  # fmt: skip
