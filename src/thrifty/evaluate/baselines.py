"""Reference policies every router is shown next to: random, best single model, cheapest, oracle."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from thrifty.evaluate.metrics import Curve, Point, Reference, point

if TYPE_CHECKING:
    import numpy as np


def _describe(name: str, p: Point, ref: Reference) -> dict[str, Any]:
    return {
        "policy": name,
        "quality": p.quality,
        "cost_usd": p.cost_usd,
        "cost_share_of_strong": p.cost_usd / ref.c_strong if ref.c_strong else 0.0,
        "calls_share": p.calls_share,
        "pgr": ref.pgr(p.quality) if ref.routable else None,
    }


def random_curve(scores: np.ndarray, costs: np.ndarray, ref: Reference) -> Curve:
    """Random router between weak and strong: expected quality/cost are linear in the strong share."""
    weak = point_of(ref.weak, scores, costs, ref)
    strong = point_of(ref.strong, scores, costs, ref)
    points = []
    for i in range(11):
        s = i / 10
        cost = (1 - s) * weak.cost_usd + s * strong.cost_usd
        points.append(Point((1 - s) * weak.quality + s * strong.quality, cost, s, ref.cost_share(cost)))
    return Curve(points, ref)


def point_of(model: int, scores: np.ndarray, costs: np.ndarray, ref: Reference) -> Point:
    import numpy as np

    return point(np.full(len(scores), model), scores, costs, ref)


def oracle_choice(scores: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """Per prompt: the cheapest model among those with the best score."""
    import numpy as np

    best = scores.max(axis=1, keepdims=True)
    masked = np.where(np.isclose(scores, best), costs, np.inf)
    return np.argmin(masked, axis=1)


def baselines(
    scores: np.ndarray, costs: np.ndarray, models: list[str], ref: Reference, axis: str = "calls"
) -> dict[str, Any]:
    """The reference policies; the random router's figures on both axes plus, as `headline`, on
    `axis` (the axis of the figures it is printed beside)."""
    rand = random_curve(scores, costs, ref)
    return {
        "random": {"policy": "random", **rand.summary(), "headline": rand.headline(axis)},
        "best_single": {
            **_describe("always " + models[ref.strong], point_of(ref.strong, scores, costs, ref), ref)
        },
        "cheapest": {**_describe("always " + models[ref.weak], point_of(ref.weak, scores, costs, ref), ref)},
        "oracle": _describe("oracle", point(oracle_choice(scores, costs), scores, costs, ref), ref),
        "models": {
            m: _describe("always " + m, point_of(j, scores, costs, ref), ref) for j, m in enumerate(models)
        },
    }
