"""Calibrating and evaluating the semantic-cache verifier on a labelled pairs file.

Two views of the same file:

- **pairs**: every labelled pair of the split scored on its own: precision of the accepted pairs and
  recall of the duplicates, for the verifier and for a cosine threshold calibrated on the same dev
  pairs to the same target precision;
- **lookup** (`lookup_eval.py`): a cache simulation: the split's `a` questions form the index, each `b`
  is looked up as the gateway would (embed, nearest `top_k`, verify); a hit is correct only when the
  pair (served `a`, `b`) is labelled a duplicate in the file. Latency is measured per lookup with a
  live embedding on a sample of queries.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from thrifty.cache.verify.pairs import Pair, sample, select
from thrifty.cache.verify.train import pair_vectors
from thrifty.evaluate.bounds import wilson_lower, z_of

if TYPE_CHECKING:
    from thrifty.cache.lookup_eval import Serving
    from thrifty.cache.verify.model import VerifierModel
    from thrifty.embed.diskcache import EmbeddingCache


# -- operating points ------------------------------------------------------------------------------
# One-sided confidence of the calibrated precision: one Wilson standard error (z = 1, 0.841)
DEFAULT_CONFIDENCE = NormalDist().cdf(1.0)


def choose_threshold(
    scores: Sequence[float], labels: Sequence[bool], target: float, confidence: float = DEFAULT_CONFIDENCE
) -> float:
    """The lowest score threshold whose accepted set has precision ≥ target, with the precision's
    one-sided Wilson lower bound at `confidence` rather than its point value, so that the point holds
    on unseen pairs. Returns +inf (accept nothing) when no threshold reaches the target; refuses
    scores that are not finite numbers (a NaN would sort last yet could become the threshold)."""
    import numpy as np

    z = z_of(confidence)
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    bad = int(np.count_nonzero(~np.isfinite(s)))
    if bad:
        raise ValueError(f"{bad} of {len(s)} scores are not finite numbers: cannot choose a threshold")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    tp = np.cumsum(y)
    best = math.inf
    for i in range(len(s)):
        if i + 1 < len(s) and s[i + 1] == s[i]:
            continue  # a threshold accepts every tie at once
        if s[i] <= 0.0:
            break  # score 0 means vetoed: never accepted
        if wilson_lower(int(tp[i]), i + 1, z) >= target:
            best = float(s[i])
    return best


@dataclass(frozen=True)
class PairStats:
    threshold: float
    pairs: int
    duplicates: int
    accepted: int
    correct: int

    @property
    def precision(self) -> float | None:
        return self.correct / self.accepted if self.accepted else None

    @property
    def recall(self) -> float:
        return self.correct / self.duplicates if self.duplicates else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "precision": self.precision, "recall": self.recall}


def pair_stats(scores: Sequence[float], labels: Sequence[bool], threshold: float) -> PairStats:
    accepted = [bool(y) for s, y in zip(scores, labels, strict=True) if s >= threshold and s > 0.0]
    return PairStats(
        threshold=threshold,
        pairs=len(labels),
        duplicates=sum(map(bool, labels)),
        accepted=len(accepted),
        correct=sum(accepted),
    )


# -- scoring -----------------------------------------------------------------------------------------
def verifier_scores(
    model: VerifierModel, pairs: Sequence[Pair], vectors: tuple[Any, Any], with_vectors: bool = True
) -> tuple[list[float], list[float]]:
    """(verifier scores, cosines). The query is the pair's `b`, the stored candidate its `a` (as in
    the lookup view); `with_vectors=False` scores as a caller that passes no embedding vectors."""
    import numpy as np

    query_rows, candidate_rows = vectors
    cosines = np.einsum("ij,ij->i", query_rows, candidate_rows) if len(pairs) else np.zeros(0)
    scores = [
        model.score(p.b, p.a, float(c), *((u, v) if with_vectors else (None, None)))
        for p, c, u, v in zip(pairs, cosines, query_rows, candidate_rows, strict=True)
    ]
    return scores, cosines.tolist()


def fired_checks(dev: Sequence[Pair]) -> list[set[str]]:
    """The hard checks that reject each pair (query = b, candidate = a), whether or not they veto."""
    from thrifty.cache.verify import checks

    return [{veto.check for veto in checks.vetoes(p.b, p.a)} for p in dev]


def with_vetoes(raw: Sequence[float], fired: Sequence[set[str]], vetoes: Sequence[str]) -> list[float]:
    """Scores computed with no vetoes, as the model scores them with `vetoes` (a veto scores 0)."""
    return [0.0 if fired[i].intersection(vetoes) else s for i, s in enumerate(raw)]


def choose_vetoes(
    raw: Sequence[float],
    fired: Sequence[set[str]],
    labels: Sequence[bool],
    target: float,
    confidence: float = DEFAULT_CONFIDENCE,
) -> tuple[str, ...]:
    """The hard checks worth keeping as vetoes: the subset whose vetoes leave the most dev recall at
    the `target` operating point (on a tie, the larger subset: a veto is the safer side). `raw` are
    the dev scores with no vetoes, `fired` the checks that reject each pair."""
    from itertools import combinations

    from thrifty.cache.verify import checks

    best: tuple[float, tuple[str, ...]] | None = None
    for size in range(len(checks.CHECKS), -1, -1):
        for subset in combinations(checks.CHECKS, size):
            masked = with_vetoes(raw, fired, subset)
            threshold = choose_threshold(masked, labels, target, confidence)
            recall = pair_stats(masked, labels, threshold).recall
            if best is None or recall > best[0]:
                best = (recall, subset)
    assert best is not None
    return best[1]


def calibrate(
    model: VerifierModel,
    pairs: Sequence[Pair],
    cache: EmbeddingCache,
    target: float,
    limit: int | None,
    vetoes: str | tuple[str, ...] = "keep",
    confidence: float = DEFAULT_CONFIDENCE,
    band: float | str | None = None,
) -> VerifierModel:
    """The model with the operating point for `target` (at `confidence`) chosen on the dev split (and
    the cosine baseline's point on the same pairs, kept for `eval` to compare against). `vetoes`:
    "keep" the model's hard checks, "auto" keeps those that help on dev (`choose_vetoes`), or an
    explicit list. A cross-fitted model is calibrated on its stored out-of-fold scores of the dev
    pairs it learned from (`outoffold.py`), not on its own in-sample scores of them. A model with a
    cross-encoder stage gets its combiner refitted too, at `band` (default: the model's; "auto": the one
    of `rerank.BANDS` that keeps the most dev recall)."""
    from dataclasses import replace

    dev = sample(select(pairs, "dev"), limit)
    if not dev:
        raise ValueError("the pairs file has no dev pairs to calibrate on")
    vectors = pair_vectors(dev, cache)
    plain = replace(model, vetoes=(), cross=None)
    raw, cosines = verifier_scores(plain, dev, vectors)
    text = verifier_scores(plain, dev, vectors, with_vectors=False)[0] if model.has_head else None
    replaced = 0
    if model.oof is not None:  # the model learned from these dev pairs: use the scores it could not fit
        raw, text, replaced = model.oof.override(dev, raw, text)
    head_model = replace(model, cross=None)
    calibrated = calibrate_scores(head_model, dev, DevScores(raw, text, cosines), target, vetoes, confidence)
    if model.cross is not None:  # the cross-encoder stage re-scores what the head ranks in its band
        from thrifty.cache.verify.rerank import BANDS, calibrate_stage

        head = with_vetoes(raw, fired_checks(dev), calibrated.vetoes)
        bands = BANDS if band == "auto" else (model.cross.band if band is None else band,)
        calibrated = calibrate_stage(calibrated, model.cross, dev, head, target, confidence, bands)
    return calibrated.with_threshold(
        calibrated.threshold, calibrated.text_threshold, dev_out_of_fold=replaced
    )


@dataclass(frozen=True)
class DevScores:
    """Scores of the dev pairs with no vetoes: with vectors (`raw`), text-only (`text`, for a model
    with a head) and the cosines."""

    raw: Sequence[float]
    text: Sequence[float] | None
    cosines: Sequence[float]


def calibrate_scores(
    model: VerifierModel,
    dev: Sequence[Pair],
    scored: DevScores,
    target: float,
    vetoes: str | tuple[str, ...] = "keep",
    confidence: float = DEFAULT_CONFIDENCE,
) -> VerifierModel:
    """`calibrate` on dev scores computed elsewhere (by `model` itself, or out of fold by
    `crossfit.cross_fit`): the vetoes, the threshold for `target` and the text-only point."""
    from dataclasses import replace

    labels = [p.duplicate for p in dev]
    fired = fired_checks(dev)
    if vetoes == "auto":
        model = replace(model, vetoes=choose_vetoes(scored.raw, fired, labels, target, confidence))
    elif vetoes != "keep":
        model = replace(model, vetoes=tuple(vetoes))
    scores = with_vetoes(scored.raw, fired, model.vetoes)
    threshold = choose_threshold(scores, labels, target, confidence)
    cosine_threshold = choose_threshold(scored.cosines, labels, target, confidence)
    text: dict[str, Any] = {}
    if model.has_head and scored.text is not None:  # the fallback point for callers with no vectors
        text_scores = with_vetoes(scored.text, fired, model.vetoes)
        text_threshold = choose_threshold(text_scores, labels, target, confidence)
        text = {
            "text_threshold": text_threshold,
            "dev_text": pair_stats(text_scores, labels, text_threshold).as_dict(),
        }
    return model.with_threshold(
        threshold,
        target_precision=target,
        confidence=confidence,
        calibration_pairs=len(dev),
        vetoes=list(model.vetoes),
        cosine_threshold=cosine_threshold,
        dev=pair_stats(scores, labels, threshold).as_dict(),
        dev_cosine=pair_stats(scored.cosines, labels, cosine_threshold).as_dict(),
        **text,
    )


# -- the report --------------------------------------------------------------------------------------
def evaluate(
    model: VerifierModel,
    pairs: Sequence[Pair],
    cache: EmbeddingCache,
    split: str,
    limit: int | None,
    latency_queries: int,
    serving: Serving | None = None,
) -> dict[str, Any]:
    from thrifty.cache.lookup_eval import Serving, lookup

    if model.threshold is None:
        raise ValueError("the verifier is not calibrated: run `thrifty cache calibrate` first")
    if math.isnan(model.threshold):  # written by an older `calibrate`: it would never accept a pair
        raise ValueError("the verifier's threshold is NaN: run `thrifty cache calibrate` on it again")
    chosen = sample(select(pairs, split), limit)
    labels = [p.duplicate for p in chosen]
    vectors = pair_vectors(chosen, cache)
    scores, cosines = verifier_scores(model, chosen, vectors)
    cosine_threshold = float(model.meta.get("cosine_threshold", math.inf))
    text: dict[str, Any] = {}
    if model.has_head and model.text_threshold is not None:
        text_scores, _ = verifier_scores(model, chosen, vectors, with_vectors=False)
        text = {"verifier_text_only": pair_stats(text_scores, labels, model.text_threshold).as_dict()}
    return {
        "split": split,
        "pairs": len(chosen),
        # pairs a cross-fitted model learned from: on those its figures are in-sample
        "pairs_trained_on": model.oof.known(chosen) if model.oof is not None else None,
        "target_precision": model.meta.get("target_precision"),
        "verifier": pair_stats(scores, labels, model.threshold).as_dict(),
        **text,
        "cosine": pair_stats(cosines, labels, cosine_threshold).as_dict(),
        "lookup": lookup(
            model, chosen, pairs, cache, cosine_threshold, latency_queries, serving or Serving.defaults()
        ),
    }
