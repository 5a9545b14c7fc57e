"""APGR / CPT / cost-at-quality on tiny synthetic data whose answers are known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from thrifty.evaluate.baselines import baselines, oracle_choice, random_curve
from thrifty.evaluate.metrics import Reference, ranking_curve, sweep

# 4 prompts, models (weak, strong). weak right on 0, 1; strong right on 0, 1, 2, 3 → gap = 0.5
SCORES = np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
COSTS = np.array([[1.0, 10.0]] * 4)


def test_reference_points():
    ref = Reference.of(SCORES, COSTS)
    assert (ref.weak, ref.strong) == (0, 1)
    assert ref.q_weak == 0.5 and ref.q_strong == 1.0
    assert ref.c_weak == 4.0 and ref.c_strong == 40.0
    assert ref.pgr(0.75) == 0.5


def test_perfect_ranking_recovers_gap_with_half_the_calls():
    ref = Reference.of(SCORES, COSTS)
    curve = ranking_curve(np.array([0.0, 0.0, 1.0, 1.0]), SCORES, COSTS, ref)
    # PGR rises linearly to 1 at 50 % of calls, then stays: area = 0.25 + 0.5 = 0.75
    assert curve.apgr("calls") == pytest.approx(0.75, abs=2e-3)
    assert curve.cpt(0.5) == pytest.approx(0.25, abs=2e-3)
    assert curve.cpt(0.8) == pytest.approx(0.40, abs=2e-3)
    usd, share = curve.cost_at_quality(0.95)
    assert usd == pytest.approx(2 * 1 + 2 * 10) and share == pytest.approx(22 / 40)


def test_worst_ranking_and_random():
    ref = Reference.of(SCORES, COSTS)
    worst = ranking_curve(np.array([1.0, 1.0, 0.0, 0.0]), SCORES, COSTS, ref)
    # wasted calls first: PGR 0 until 50 %, then linear to 1: area 0.25
    assert worst.apgr("calls") == pytest.approx(0.25, abs=2e-3)
    assert random_curve(SCORES, COSTS, ref).apgr("calls") == pytest.approx(0.5, abs=1e-3)
    assert random_curve(SCORES, COSTS, ref).cpt(0.8) == pytest.approx(0.8, abs=2e-3)


def test_sweep_matches_ranking_for_two_models():
    ref = Reference.of(SCORES, COSTS)
    probs = np.array([[0.9, 0.9], [0.8, 0.9], [0.2, 0.9], [0.1, 0.9]])
    curve = sweep(probs, np.array([1.0, 10.0]), SCORES, COSTS, ref)
    assert curve.apgr("calls") == pytest.approx(0.75, abs=2e-3)
    assert curve.apgr("cost") == pytest.approx(0.75, abs=2e-3)


def test_oracle_and_baselines_any_number_of_models():
    scores = np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
    costs = np.array([[1.0, 2.0, 5.0]] * 3)
    assert oracle_choice(scores, costs).tolist() == [0, 1, 2]
    ref = Reference.of(scores, costs)
    b = baselines(scores, costs, ["a", "b", "c"], ref)
    assert b["oracle"]["quality"] == 1.0 and b["oracle"]["cost_usd"] == 8.0
    assert b["cheapest"]["policy"] == "always a" and b["best_single"]["policy"] == "always c"
    assert b["models"]["b"]["quality"] == pytest.approx(2 / 3)
