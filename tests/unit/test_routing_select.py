"""Router selection policies, request hints, calibration targets, routing config validation."""

from __future__ import annotations

import pytest

from thrifty.errors import ConfigError, InvalidRequest
from thrifty.routing import select
from thrifty.routing.calibrate import Target
from thrifty.routing.hints import fold_headers, read_hints, strip

QUALITY = [0.55, 0.80, 0.93]
COST = [0.001, 0.01, 0.05]


def test_cheapest_meeting_target():
    assert select.cheapest_meeting(QUALITY, COST, 0.5) == 0
    assert select.cheapest_meeting(QUALITY, COST, 0.75) == 1
    assert select.cheapest_meeting(QUALITY, COST, 0.9) == 2
    assert select.cheapest_meeting(QUALITY, COST, 0.99) == 2  # none meets it: the best


def test_a_target_within_a_cap_never_breaks_the_cap():
    assert select.cheapest_meeting(QUALITY, COST, 0.9, cap=0.02) == 1  # the best the cap affords
    assert select.cheapest_meeting(QUALITY, COST, 0.5, cap=0.02) == 0
    assert select.cheapest_meeting(QUALITY, COST, 0.9, cap=1.0) == 2
    assert select.cheapest_meeting(QUALITY, COST, 0.9, cap=0.0001) == 0  # nothing affordable: the cheapest


def test_best_under_cost_cap():
    assert select.best_under_cap(QUALITY, COST, 0.02) == 1
    assert select.best_under_cap(QUALITY, COST, 1.0) == 2
    assert select.best_under_cap(QUALITY, COST, 0.0001) == 0  # nothing affordable: the cheapest


def test_tradeoff():
    assert select.tradeoff(QUALITY, COST, 0.0) == 2
    assert select.tradeoff(QUALITY, COST, 10.0) == 1  # 0.80-0.1 > 0.93-0.5, > 0.55-0.01
    assert select.tradeoff(QUALITY, COST, 1000.0) == 0


def test_hints_from_body_metadata_and_headers():
    body = {"model": "thrifty/auto", "messages": [], "metadata": {"thrifty_task": "code", "user": "u1"}}
    assert read_hints(body).task == "code"
    folded = fold_headers({"x-thrifty-quality-target": "0.9", "x-thrifty-route-task": "math"}, body)
    hints = read_hints(folded)
    assert hints.task == "code" and hints.quality_target == 0.9  # metadata beats the header
    clean = strip(folded)
    assert "thrifty" not in clean and clean["metadata"] == {"user": "u1"}
    assert strip({"model": "x", "metadata": {"thrifty_task": "code"}}) == {"model": "x"}
    same = {"model": "x"}
    assert strip(same) is same


@pytest.mark.parametrize(
    "bad",
    [
        {"thrifty": "code"},
        {"thrifty": {"quality_target": 2}},
        {"thrifty": {"quality_target": "high"}},
        {"thrifty": {"task": 3}},
    ],
)
def test_bad_hints_are_invalid_requests(bad):
    with pytest.raises(InvalidRequest):
        read_hints({"model": "m", **bad})


def test_target_parse():
    assert Target.parse("quality:0.95") == Target("quality", 0.95)
    assert Target.parse("strong:30%") == Target("strong", 0.3)
    assert Target.parse("strong:0") == Target("strong", 0.0)  # never the strong model: a valid budget
    for bad in ("quality", "cost:0.3", "quality:0", "strong:x", "strong:1.2", "quality:2", "strong:-0.1"):
        with pytest.raises(ValueError):
            Target.parse(bad)


def test_routing_config_validation():
    from thrifty import config as config_mod

    with pytest.raises(ConfigError) as exc:
        config_mod.parse({"routing": {"virtual_models": {"v": {"rules": {"table": {"code": "a"}}}}}}, env={})
    assert "default" in str(exc.value.errors)
    with pytest.raises(ConfigError):
        config_mod.parse({"routing": {"virtual_models": {"v": {}}}}, env={})
    with pytest.raises(ConfigError):
        config_mod.parse(
            {
                "routing": {
                    "virtual_models": {"v": {"cascade": {"tiers": ["a", "b"], "gates": [{"type": "judge"}]}}}
                }
            },
            env={},
        )


def test_a_strong_budget_counts_every_model_as_costly_as_the_strong_one():
    import numpy as np

    from thrifty.evaluate.metrics import Reference
    from thrifty.routing.calibrate import router_runner

    # weak (cheap), strong (best quality), pricey (dearest, not the best)
    scores = np.array([[0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    costs = np.tile([0.001, 0.01, 0.05], (4, 1))
    ref = Reference.of(scores, costs)
    assert (ref.weak, ref.strong) == (0, 1)
    probs = np.array([[0.1, 0.2, 0.9], [0.9, 0.5, 0.1], [0.1, 0.9, 0.2], [0.9, 0.1, 0.1]])
    outcome = router_runner(probs, np.zeros(3), scores, costs, ref)(0.0)
    assert outcome.row_strong.tolist() == [True, False, True, False]  # pricey counts like strong
    assert outcome.strong_share == 0.5


@pytest.mark.parametrize("given", ["code", ["nocache"], 3])
def test_a_hint_header_leaves_a_bad_thrifty_field_for_validation(given):
    from thrifty.request import validate_chat

    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "thrifty": given}
    folded = fold_headers({"x-thrifty-route-task": "code", "x-thrifty-quality-target": "0.5"}, body)
    assert folded["thrifty"] == given
    with pytest.raises(InvalidRequest) as exc:
        validate_chat(folded)
    assert exc.value.param == "thrifty"


def test_tradeoff_rows_is_the_tradeoff_policy_row_by_row():
    import numpy as np

    rng = np.random.default_rng(11)
    cost = np.array([0.05, 0.001, 0.01, 0.001])  # two models at the same price: ties go to the first
    quality = rng.choice([0.2, 0.5, 0.9, 1.0], size=(500, 4))  # coarse: many ties
    for lam in (0.0, 1.0, 10.0, 400.0, 1e6):
        rows = select.tradeoff_rows(quality, cost, lam)
        assert rows.tolist() == [select.tradeoff(q.tolist(), cost.tolist(), lam) for q in quality]


def test_calibration_replays_ties_as_the_gateway_serves_them():
    import numpy as np

    from thrifty.evaluate.metrics import Reference
    from thrifty.routing.calibrate import router_runner

    # every prediction ties (degenerate data): the gateway sends the call to the cheaper model
    est = np.array([0.03, 0.0002])  # the dear model first in file order
    probs = np.ones((4, 2))
    scores, costs = np.ones((4, 2)), np.tile(est, (4, 1))
    outcome = router_runner(probs, est, scores, costs, Reference.of(scores, costs))(0.0)
    assert outcome.point.cost_usd == pytest.approx(4 * 0.0002)
    assert select.tradeoff([1.0, 1.0], est.tolist(), 0.0) == 1
