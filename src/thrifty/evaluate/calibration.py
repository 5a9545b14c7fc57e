"""`thrifty route calibrate`: choose λ (router) or the gate threshold (cascade) on folds 0–3 for a
target, report what it achieves on fold 4. See routing/calibrate.py for the method."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thrifty.embed.diskcache import EmbeddingCache
from thrifty.evaluate.metrics import Reference, _breakpoints, nothing_to_route, require_models
from thrifty.evaluate.route import embed_rows, router_cache
from thrifty.routing.calibrate import Outcome, Target, describe, pick, report, router_runner
from thrifty.routing.data import OutcomeSet, load_outcomes

if TYPE_CHECKING:
    import numpy as np

    from thrifty.routing.learned import LearnedModel


def _oof_router(model: LearnedModel, data: OutcomeSet, emb: np.ndarray | None) -> np.ndarray:
    """Out-of-fold predictions, each fold from a router trained on the others with the full
    model's hyper-parameters."""
    import numpy as np

    from thrifty.evaluate.route import router_probs
    from thrifty.routing.train import train

    out = np.zeros(data.scores.shape)
    grids = {
        "l2_grid": (float(model.meta.get("l2", 4.0)),),
        "dense_l2_grid": (float(model.meta.get("dense_l2", 1.0)),),
        "use_ngrams": model.stack is not None and model.idf is not None,
        "scale_grid": (model.embed_scale,),
    }
    for fold in np.unique(data.folds):
        held = data.folds == fold
        sub, _ = train(
            data.subset(~held), None if emb is None else emb[~held], embed_tokens=model.embed_tokens, **grids
        )
        out[held] = router_probs(sub, data.subset(held), None if emb is None else emb[held])
    return out


def calibrate_router(
    path: str | Path,
    target: Target,
    *,
    embed_tokens: int | None = None,
    cache: EmbeddingCache | None = None,
) -> dict[str, Any]:
    import numpy as np

    from thrifty.evaluate.route import router_costs, router_probs
    from thrifty.routing.train import train

    cache = cache or router_cache(embed_tokens)
    embed = embed_tokens is not None
    data = load_outcomes(path)
    require_models(data.models)
    cal, test = data.checked_split()
    cal_emb = embed_rows(data, cal, cache, embed)
    model, _ = train(cal, cal_emb, embed_tokens=embed_tokens)
    est = router_costs(model, cal)
    oof = _oof_router(model, cal, cal_emb)
    ref_cal = Reference.of(cal.scores, cal.costs)
    knobs = np.unique(np.concatenate([[0.0], _breakpoints(oof, est, limit=600)]))
    run = router_runner(oof, est, cal.scores, cal.costs, ref_cal)
    chosen = pick(knobs.tolist(), run, target, ref_cal, cal.scores[:, ref_cal.strong])
    held = None
    if chosen is not None:
        ref_test = Reference.of(test.scores, test.costs)
        probs = router_probs(model, test, embed_rows(data, test, cache, embed))
        held = describe(router_runner(probs, est, test.scores, test.costs, ref_test)(chosen[0]), ref_test)
    return {
        "data": Path(path).name,
        "kind": "router",
        "warnings": _warnings(cal, test, data.models),
        **report(target, "lambda", chosen, held),
    }


def calibrate_cascade(
    path: str | Path, target: Target, *, embed: bool = True, cache: EmbeddingCache | None = None
) -> dict[str, Any]:
    import numpy as np

    from thrifty.evaluate.cascade import (
        answered_tiers,
        cascade_point,
        gate_features,
        replay_rows,
        score_gate,
        tier_order,
        train_gate,
    )
    from thrifty.routing.logistic import fit, predict

    cache = cache or router_cache(None)
    data = load_outcomes(path)
    require_models(data.models)
    cal, test = data.checked_split()
    tiers = answered_tiers(data, tier_order(cal))
    cal_emb = embed_rows(data, cal, cache, embed)
    model, l2 = train_gate(cal, cal_emb, tiers)
    xs = gate_features(cal, tiers, cal_emb, cal.models)
    oof = np.zeros((len(cal), len(xs)))
    for fold in np.unique(cal.folds):
        held = cal.folds == fold
        for k, x in enumerate(xs):
            others = np.vstack([xx[~held] for xx in xs])
            ys = np.concatenate([cal.scores[~held, t] for t in tiers[:-1]])
            oof[held, k] = predict(x[held], fit(others, ys, l2))
    ref_cal = Reference.of(cal.scores, cal.costs)

    def runner(scores: np.ndarray, subset: OutcomeSet, ref: Reference) -> Callable[[float], Outcome]:
        rows = np.arange(len(subset))

        def run(threshold: float) -> Outcome:
            accepted, cost = replay_rows(scores, threshold, tiers, subset)
            p = cascade_point(accepted, cost, tiers, subset, ref)
            return Outcome(p, subset.scores[rows, accepted], accepted == tiers[-1])

        return run

    knobs = np.unique(np.concatenate([np.quantile(oof, np.linspace(0, 1, 400)), [np.inf]])).tolist()
    chosen = pick(knobs, runner(oof, cal, ref_cal), target, ref_cal, cal.scores[:, ref_cal.strong])
    held_out = None
    if chosen is not None:
        ref_test = Reference.of(test.scores, test.costs)
        scores = score_gate(model, test, tiers, embed_rows(data, test, cache, model.use_embedding))
        held_out = describe(runner(scores, test, ref_test)(chosen[0]), ref_test)
    return {
        "data": Path(path).name,
        "kind": "cascade",
        "tiers": [data.models[t] for t in tiers],
        "warnings": _warnings(cal, test, data.models),
        **report(target, "threshold", chosen, held_out),
    }


def _warnings(cal: OutcomeSet, test: OutcomeSet, models: list[str]) -> list[str]:
    """`route eval`'s "nothing to route" warning, for the split the knob is chosen on (else for the
    held-out one): with no gap between weak and strong, any knob meets a quality target."""
    for split, rows in (("calibration", cal), ("test", test)):
        warning = nothing_to_route(Reference.of(rows.scores, rows.costs), rows.scores, models, split)
        if warning is not None:
            return [warning]
    return []
