"""Cross-fitted training and calibration: the shipped model learns from the dev pairs too, while its
threshold is still chosen on dev scores from models that never saw those pairs.

`thrifty cache train --cross-fit K --target-precision P` does, reading the train and dev splits only:

1. the dev pairs fall into K folds by a hash of their texts (the same on every machine);
2. for each fold k, the whole pipeline (`train.fit_pairs`, exactly what `thrifty cache train` runs)
   learns on train + the dev pairs outside fold k and scores the pairs of fold k (no vetoes, with and
   without vectors): every dev pair gets an out-of-fold score;
3. the vetoes (`--vetoes auto` etc.), the threshold for P and the text-only point are chosen on those
   out-of-fold scores (`evaluate.calibrate_scores`, the same rule as `thrifty cache calibrate`);
4. the model written is the same pipeline trained on train + all of dev, with that operating point
   and the out-of-fold dev scores (`outoffold.OutOfFold`), so that `thrifty cache calibrate` can
   re-target it without scoring dev pairs the final model learned from.

Choosing the threshold on scores the model was not fitted to avoids calibrating on in-sample scores;
the final model, trained on ~33 % more pairs than the train split alone (QQP), is assumed to
score at least as well as the fold models at the same threshold (not checked on dev: it saw dev).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from thrifty.cache.evaluate import DEFAULT_CONFIDENCE, DevScores, calibrate_scores, verifier_scores
from thrifty.cache.verify.outoffold import OutOfFold
from thrifty.cache.verify.pairs import Pair, sample, select
from thrifty.cache.verify.train import TrainSettings, fit_pairs, pair_vectors

if TYPE_CHECKING:
    from thrifty.cache.verify.model import VerifierModel
    from thrifty.embed.diskcache import EmbeddingCache


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def dev_fold(pair: Pair, folds: int) -> int:
    """The cross-fitting fold of a dev pair: a hash of its texts, independent of its split hash."""
    return pair.digest("crossfit") % folds


def out_of_fold_scores(
    train: Sequence[Pair], dev: Sequence[Pair], cache: EmbeddingCache, folds: int, s: TrainSettings
) -> tuple[DevScores, list[dict[str, int]]]:
    """Every dev pair scored (no vetoes) by the pipeline trained on `train` + the other dev folds,
    and per fold the numbers of pairs trained on and scored."""
    import numpy as np

    fold_of = [dev_fold(p, folds) for p in dev]
    query_rows, candidate_rows = pair_vectors(dev, cache)
    cosines = np.einsum("ij,ij->i", query_rows, candidate_rows).tolist() if dev else []
    raw = [0.0] * len(dev)
    # with a head, the text-only fallback gets its own out-of-fold scores (its own threshold)
    text: list[float] | None = [0.0] * len(dev) if s.head_hidden > 0 else None
    sizes = []
    for fold in range(folds):
        held = [i for i, f in enumerate(fold_of) if f == fold]
        learn = [*train, *(p for p, f in zip(dev, fold_of, strict=True) if f != fold)]
        sizes.append({"fold": fold, "trained_on": len(learn), "scored": len(held)})
        if not held:
            continue
        _log(f"cross-fit fold {fold + 1}/{folds}: training on {len(learn)} pairs, scoring {len(held)}")
        model = replace(fit_pairs(learn, cache, s), vetoes=())
        pairs = [dev[i] for i in held]
        vectors = (query_rows[held], candidate_rows[held])
        scores, _ = verifier_scores(model, pairs, vectors)
        for position, i in enumerate(held):
            raw[i] = scores[position]
        if text is not None:
            texts, _ = verifier_scores(model, pairs, vectors, with_vectors=False)
            for position, i in enumerate(held):
                text[i] = texts[position]
    return DevScores(raw, text, cosines), sizes


def cross_fit(
    pairs: Sequence[Pair],
    cache: EmbeddingCache,
    target: float,
    vetoes: str | tuple[str, ...] = "keep",
    folds: int = 5,
    settings: TrainSettings | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
) -> VerifierModel:
    """The calibrated model: trained on train + dev, its operating point chosen on out-of-fold dev
    scores. Reads only the train and dev splits of `pairs`."""
    s = settings or TrainSettings()
    train = sample(select(pairs, "train"), s.train_pairs)
    dev = select(pairs, "dev")
    if len(dev) < folds:
        raise ValueError(f"too few dev pairs ({len(dev)}) for {folds} cross-fitting folds")
    scored, sizes = out_of_fold_scores(train, dev, cache, folds, s)
    _log(f"cross-fit: training the final model on {len(train) + len(dev)} pairs (train + dev)")
    final = fit_pairs([*train, *dev], cache, s)
    calibrated = calibrate_scores(final, dev, scored, target, vetoes, confidence)
    assert calibrated.threshold is not None
    cross: dict[str, Any] = {
        "folds": folds,
        "fold_sizes": sizes,
        "train_split_pairs": len(train),
        "dev_pairs": len(dev),
        "threshold_from": "out-of-fold dev scores",
        "oof_dev": calibrated.meta["dev"],
    }
    if "dev_text" in calibrated.meta:
        cross["oof_dev_text"] = calibrated.meta["dev_text"]
    calibrated = calibrated.with_threshold(
        calibrated.threshold, calibrated.text_threshold, cross_fit=cross, calibrated_by="train --cross-fit"
    )
    return replace(calibrated, oof=OutOfFold.of(dev, scored.raw, scored.text))
