"""Calibration: pick a router's λ or a cascade gate's threshold so a stated target holds.

Targets: `quality:X` — at least X × the strong model's quality (e.g. quality:0.95), or
`strong:Y` — at most Y of requests answered by the most expensive model / tier (e.g. strong:0.3).
The knob is chosen on out-of-fold predictions over the calibration split (folds 0–3: each fold is
predicted by a model trained on the other three, with the hyper-parameters of the full model), then
the model trained on all of folds 0–3 is replayed on held-out fold 4 with that knob, and what the
target achieved there is reported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from thrifty.evaluate.metrics import Point, Reference, point

if TYPE_CHECKING:
    import numpy as np


@dataclass(slots=True, frozen=True)
class Target:
    kind: str  # "quality" | "strong"
    value: float

    @classmethod
    def parse(cls, text: str) -> Target:
        kind, _, raw = text.partition(":")
        if kind not in ("quality", "strong") or not raw:
            raise ValueError(
                "target must be quality:X (share of strong quality) or strong:Y (share of calls)"
            )
        value = float(raw.rstrip("%")) / (100 if raw.endswith("%") else 1)
        if not 0 < value <= 1.5:
            raise ValueError(f"target value out of range: {raw}")
        return cls(kind, value)

    def met(self, p: Point, ref: Reference, strong_share: float) -> bool:
        if self.kind == "quality":
            return p.quality >= self.value * ref.q_strong - 1e-12
        return strong_share <= self.value + 1e-12


def describe(p: Point, ref: Reference, strong_share: float) -> dict[str, float]:
    return {
        "quality": p.quality,
        "quality_share_of_strong": p.quality / ref.q_strong if ref.q_strong else 0.0,
        "cost_share_of_strong": p.cost_usd / ref.c_strong if ref.c_strong else 0.0,
        "strong_share": strong_share,
    }


def pick(
    knobs: Sequence[float],
    run: Callable[[float], tuple[Point, float]],
    target: Target,
    ref: Reference,
) -> tuple[float, dict[str, float]] | None:
    """The cheapest knob value that meets the target (None if none does)."""
    best: tuple[float, Point, float] | None = None
    for knob in knobs:
        p, strong = run(knob)
        if target.met(p, ref, strong) and (best is None or p.cost_usd < best[1].cost_usd):
            best = (knob, p, strong)
    if best is None:
        return None
    if target.kind == "strong":  # best quality within the call budget
        ok = [(k, *run(k)) for k in knobs]
        ok = [o for o in ok if target.met(o[1], ref, o[2])]
        best = max(ok, key=lambda o: (o[1].quality, -o[1].cost_usd))
    return best[0], describe(best[1], ref, best[2])


def router_runner(
    probs: np.ndarray, est_cost: np.ndarray, scores: np.ndarray, costs: np.ndarray, ref: Reference
) -> Callable[[float], tuple[Point, float]]:
    import numpy as np

    def run(lam: float) -> tuple[Point, float]:
        choice = np.argmax(probs - lam * est_cost[None, :], axis=1)
        return point(choice, scores, costs, ref), float(np.mean(choice == ref.strong))

    return run


def report(
    target: Target,
    knob_name: str,
    chosen: tuple[float, dict[str, float]] | None,
    held_out: dict[str, float] | None,
) -> dict[str, Any]:
    if chosen is None:
        return {"target": f"{target.kind}:{target.value:g}", "met_on_calibration": False}
    return {
        "target": f"{target.kind}:{target.value:g}",
        knob_name: chosen[0],
        "calibration": chosen[1],
        "held_out": held_out,
        "met_on_held_out": None if held_out is None else _met(target, held_out),
    }


def _met(target: Target, held: dict[str, float]) -> bool:
    if target.kind == "quality":
        return held["quality_share_of_strong"] >= target.value - 1e-12
    return held["strong_share"] <= target.value + 1e-12
