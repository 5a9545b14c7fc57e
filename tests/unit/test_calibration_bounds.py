"""Calibration to a target at a stated confidence: the bounds, and the knob they choose."""

from __future__ import annotations

import numpy as np
import pytest

from thrifty.evaluate.bounds import ratio_lower, wilson_lower, wilson_upper, z_of
from thrifty.evaluate.metrics import Reference, point
from thrifty.routing.calibrate import Outcome, Target, pick


def test_z_of_confidence():
    assert z_of(0.5) == 0.0
    assert z_of(0.9) == pytest.approx(1.2816, abs=1e-4)
    assert z_of(0.95) == pytest.approx(1.6449, abs=1e-4)
    for bad in (0.3, 1.0, 1.5):
        with pytest.raises(ValueError):
            z_of(bad)


def test_wilson_bounds_bracket_the_proportion():
    assert wilson_lower(90, 100, 1.0) < 0.9 < wilson_upper(90, 100, 1.0)
    assert wilson_upper(90, 100, 1.0) == pytest.approx(1 - wilson_lower(10, 100, 1.0))
    assert wilson_upper(0, 0, 1.0) == 1.0  # nothing seen: no claim


def test_ratio_lower_covers_the_true_ratio_at_its_confidence():
    """Over many samples of 2,000 paired rows, the 95 % lower bound of the quality share exceeds
    the population's true share about 5 % of the time (the point estimate: about half)."""
    rng = np.random.default_rng(7)
    # per row: the strong model right with p 0.8; the policy loses 6 % of those, gains 2 % elsewhere
    truth = (0.8 * 0.94 + 0.2 * 0.02) / 0.8
    above = {0.0: 0, z_of(0.95): 0}
    trials = 400
    for _ in range(trials):
        strong = rng.random(2000) < 0.8
        u = rng.random(2000)
        policy = np.where(strong, u >= 0.06, u < 0.02).astype(float)
        for z in above:
            above[z] += ratio_lower(policy, strong.astype(float), z) > truth
    assert 0.35 < above[0.0] / trials < 0.65
    assert 0.01 < above[z_of(0.95)] / trials < 0.10


def test_ratio_lower_degenerate_inputs():
    assert ratio_lower(np.ones(5), np.zeros(5), 1.0) == 0.0
    assert ratio_lower(np.array([1.0]), np.array([1.0]), 1.0) == 1.0
    assert ratio_lower(np.ones(10), np.ones(10), 2.0) == pytest.approx(1.0)


def _pick(scores: np.ndarray, target: Target):
    """Knob k sends the first k rows to the weak model (column 0, cost 0.01) and the rest to the
    strong one (column 1, cost 1): the knob `pick` chooses, with its figures."""
    n = len(scores)
    costs = np.column_stack([np.full(n, 0.01), np.full(n, 1.0)])
    ref = Reference.of(scores, costs)
    rows = np.arange(n)

    def run(k: float) -> Outcome:
        choice = (rows >= int(k)).astype(int)
        return Outcome(point(choice, scores, costs, ref), scores[rows, choice], choice == ref.strong)

    return pick(list(range(n + 1)), run, target, ref, scores[:, 1])


def test_higher_confidence_buys_a_safer_knob():
    """On a small sample the point estimate meets quality:0.9 with more rows on the weak model than
    the 90 % bound allows: the bound keeps more rows on the strong model."""
    rng = np.random.default_rng(3)
    n = 300
    strong = (rng.random(n) < 0.85).astype(float)
    weak = strong * (rng.random(n) < 0.8)
    scores = np.column_stack([weak, strong])
    point_pick = _pick(scores, Target("quality", 0.9, 0.5))
    safe_pick = _pick(scores, Target("quality", 0.9, 0.9))
    assert point_pick is not None and safe_pick is not None
    assert safe_pick[0] < point_pick[0]  # fewer rows sent to the weak model
    assert safe_pick[1]["bound"] >= 0.9 and safe_pick[1]["quality_share_of_strong"] > 0.9
    assert point_pick[1]["quality_share_of_strong"] >= 0.9


def test_strong_share_budget_uses_the_upper_bound():
    scores = np.column_stack([np.zeros(200), np.ones(200)])
    loose = _pick(scores, Target("strong", 0.3, 0.5))
    safe = _pick(scores, Target("strong", 0.3, 0.95))
    assert loose is not None and safe is not None
    assert loose[1]["strong_share"] == pytest.approx(0.3)  # exactly the budget
    assert safe[1]["strong_share"] < 0.3 and safe[1]["bound"] <= 0.3


def test_target_parse_with_confidence():
    assert Target.parse("quality:0.95") == Target("quality", 0.95, 0.9)
    assert Target.parse("strong:30%", 0.5) == Target("strong", 0.3, 0.5)
    for bad in (0.2, 1.0):
        with pytest.raises(ValueError, match="confidence"):
            Target.parse("quality:0.95", bad)
    with pytest.raises(ValueError, match="not a number"):
        Target.parse("quality:high")
