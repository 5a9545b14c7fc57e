"""The numpy MiniLM matches sentence-transformers' all-MiniLM-L6-v2 (reference values below were
computed with sentence-transformers 5 / torch on the same weights, normalize_embeddings=True)."""

from __future__ import annotations

import numpy as np

from thrifty.embed import get_embedder

TEXTS = [
    "A cat sits on the mat.",
    "How old is Barack Obama?",
    "def f(x):\n    return x ** 2  # square",
    "Ünïcödé text — with dashes… and 数字 123",
]
FIRST_DIMS = [
    [0.126535, -0.032851, -0.02906, 0.044407, -0.043445, 0.032097],
    [0.032623, 0.062099, -0.008136, -0.00888, -0.083924, 0.067634],
    [0.03415, 0.048506, 0.008666, 0.066159, -0.075227, -0.017818],
    [-0.05522, 0.040448, 0.039441, -0.062773, -0.062129, -0.042845],
]


def test_matches_reference_embeddings():
    vectors = get_embedder().embed(TEXTS)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors[:, :6], FIRST_DIMS, atol=2e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_batch_order_and_padding_do_not_change_vectors():
    emb = get_embedder()
    together = emb.embed([*TEXTS, "short", "a much longer sentence " * 40])
    for i, text in enumerate(TEXTS):
        np.testing.assert_allclose(together[i], emb.embed_one(text), atol=1e-5)
    assert emb.embed([]).shape == (0, 384)


def test_paraphrases_are_closer_than_unrelated():
    a, b, c = get_embedder().embed(
        ["How old is Barack Obama?", "What is Barack Obama's age?", "How do I bake sourdough bread?"]
    )
    assert a @ b > 0.8 > 0.3 > a @ c
