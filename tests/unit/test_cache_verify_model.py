"""Verifier model file round-trip, training pieces, pair splits and threshold calibration."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from thrifty.cache.evaluate import choose_threshold, pair_stats, wilson_lower
from thrifty.cache.verify import DEFAULT_PATH, load_verifier
from thrifty.cache.verify.align import WordVectors
from thrifty.cache.verify.features import BUCKETS, DENSE, extract, fit_idf
from thrifty.cache.verify.fitting import SparseRows, fit_lexical, fit_logistic
from thrifty.cache.verify.model import COMBINER, LEXICAL, VerifierModel
from thrifty.cache.verify.pairs import Pair, PairsFormatError, read_pairs, sample, select
from thrifty.cache.verify.train import TrainSettings


def _random_model(seed: int = 1, hidden: int = 4) -> VerifierModel:
    rng = np.random.default_rng(seed)
    d = len(LEXICAL)
    return VerifierModel(
        idf=rng.uniform(1, 5, BUCKETS).astype(np.float32),
        mean=rng.normal(size=d).astype(np.float32),
        std=rng.uniform(0.5, 2, d).astype(np.float32),
        w1=rng.normal(size=(d, hidden)).astype(np.float32),
        b1=rng.normal(size=hidden).astype(np.float32),
        w2=rng.normal(size=hidden).astype(np.float32),
        sparse=rng.normal(size=BUCKETS).astype(np.float32),
        combiner=rng.normal(size=len(COMBINER) + 1).astype(np.float32),
        cmean=rng.normal(size=len(COMBINER)).astype(np.float32),
        cstd=rng.uniform(0.5, 2, len(COMBINER)).astype(np.float32),
        b2=0.25,
    )


PAIRS = [
    ("How do I learn Python fast?", "What is the quickest way to learn Python?"),
    ("What is the capital of France?", "What is the capital of Germany?"),
    ("Why is the sky blue?", "Why does the sky look blue?"),
]


def test_model_round_trips_through_its_file(tmp_path: Path) -> None:
    model = _random_model().with_threshold(0.7, target_precision=0.95)
    path = tmp_path / "v.npz"
    model.save(path)
    loaded = VerifierModel.load(path)
    assert loaded.threshold == 0.7 and loaded.meta["target_precision"] == 0.95
    assert loaded.vetoes == model.vetoes
    for q, c in PAIRS:
        assert loaded.score(q, c, 0.8) == pytest.approx(model.score(q, c, 0.8), rel=1e-6)
        assert loaded.accept(q, c, 0.8) == model.accept(q, c, 0.8)


def _with_head(model: VerifierModel, seed: int = 2, hidden: int = 3, dim: int = 8) -> VerifierModel:
    rng = np.random.default_rng(seed)
    model.hw1 = rng.normal(size=(len(COMBINER) + 2 * dim, hidden)).astype(np.float32)
    model.hb1 = rng.normal(size=hidden).astype(np.float32)
    model.hw2 = rng.normal(size=hidden).astype(np.float32)
    model.hb2 = -0.5
    return model


def _unit(rng: np.random.Generator, dim: int = 8) -> np.ndarray:
    v = rng.normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def test_embedding_head_round_trips_and_scores_from_the_vectors(tmp_path: Path) -> None:
    model = _with_head(_random_model()).with_threshold(0.6, text_threshold=0.4)
    path = tmp_path / "head.npz"
    model.save(path)
    loaded = VerifierModel.load(path)
    assert loaded.has_head and loaded.threshold == 0.6 and loaded.text_threshold == 0.4
    rng = np.random.default_rng(5)
    q, c = PAIRS[0]
    u, v = _unit(rng), _unit(rng)
    with_vectors = loaded.score(q, c, 0.8, u, v)
    # the head is stored in half precision: the loaded model scores within rounding of the original
    assert loaded.hw1 is not None and loaded.hw1.dtype == np.float32
    assert with_vectors == pytest.approx(model.score(q, c, 0.8, u, v), abs=5e-3)
    # the head's probability, recomputed by hand from its (loaded) arrays
    row = (
        np.asarray(loaded.combiner_row(extract(q, c, 0.8, loaded.idf, loaded.words)), np.float32)
        - loaded.cmean
    ) / loaded.cstd
    z = (
        np.maximum(np.concatenate([row, np.abs(u - v), u * v]) @ loaded.hw1 + loaded.hb1, 0) @ loaded.hw2
        + loaded.hb2
    )
    assert with_vectors == pytest.approx(1 / (1 + np.exp(-z)), rel=1e-5)
    # other vectors give another score; no vectors falls back to the combiner
    assert loaded.score(q, c, 0.8, u, _unit(rng)) != pytest.approx(with_vectors)
    assert loaded.score(q, c, 0.8) == pytest.approx(
        model.combine(model.combiner_row(extract(q, c, 0.8, model.idf, model.words)))
    )


def test_embedding_head_uses_its_threshold_only_with_vectors() -> None:
    model = _with_head(_random_model())
    rng = np.random.default_rng(7)
    q, c = PAIRS[2]
    u, v = _unit(rng), _unit(rng)
    head, text = model.score(q, c, 0.8, u, v), model.score(q, c, 0.8)
    just_above = model.with_threshold(head, text_threshold=min(text + 1e-3, 1.0) if text < 1 else 1.0)
    assert just_above.accept(q, c, 0.8, u, v) == (True, head)
    assert just_above.accept(q, c, 0.8)[0] is False
    no_fallback = model.with_threshold(head)
    with pytest.raises(ValueError, match="text-only threshold"):
        no_fallback.accept(q, c, 0.8)


def test_uncalibrated_model_refuses_to_accept(tmp_path: Path) -> None:
    model = _random_model()
    with pytest.raises(ValueError, match="not calibrated"):
        model.accept("a?", "b?", 0.9)
    model.save(tmp_path / "raw.npz")
    with pytest.raises(ValueError, match="not calibrated"):
        load_verifier(str(tmp_path / "raw.npz"))


def test_load_rejects_other_files(tmp_path: Path) -> None:
    bogus = tmp_path / "other.npz"
    np.savez(bogus, header=np.array(json.dumps({"format": "something-else"})))
    with pytest.raises(ValueError, match="not a thrifty-verifier"):
        VerifierModel.load(bogus)


def test_vetoed_or_distant_pair_scores_zero_and_is_rejected() -> None:
    model = _random_model().with_threshold(1e-9)
    assert model.score("How do I learn Go?", "How can I learn Go?", 0.5) > 0.0
    model.min_cosine = 0.7
    assert model.accept("How do I learn Go?", "How can I learn Go?", 0.5) == (False, 0.0)
    assert model.score("How do I lose 10 kg?", "How do I lose 20 kg?", 0.99) == 0.0
    assert model.accept("How do I lose 10 kg?", "How do I lose 20 kg?", 0.99) == (False, 0.0)


def test_bundled_default_is_small_calibrated_and_separates_obvious_cases() -> None:
    # a few MB at most: the head and the cross-encoder adapter (1.8 M numbers) are stored in fp16
    assert DEFAULT_PATH.stat().st_size < 6_000_000
    from thrifty.embed import get_embedder

    verifier = load_verifier()
    texts = ["How can I learn Python quickly?", "How can I learn Python quickly", "What is the capital of "
             "France?", "What is the capital of Germany?"]  # fmt: skip
    vectors = get_embedder().embed(texts)
    # as the cache serves it: with both vectors (the text-only fallback may be calibrated to accept nothing)
    same = verifier.accept(texts[0], texts[1], float(vectors[0] @ vectors[1]), vectors[0], vectors[1])
    other = verifier.accept(texts[2], texts[3], float(vectors[2] @ vectors[3]), vectors[2], vectors[3])
    assert same[0] and 0.0 <= same[1] <= 1.0
    assert not other[0]
    assert not verifier.accept(texts[2], texts[3], 0.9)[0]


def test_features_are_symmetric_in_overlap_and_flag_vetoes() -> None:
    idf = fit_idf([a for pair in PAIRS for a in pair])
    words = WordVectors.bundled()
    feats = extract("What is 2 plus 2?", "What is 2 plus 3?", 0.9, idf, words)
    named = dict(zip(DENSE, feats.dense, strict=True))
    assert named["cosine"] == pytest.approx(0.9) and named["veto_numbers"] == 1.0
    assert named["jaccard"] == pytest.approx(4 / 5)
    same = dict(zip(DENSE, extract("Why?", "Why?", 1.0, idf, words).dense, strict=True))
    assert same["jaccard"] == 1.0 and same["veto_numbers"] == 0.0
    assert extract("Why?", "Why?", 1.0, idf, words).differing == []


def test_fit_logistic_separates_separable_data() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2))
    y = (x[:, 0] - 0.5 * x[:, 1] > 0).astype(float)
    w = fit_logistic(x, y, l2=1e-4)
    predictions = (np.hstack([x, np.ones((400, 1))]) @ w) > 0
    assert (predictions == y.astype(bool)).mean() > 0.97


def test_fit_lexical_learns_word_weights_from_sparse_rows() -> None:
    rng = np.random.default_rng(0)
    n = 600
    dense = rng.normal(size=(n, len(DENSE))).astype(np.float32)
    rows = [[int(rng.integers(0, 8))] for _ in range(n)]
    labels = np.array([1.0 if r[0] < 4 else 0.0 for r in rows], dtype=np.float32)  # the word decides
    model = fit_lexical(
        dense, SparseRows(rows), labels, np.ones(BUCKETS, np.float32), TrainSettings(epochs=30)
    )
    assert model.sparse[:4].min() > model.sparse[4:8].max()


def test_choose_threshold_meets_target_with_a_margin() -> None:
    rng = np.random.default_rng(3)
    labels = rng.random(4000) < 0.4
    scores = np.clip(rng.normal(0.35 + 0.3 * labels, 0.15), 0.001, 1)
    threshold = choose_threshold(scores, labels, 0.95)
    stats = pair_stats(scores.tolist(), labels.tolist(), threshold)
    assert stats.precision is not None and stats.precision >= 0.95
    assert wilson_lower(stats.correct, stats.accepted, 1.0) >= 0.95
    # a slightly lower threshold would fall short of the bound: the point is the lowest that holds
    lower = pair_stats(scores.tolist(), labels.tolist(), threshold - 0.02)
    assert wilson_lower(lower.correct, lower.accepted, 1.0) < 0.95 or lower.accepted == stats.accepted
    assert stats.recall > 0.05


def test_choose_threshold_never_accepts_vetoed_or_unreachable() -> None:
    assert choose_threshold([0.0, 0.0, 0.0], [True, True, True], 0.5) == float("inf")
    assert choose_threshold([0.9, 0.8, 0.7], [False, False, True], 0.9) == float("inf")
    assert pair_stats([0.9, 0.8], [True, False], float("inf")).accepted == 0


def test_pairs_split_is_deterministic_and_complete(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    rows = [{"a": f"question {i}?", "b": f"query {i}?", "duplicate": i % 3 == 0} for i in range(500)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    pairs = read_pairs(path)
    assert len(pairs) == 500
    sizes = {s: len(select(pairs, s)) for s in ("train", "dev", "test")}
    assert sum(sizes.values()) == 500 and 240 < sizes["train"] < 360 and sizes["dev"] > 60
    assert select(pairs, "dev") == select(list(reversed(pairs)), "dev")[::-1]
    assert sample(select(pairs, "test"), 10) == sample(select(pairs, "test"), 10)
    assert len(sample(pairs, 10)) == 10 and Pair("x", "y", True).split in {"train", "dev", "test"}


@pytest.mark.parametrize(
    "line", ['{"a": "x", "b": "y"}', '{"a": "x", "b": 3, "duplicate": true}', "not json"]
)
def test_pairs_reader_names_the_bad_line(tmp_path: Path, line: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": "x", "b": "y", "duplicate": false}\n' + line + "\n")
    with pytest.raises(PairsFormatError, match=r"bad.jsonl:2"):
        read_pairs(path)


def test_out_of_fold_scores_replace_only_the_pairs_they_know(tmp_path):
    """A cross-fitted model keeps its out-of-fold dev scores by pair hash; calibrating it swaps them
    in for the pairs it learned from and keeps its own scores of pairs it never saw."""
    from thrifty.cache.verify.outoffold import OutOfFold

    seen = [Pair("How old is Paris?", "What is the age of Paris?", True), Pair("a b", "a c", False)]
    stored = OutOfFold.of(seen, [0.25, 0.5], [0.125, 0.375])
    fresh = Pair("Is tea healthy?", "Is tea good for you?", True)
    raw, text, replaced = stored.override([fresh, seen[1], seen[0]], [0.9, 0.9, 0.9], [0.8, 0.8, 0.8])
    assert (raw, text, replaced) == ([0.9, 0.5, 0.25], [0.8, 0.375, 0.125], 2)
    # the label is not part of the key: the same texts are the same pair
    assert stored.override([Pair(seen[0].a, seen[0].b, False)], [0.9], None) == ([0.25], None, 1)
    # persisted with the model
    model = load_verifier()
    path = tmp_path / "m.npz"
    dataclasses.replace(model, oof=stored).save(path)
    loaded = VerifierModel.load(path)
    assert loaded.oof is not None
    assert loaded.oof.override(seen, [0, 0], [0, 0]) == ([0.25, 0.5], [0.125, 0.375], 2)
    dataclasses.replace(model, oof=None).save(path)
    assert VerifierModel.load(path).oof is None
    # the bundled model was cross-fitted: it carries an out-of-fold score for every dev pair it learned from
    assert model.oof is not None and len(model.oof.digests) == model.meta["cross_fit"]["dev_pairs"]
