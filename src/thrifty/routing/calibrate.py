"""Calibration: pick a router's λ or a cascade gate's threshold so a stated target holds.

Targets: `quality:X` — at least X × the strong model's quality (e.g. quality:0.95), or
`strong:Y` — at most Y of requests answered by the strong model or one that costs as much or more
(with two models: the strong one), or by the last tier of a cascade (e.g. strong:0.3).
The knob is chosen on out-of-fold predictions over the calibration split (folds 0–3: each fold is
predicted by a model trained on the other three, with the hyper-parameters of the full model), then
the model trained on all of folds 0–3 is replayed on held-out fold 4 with that knob, and what the
target achieved there is reported.

A target is met on the calibration split only when it holds at a stated one-sided confidence
(`--confidence`, default 0.9): the lower bound of the quality share (paired ratio, delta method) or
the upper bound of the strong-tier share (Wilson) must clear it, so that the chosen knob keeps the
target on new prompts and not only on the ones it was chosen on. Confidence 0.5 is the point estimate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from thrifty.evaluate.bounds import ratio_lower, wilson_upper, z_of
from thrifty.evaluate.metrics import Point, Reference, point
from thrifty.routing.select import tradeoff_rows

if TYPE_CHECKING:
    import numpy as np


DEFAULT_CONFIDENCE = 0.9


@dataclass(slots=True, frozen=True)
class Target:
    kind: str  # "quality" | "strong"
    value: float
    confidence: float = DEFAULT_CONFIDENCE  # one-sided; 0.5 = the point estimate

    @classmethod
    def parse(cls, text: str, confidence: float = DEFAULT_CONFIDENCE) -> Target:
        kind, _, raw = text.partition(":")
        if kind not in ("quality", "strong") or not raw:
            raise ValueError(
                "target must be quality:X (share of strong quality) or strong:Y (share of calls)"
            )
        try:
            value = float(raw.rstrip("%")) / (100 if raw.endswith("%") else 1)
        except ValueError:
            raise ValueError(f"target value is not a number: {raw}") from None
        in_range, span = (0 < value <= 1.5, "(0, 1.5]") if kind == "quality" else (0 <= value <= 1, "[0, 1]")
        if not in_range:
            raise ValueError(f"{kind} target must be in {span}; got {raw}")
        z_of(confidence)  # validates it
        return cls(kind, value, confidence)

    def bound(self, outcome: Outcome, strong_scores: np.ndarray) -> float:
        """The calibration split's one-sided bound on the targeted figure: the quality share of the
        strong model's (lower bound) or the share of rows sent to the strong tier (upper bound)."""
        z = z_of(self.confidence)
        if self.kind == "quality":
            return ratio_lower(outcome.row_quality, strong_scores, z)
        return wilson_upper(int(outcome.row_strong.sum()), len(outcome.row_strong), z)

    def met(self, outcome: Outcome, strong_scores: np.ndarray) -> bool:
        if self.kind == "quality":
            return self.bound(outcome, strong_scores) >= self.value - 1e-12
        return self.bound(outcome, strong_scores) <= self.value + 1e-12

    def label(self) -> str:
        return f"{self.kind}:{self.value:g}"


@dataclass(slots=True, frozen=True)
class Outcome:
    """What one knob setting does on a split, in total and row by row."""

    point: Point
    row_quality: np.ndarray  # the score each row ended with
    row_strong: np.ndarray  # bool: the row was answered by the strong model (or a dearer one) / last tier

    @property
    def strong_share(self) -> float:
        return float(self.row_strong.mean()) if len(self.row_strong) else 0.0


def describe(outcome: Outcome, ref: Reference) -> dict[str, float]:
    p = outcome.point
    return {
        "quality": p.quality,
        "quality_share_of_strong": p.quality / ref.q_strong if ref.q_strong else 0.0,
        "cost_share_of_strong": p.cost_usd / ref.c_strong if ref.c_strong else 0.0,
        "strong_share": outcome.strong_share,
    }


def pick(
    knobs: Sequence[float],
    run: Callable[[float], Outcome],
    target: Target,
    ref: Reference,
    strong_scores: np.ndarray,
) -> tuple[float, dict[str, float]] | None:
    """The knob that meets the target at its confidence (None if none does): for a quality target
    the cheapest, for a strong-tier budget the best quality within it. `strong_scores`: the strong
    model's score on each calibration row."""
    ok = [(k, o) for k in knobs if target.met(o := run(k), strong_scores)]
    if not ok:
        return None
    if target.kind == "quality":
        knob, best = min(ok, key=lambda c: c[1].point.cost_usd)
    else:
        knob, best = max(ok, key=lambda c: (c[1].point.quality, -c[1].point.cost_usd))
    return knob, {**describe(best, ref), "bound": target.bound(best, strong_scores)}


def router_runner(
    probs: np.ndarray, est_cost: np.ndarray, scores: np.ndarray, costs: np.ndarray, ref: Reference
) -> Callable[[float], Outcome]:
    """What the `tradeoff` policy at λ does on a split: the gateway's own rule (`select.tradeoff_rows`,
    ties to the cheaper model), so the λ chosen here is replayed as it will be served."""
    import numpy as np

    rows = np.arange(len(scores))
    totals = costs.sum(axis=0)
    dear = totals >= totals[ref.strong]  # a budget on the strong model binds any model as costly

    def run(lam: float) -> Outcome:
        choice = tradeoff_rows(probs, est_cost, lam)
        return Outcome(point(choice, scores, costs, ref), scores[rows, choice], dear[choice])

    return run


def report(
    target: Target,
    knob_name: str,
    chosen: tuple[float, dict[str, float]] | None,
    held_out: dict[str, float] | None,
) -> dict[str, Any]:
    if chosen is None:
        return {"target": target.label(), "confidence": target.confidence, "met_on_calibration": False}
    return {
        "target": target.label(),
        "confidence": target.confidence,
        knob_name: chosen[0],
        "calibration": chosen[1],
        "held_out": held_out,
        "met_on_held_out": None if held_out is None else _met(target, held_out),
    }


def _met(target: Target, held: dict[str, float]) -> bool:
    if target.kind == "quality":
        return held["quality_share_of_strong"] >= target.value - 1e-12
    return held["strong_share"] <= target.value + 1e-12
