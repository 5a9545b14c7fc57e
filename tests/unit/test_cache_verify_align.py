"""Word-alignment features from MiniLM's static word-piece embeddings (cache/verify/align.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.test_cache_verify_head import _model_with_head, _unit
from thrifty.cache.verify.ablation import dev_scores
from thrifty.cache.verify.align import ALIGN, UNMATCHED, WordVectors, alignment
from thrifty.cache.verify.features import DENSE, extract, fit_idf
from thrifty.cache.verify.pairs import Pair
from thrifty.cache.verify.train import lexical_matrices


@pytest.fixture(scope="module")
def words() -> WordVectors:
    return WordVectors.bundled()


@pytest.fixture(scope="module")
def idf() -> np.ndarray:
    return fit_idf(["How do I buy a car?", "How do I learn chess?", "Why is India poor?"])


def _align(query: str, candidate: str, idf: np.ndarray, words: WordVectors) -> dict[str, float]:
    feats = extract(query, candidate, 0.9, idf, words)
    assert len(feats.dense) == len(DENSE)
    return dict(zip(DENSE, feats.dense, strict=True))


def test_word_vectors_are_unit_rows_and_synonyms_are_closer(words: WordVectors) -> None:
    v = words.vectors(["buy", "purchase", "chess", "guitar", "smartphone"])  # smartphone: 2+ pieces
    assert v.shape == (5, 384) and v.dtype == np.float32
    assert np.linalg.norm(v, axis=1) == pytest.approx(np.ones(5), abs=1e-5)
    assert float(v[0] @ v[1]) > UNMATCHED > float(v[2] @ v[3])
    assert words.vectors([]).shape == (0, 384)
    # the same word gives the same vector, cached or not
    assert np.array_equal(words.vectors(["purchase"])[0], v[1])


def test_synonym_swap_aligns_better_than_an_unrelated_swap(idf: np.ndarray, words: WordVectors) -> None:
    synonym = _align("How do I buy a car?", "How do I purchase a car?", idf, words)
    unrelated = _align("How do I learn chess?", "How do I learn guitar?", idf, words)
    country = _align("Why is India poor?", "Why is China poor?", idf, words)
    for swapped in (unrelated, country):
        assert synonym["align_min"] > swapped["align_min"]
        assert synonym["align_mean_a"] > swapped["align_mean_a"]
        assert synonym["align_unmatched"] < swapped["align_unmatched"]
        assert synonym["align_unmatched_idf"] < swapped["align_unmatched_idf"]
    assert synonym["align_unmatched"] == 0.0 and unrelated["align_unmatched"] == 2.0
    assert unrelated["align_worst_idf"] > 0.0


def test_nothing_differing_is_fully_aligned(idf: np.ndarray, words: WordVectors) -> None:
    same = _align("How do I buy a car?", "how do i buy a car", idf, words)
    assert [same[n] for n in ALIGN[:-1]] == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert same["static_cosine"] == pytest.approx(1.0, abs=1e-5)
    # only stop words differ: still nothing to align
    stop = _align("What is a car?", "What is the car?", idf, words)
    assert stop["align_min"] == 1.0 and stop["align_unmatched"] == 0.0


def test_one_sided_extra_word_is_scored_against_the_other_text(words: WordVectors) -> None:
    feats = alignment(
        {"learn", "python"}, {"learn", "python", "guitar"}, set(), {"guitar"}, lambda w: 2.0, words
    )
    named = dict(zip(ALIGN, feats, strict=True))
    assert named["align_mean_a"] == 1.0  # the query has no word of its own
    assert named["align_mean_b"] == pytest.approx(named["align_min"]) and named["align_min"] < UNMATCHED
    assert named["align_worst_idf"] == 2.0
    assert named["align_unmatched_idf"] == pytest.approx(2.0 / 10.0)
    # no content words at all on one side: no vectors to compare, no crash
    empty = dict(
        zip(ALIGN, alignment(set(), {"guitar"}, set(), {"guitar"}, lambda w: 1.0, words), strict=True)
    )
    assert empty["align_min"] == 0.0 and empty["static_cosine"] == 0.0


def test_ablation_batch_scores_match_the_served_score(words: WordVectors) -> None:
    """The ablation command's dev figures come from batch scoring; it must equal `VerifierModel.score`."""
    model = _model_with_head()
    model.min_cosine = 0.2
    texts = [
        ("How can I learn Go quickly?", "What is the fastest way to learn Go?"),
        ("How do I buy a car?", "How do I purchase a car?"),
        ("Why is India poor?", "Why is China poor?"),
        ("What is love?", "what is love"),  # same wording: 1
    ]
    dev = [Pair(a=a, b=b, duplicate=True) for a, b in texts]
    dense, sparse, _ = lexical_matrices(dev, model.idf, words)
    rng = np.random.default_rng(4)
    base = _unit(rng)
    u = np.stack([base for _ in dev])
    v = np.stack([base + noise * _unit(rng) for noise in (0.3, 0.5, 2.0, 0.1)])
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    batch = dev_scores(model, dense, sparse, u, v, dev)
    for i, p in enumerate(dev):
        cosine = float(u[i] @ v[i])
        assert batch[i] == pytest.approx(model.score(p.b, p.a, cosine, u[i], v[i]), abs=1e-5)
    assert batch[3] == 1.0 and any(0.0 < s < 1.0 for s in batch[:3])
