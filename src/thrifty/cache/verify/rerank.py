"""The verifier's last stage: the cross-encoder re-scores the candidates the head ranks high.

The head (`head.py`) costs ~0.4 ms per candidate; the cross-encoder (`cross.py`) several
milliseconds. So the cross-encoder runs only on candidates whose head probability reaches `band`
(a candidate below it scores 0: rejected, as a veto), and its logit is combined with the head's by a
logistic regression over `[logit(head), cross logit]` fitted on the dev pairs inside the band. The
verifier's calibrated threshold then applies to that combined probability.

Fitting is honest: the combiner's dev scores used to choose the threshold are out of fold (K-fold by
pair hash), and the cross-encoder never saw a dev pair (it trains on the train split).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from thrifty.cache.verify.cross import PREFIX, CrossEncoder

if TYPE_CHECKING:
    import numpy as np

    from thrifty.cache.verify.model import VerifierModel
    from thrifty.cache.verify.pairs import Pair


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))


@dataclass
class CrossStage:
    adapter: dict[str, np.ndarray]  # LoRA factors and trained arrays (`cross_train.py`)
    scale: float
    band: float = 1.0  # head probability from which the cross-encoder is consulted
    weights: tuple[float, float, float] = (0.0, 0.0, 1.0)  # bias, head logit, cross logit
    encoder: CrossEncoder | None = field(default=None, repr=False, compare=False)

    def warm(self) -> CrossEncoder:
        """Load the encoder now (building its ONNX file on first use), not on the first lookup."""
        if self.encoder is None:
            self.encoder = CrossEncoder(self.adapter, self.scale)
        return self.encoder

    def cross_logit(self, stored: str, query: str) -> float:
        return self.warm().logit(stored, query)

    def combine(self, head: float, cross: float) -> float:
        bias, w_head, w_cross = self.weights
        return _sigmoid(bias + w_head * _logit(head) + w_cross * cross)

    def score(self, head: float, stored: str, query: str) -> float:
        """The combined probability, or 0 for a candidate the head ranks below the band."""
        if head < self.band or head <= 0.0:
            return 0.0
        return self.combine(head, self.cross_logit(stored, query))

    # -- persistence (inside the verifier's file) ------------------------------------------------
    def header(self) -> dict[str, Any]:
        return {"scale": self.scale, "band": self.band, "weights": list(self.weights)}

    def arrays(self) -> dict[str, np.ndarray]:
        import numpy as np

        return {PREFIX + name: np.asarray(value, dtype=np.float16) for name, value in self.adapter.items()}

    @classmethod
    def from_file(cls, header: dict[str, Any] | None, arrays: dict[str, np.ndarray]) -> CrossStage | None:
        if header is None:
            return None
        adapter = {name[len(PREFIX) :]: value for name, value in arrays.items() if name.startswith(PREFIX)}
        bias, w_head, w_cross = (float(w) for w in header["weights"])
        return cls(adapter, float(header["scale"]), float(header["band"]), (bias, w_head, w_cross))


class TooFewInBand(ValueError):
    """Too few distinct dev pairs inside a band to fit the combiner out of fold."""

    def __init__(self, distinct: int, band: float, needed: int, lowest: bool = False) -> None:
        self.distinct, self.band, self.needed = distinct, band, needed
        where = f"even the lowest band {band}" if lowest else f"the band {band}"
        pairs = "pair" if distinct == 1 else "pairs"
        remedy = "" if lowest else "lower --band (or give --band auto), or "
        super().__init__(
            f"only {distinct} distinct dev {pairs} inside {where} (fitting the cross-encoder combiner "
            f"needs at least {needed}; repeated rows count once): {remedy}calibrate on a file with more "
            "distinct dev pairs"
        )


@dataclass(frozen=True)
class Fitted:
    stage: CrossStage
    scores: list[float]  # out-of-fold combined dev scores (0 outside the band)


def fit_combiner(
    head: Sequence[float], cross: Sequence[float], labels: Sequence[bool]
) -> tuple[float, float, float]:
    """Logistic regression of the labels on [logit(head), cross] (lightly regularised)."""
    import numpy as np

    from thrifty.cache.verify.fitting import fit_logistic

    x = np.column_stack([[_logit(h) for h in head], np.asarray(cross, dtype=np.float64)])
    coef = fit_logistic(x, np.asarray(labels, dtype=np.float64), l2=1e-3)
    return float(coef[-1]), float(coef[0]), float(coef[1])


def fit_stage(
    stage: CrossStage,
    dev: Sequence[Pair],
    head: Sequence[float],
    cross: Sequence[float],
    band: float,
    folds: int = 5,
) -> Fitted:
    """`stage` with its band and combiner fitted on the dev pairs (head probabilities with vetoes
    applied; cross-encoder logits, NaN where not computed), and the combiner's out-of-fold scores."""
    inside = [i for i, h in enumerate(head) if h >= band and h > 0.0]
    # the folds go by pair hash, so copies of a pair share one: count distinct pairs, not rows
    digests = [dev[i].digest("rerank") for i in inside]
    fold_of = [d % folds for d in digests]
    distinct = len(set(digests))
    if distinct < 2 * folds or len(set(fold_of)) < 2:  # else some fold's combiner fits on nothing
        raise TooFewInBand(distinct, band, 2 * folds)
    labels = [dev[i].duplicate for i in inside]
    h = [head[i] for i in inside]
    c = [cross[i] for i in inside]
    scores = [0.0] * len(dev)
    for k in range(folds):
        train = [j for j, f in enumerate(fold_of) if f != k]
        weights = fit_combiner([h[j] for j in train], [c[j] for j in train], [labels[j] for j in train])
        fold_stage = replace(stage, band=band, weights=weights)
        for j, f in enumerate(fold_of):
            if f == k:
                scores[inside[j]] = fold_stage.combine(h[j], c[j])
    final = replace(stage, band=band, weights=fit_combiner(h, c, labels))
    return Fitted(final, scores)


def cross_logits(stage: CrossStage, dev: Sequence[Pair], head: Sequence[float], band: float) -> list[float]:
    """The cross-encoder's logits of the dev pairs inside the band (NaN outside: never computed)."""
    return [
        stage.cross_logit(p.a, p.b) if h >= band and h > 0.0 else math.nan
        for p, h in zip(dev, head, strict=True)
    ]


BANDS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7)  # what `--band auto` chooses from


def calibrate_stage(
    model: VerifierModel,
    stage: CrossStage,
    dev: Sequence[Pair],
    head: Sequence[float],
    target: float,
    confidence: float,
    bands: Sequence[float],
) -> VerifierModel:
    """`model` (its head already calibrated: vetoes, text-only point) with `stage` fitted on the dev
    pairs and the threshold for `target` chosen on the combiner's out-of-fold scores. With several
    `bands`, the one whose point keeps the most dev recall wins (on a tie, the higher band: the
    cross-encoder runs less often); the cross-encoder scores each dev pair once."""
    from thrifty.cache.evaluate import choose_threshold, pair_stats
    from thrifty.cache.verify.checks import same_wording

    labels = [p.duplicate for p in dev]
    # served as 1 before any learned stage (`VerifierModel.score`), so calibrated as 1 here too
    same = [i for i, p in enumerate(dev) if same_wording(p.b, p.a)]
    logits = cross_logits(stage, dev, head, min(bands))
    best: tuple[float, float, Fitted, float] | None = None
    recalls: dict[str, float] = {}
    first: TooFewInBand | None = None
    for band in sorted(bands):
        try:
            fitted = fit_stage(stage, dev, head, logits, band)
        except TooFewInBand as exc:
            first = first or exc
            continue  # too few dev pairs inside this band to fit a combiner
        for i in same:
            fitted.scores[i] = 1.0
        threshold = choose_threshold(fitted.scores, labels, target, confidence)
        recall = pair_stats(fitted.scores, labels, threshold).recall
        recalls[str(band)] = recall
        if best is None or recall >= best[0]:
            best = (recall, band, fitted, threshold)
    if best is None:
        assert first is not None
        if len(bands) == 1:
            raise first
        raise TooFewInBand(first.distinct, first.band, first.needed, lowest=True) from first
    _, band, fitted, threshold = best
    return replace(model, cross=fitted.stage).with_threshold(
        threshold,
        model.text_threshold,
        dev=pair_stats(fitted.scores, labels, threshold).as_dict(),
        dev_head=model.meta.get("dev"),
        cross_band=band,
        cross_band_recall=recalls,
        cross_consulted=sum(h >= band and h > 0.0 for h in head),
    )
