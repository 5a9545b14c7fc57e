"""The MiniLM backends match sentence-transformers' all-MiniLM-L6-v2 (reference values below were
computed with sentence-transformers 5 / torch on the same weights, normalize_embeddings=True)."""

from __future__ import annotations

import numpy as np
import pytest

from thrifty.embed import get_embedder, load_embedder

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


@pytest.fixture(scope="module", params=["numpy", "onnx-fp32", "onnx-int8"])
def embedder(request):
    return load_embedder(request.param)


def test_float_backends_match_reference_embeddings():
    for backend in ("numpy", "onnx-fp32"):
        vectors = load_embedder(backend).embed(TEXTS)
        assert vectors.shape == (4, 384) and vectors.dtype == np.float32
        np.testing.assert_allclose(vectors[:, :6], FIRST_DIMS, atol=2e-6)


def test_int8_stays_close_to_the_float_model():
    exact = load_embedder("numpy").embed(TEXTS)
    quantised = load_embedder("onnx-int8").embed(TEXTS)
    cosines = (exact * quantised).sum(1)
    assert cosines.min() > 0.98, cosines


def test_vectors_are_unit_length(embedder):
    np.testing.assert_allclose(np.linalg.norm(embedder.embed(TEXTS), axis=1), 1.0, atol=1e-5)


def test_batch_order_and_padding_do_not_change_vectors(embedder):
    together = embedder.embed([*TEXTS, "short", "a much longer sentence " * 40])
    for i, text in enumerate(TEXTS):
        np.testing.assert_allclose(together[i], embedder.embed_one(text), atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)


def test_paraphrases_are_closer_than_unrelated(embedder):
    a, b, c = embedder.embed(
        ["How old is Barack Obama?", "What is Barack Obama's age?", "How do I bake sourdough bread?"]
    )
    assert a @ b > 0.8 > 0.3 > a @ c


def test_backends_have_distinct_ids():
    assert len({load_embedder(b).id for b in ("numpy", "onnx-fp32", "onnx-int8")}) == 3


def test_default_is_int8_and_unknown_backend_is_named(monkeypatch):
    assert get_embedder().id.startswith("minilm-onnx-int8")
    monkeypatch.setenv("THRIFTY_EMBEDDER", "bogus")
    with pytest.raises(ValueError, match="bogus"):
        load_embedder()


def test_model_file_is_built_once_into_the_cache_dir(tmp_path, monkeypatch):
    from thrifty.embed.onnx_minilm import OnnxMiniLMEmbedder

    monkeypatch.setenv("THRIFTY_CACHE_DIR", str(tmp_path))
    first = OnnxMiniLMEmbedder.bundled()
    files = list(tmp_path.glob("minilm-*.onnx"))
    assert len(files) == 1 and not list(tmp_path.glob("tmp*"))
    stamp = files[0].stat().st_mtime_ns
    second = OnnxMiniLMEmbedder.bundled()
    assert files[0].stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(first.embed(TEXTS), second.embed(TEXTS))


def test_a_token_limit_shares_the_model_and_only_truncates(embedder):
    long_text = "word " * 100
    limited = embedder.with_max_tokens(16)
    assert limited.max_tokens == 16 and embedder.max_tokens == 256 and limited.id == embedder.id
    np.testing.assert_allclose(limited.embed_one(long_text), embedder.embed_one("word " * 14), atol=1e-5)
    assert not np.allclose(limited.embed_one(long_text), embedder.embed_one(long_text), atol=1e-3)
    assert load_embedder("numpy", max_tokens=16).max_tokens == 16
