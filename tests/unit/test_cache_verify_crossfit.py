"""Cross-fitted training (`thrifty cache train --cross-fit K`): the operating point comes from
out-of-fold dev scores, the final model learns from train + dev, and the test split is never read."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.e2e.test_cache_cli import synthetic_pairs
from thrifty.cache.evaluate import (
    calibrate_scores,
    choose_threshold,
    fired_checks,
    pair_stats,
    verifier_scores,
    with_vetoes,
)
from thrifty.cache.verify.crossfit import DevScores, cross_fit, dev_fold
from thrifty.cache.verify.pairs import Pair, select
from thrifty.cache.verify.train import TrainSettings, fit_pairs, pair_vectors
from thrifty.embed import get_embedder
from thrifty.embed.diskcache import EmbeddingCache

FOLDS = 3
SETTINGS = TrainSettings(epochs=2, head_hidden=4, head_seeds=1, folds=3)


def _pairs() -> list[Pair]:
    return [Pair(r["a"], r["b"], r["duplicate"]) for r in synthetic_pairs()]


def _test_only_pairs(count: int) -> list[Pair]:
    """Test-split pairs whose texts appear nowhere else."""
    found: list[Pair] = []
    i = 0
    while len(found) < count:
        pair = Pair(f"Which violin maker built instrument {i}?", f"Who built violin number {i}?", i % 2 == 0)
        if pair.split == "test":
            found.append(pair)
        i += 1
    return found


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> EmbeddingCache:
    return EmbeddingCache(get_embedder(), tmp_path_factory.mktemp("crossfit-emb"))


@pytest.mark.timeout(600)
def test_threshold_comes_from_out_of_fold_scores_and_test_is_never_read(cache: EmbeddingCache) -> None:
    secret = _test_only_pairs(12)
    pairs = _pairs() + secret
    model = cross_fit(pairs, cache, 0.8, "auto", FOLDS, SETTINGS)

    # the test split was never read: none of its texts was ever embedded
    secret_texts = {t for p in secret for t in (p.a, p.b)}
    assert len(set(cache.missing(sorted(secret_texts)))) == len(secret_texts)

    train, dev = select(pairs, "train"), select(pairs, "dev")
    assert dev and {dev_fold(p, FOLDS) for p in dev} == set(range(FOLDS))
    cross = model.meta["cross_fit"]
    assert cross["folds"] == FOLDS and cross["dev_pairs"] == len(dev)
    assert cross["train_split_pairs"] == len(train)
    assert model.meta["train_pairs"] == len(train) + len(dev)  # the final model learned from dev too
    assert [s["trained_on"] for s in cross["fold_sizes"]] == [
        len(train) + sum(dev_fold(p, FOLDS) != k for p in dev) for k in range(FOLDS)
    ]

    # recompute the out-of-fold scores: each dev pair scored by a model that never saw it
    query_rows, candidate_rows = pair_vectors(dev, cache)
    raw = [0.0] * len(dev)
    for fold in range(FOLDS):
        held = [i for i, p in enumerate(dev) if dev_fold(p, FOLDS) == fold]
        learn = train + [p for p in dev if dev_fold(p, FOLDS) != fold]
        fold_model = replace(fit_pairs(learn, cache, SETTINGS), vetoes=())
        scores, _ = verifier_scores(
            fold_model, [dev[i] for i in held], (query_rows[held], candidate_rows[held])
        )
        for position, i in enumerate(held):
            raw[i] = scores[position]
    labels = [p.duplicate for p in dev]
    scores = with_vetoes(raw, fired_checks(dev), model.vetoes)
    threshold = choose_threshold(scores, labels, 0.8)
    assert model.threshold == pytest.approx(threshold, abs=1e-9)
    expected = pair_stats(scores, labels, threshold).as_dict()
    recorded = cross["oof_dev"]
    for key in ("pairs", "duplicates", "accepted", "correct"):
        assert recorded[key] == expected[key], key
    assert recorded == model.meta["dev"]  # calibrate's `dev` figures are the out-of-fold ones here

    # the final model, scored on the dev pairs it learned from, is not what set the threshold
    final_scores, _ = verifier_scores(replace(model, vetoes=()), dev, (query_rows, candidate_rows))
    assert final_scores != pytest.approx(raw)


def test_calibrate_scores_keeps_or_sets_vetoes(cache: EmbeddingCache) -> None:
    pairs = _pairs()
    dev = select(pairs, "dev")
    model = fit_pairs(select(pairs, "train"), cache, SETTINGS)
    raw = [0.9] * len(dev)  # every pair scores high: only the vetoes separate them
    scored = DevScores(raw, None, [0.95] * len(dev))
    kept = calibrate_scores(model, dev, scored, 0.8, "keep")
    assert kept.vetoes == model.vetoes and kept.meta["vetoes"] == list(model.vetoes)
    none = calibrate_scores(model, dev, scored, 0.8, ())
    assert none.vetoes == () and none.meta["dev"]["accepted"] in (0, len(dev))
    fired = fired_checks(dev)
    assert kept.meta["dev"]["accepted"] in (0, sum(not f.intersection(model.vetoes) for f in fired))


def test_too_few_dev_pairs_is_a_clear_error(cache: EmbeddingCache) -> None:
    train_only = [p for p in _pairs() if p.split == "train"]
    with pytest.raises(ValueError, match="too few dev pairs"):
        cross_fit(train_only, cache, 0.9, "keep", FOLDS, SETTINGS)
