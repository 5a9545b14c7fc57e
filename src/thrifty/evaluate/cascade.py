"""Cascade evaluation on recorded responses: tiers cheap → expensive, a gate on each tier's answer.

A prompt pays for every tier it tried; it gets the score of the tier whose answer was accepted (the
last tier is always accepted). The learned gate is trained on folds 0–3 answers and replayed on
fold 4; the seed heuristic gate (accept answers over 500 chars not opening with "I don't know") and
the heuristic+format gates are shown next to it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thrifty.embed.diskcache import EmbeddingCache
from thrifty.evaluate.baselines import baselines
from thrifty.evaluate.metrics import Curve, Point, Reference, headline_axis, nothing_to_route, require_models
from thrifty.evaluate.route import curve_report, embed_rows, router_cache
from thrifty.routing.data import OutcomeSet, load_outcomes

if TYPE_CHECKING:
    import numpy as np

    from thrifty.routing.learned_gate import GateModel


def tier_order(data: OutcomeSet) -> list[int]:
    """Model indices from cheapest to most expensive (mean recorded cost)."""
    import numpy as np

    return [int(i) for i in np.argsort(data.costs.mean(axis=0), kind="stable")]


def answered_tiers(data: OutcomeSet, tiers: list[int]) -> list[int]:
    """Non-final tiers need a recorded response on every row to be gated."""
    for t in tiers[:-1]:
        name = data.models[t]
        if not all(name in r for r in data.responses):
            raise ValueError(f"model {name!r} has no recorded response on every row: cannot gate it")
    return tiers


def replay_rows(
    gate: np.ndarray, threshold: float, tiers: list[int], data: OutcomeSet
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the tier whose answer was accepted and what the row paid for every tier it tried.
    gate: (n, len(tiers) - 1) scores of each non-final tier's answer; accept when ≥ threshold."""
    import numpy as np

    n = len(data)
    accepted = np.full(n, tiers[-1])
    cost = np.zeros(n)
    open_ = np.ones(n, dtype=bool)
    for k, t in enumerate(tiers[:-1]):
        cost[open_] += data.costs[open_, t]
        take = open_ & (gate[:, k] >= threshold)
        accepted[take] = t
        open_ &= ~take
    cost[open_] += data.costs[open_, tiers[-1]]
    return accepted, cost


def replay(gate: np.ndarray, threshold: float, tiers: list[int], data: OutcomeSet, ref: Reference) -> Point:
    """The operating point of the cascade at `threshold` (see `replay_rows`)."""
    return cascade_point(*replay_rows(gate, threshold, tiers, data), tiers, data, ref)


def cascade_point(
    accepted: np.ndarray, cost: np.ndarray, tiers: list[int], data: OutcomeSet, ref: Reference
) -> Point:
    import numpy as np

    total = float(cost.sum())
    return Point(
        quality=float(data.scores[np.arange(len(data)), accepted].mean()),
        cost_usd=total,
        calls_share=float(np.mean(accepted != tiers[0])),
        cost_share=ref.cost_share(total),
    )


def gate_curve(gate: np.ndarray, tiers: list[int], data: OutcomeSet, ref: Reference) -> Curve:
    import numpy as np

    values = np.unique(gate)
    if len(values) > 800:
        values = np.quantile(values, np.linspace(0, 1, 800))
    thresholds = [*values.tolist(), float("inf")]
    return Curve([replay(gate, t, tiers, data, ref) for t in thresholds], ref)


def gate_features(
    data: OutcomeSet, tiers: list[int], embeddings: np.ndarray | None, models: list[str]
) -> list[np.ndarray]:
    from thrifty.routing.learned_gate import GateFeaturizer

    featurizer = GateFeaturizer(models)
    out = []
    for t in tiers[:-1]:
        name = data.models[t]
        answers = [r[name] for r in data.responses]
        out.append(featurizer.matrix(data.prompts, answers, [name] * len(data), embeddings))
    return out


def train_gate(
    data: OutcomeSet,
    embeddings: np.ndarray | None,
    tiers: list[int],
    l2_grid: tuple[float, ...] = (1, 4, 16, 64),
) -> tuple[GateModel, float]:
    """One logistic gate over every non-final tier's answers; L2 picked by CV cost at 95 % quality."""
    import numpy as np

    from thrifty.routing.learned_gate import GateModel
    from thrifty.routing.logistic import fit, predict

    xs = gate_features(data, tiers, embeddings, data.models)
    ys = [data.scores[:, t] for t in tiers[:-1]]
    x, y = np.vstack(xs), np.concatenate(ys)
    folds = np.tile(data.folds, len(xs))
    best_l2, best_cost = l2_grid[0], float("inf")
    ref = Reference.of(data.scores, data.costs)
    for l2 in l2_grid:
        oof = np.zeros(len(y))
        for fold in np.unique(folds):
            held = folds == fold
            oof[held] = predict(x[held], fit(x[~held], y[~held], l2))
        gate = oof.reshape(len(xs), len(data)).T
        at95 = gate_curve(gate, tiers, data, ref).cost_at_quality(0.95)
        cost = at95[1] if at95 else float("inf")
        if cost < best_cost:
            best_l2, best_cost = l2, cost
    model = GateModel(
        weights=fit(x, y, best_l2).astype(np.float32),
        use_embedding=embeddings is not None,
        models=list(data.models),
        meta={"l2": best_l2, "cv_cost_at_95": best_cost, "rows": len(y)},
    )
    return model, best_l2


def score_gate(
    model: GateModel, data: OutcomeSet, tiers: list[int], embeddings: np.ndarray | None
) -> np.ndarray:
    import numpy as np

    from thrifty.routing.logistic import predict

    xs = gate_features(data, tiers, embeddings if model.use_embedding else None, model.models)
    return np.stack([predict(x, model.weights.astype(np.float64)) for x in xs], axis=1)


def rule_gate_scores(data: OutcomeSet, tiers: list[int], gate: Any) -> np.ndarray:
    """Scores (1 = pass, 0 = fail) of a rule gate (QualityGate) on each non-final tier's answers."""
    import numpy as np

    from thrifty.routing.gates import Answer

    async def run() -> np.ndarray:
        out = np.zeros((len(data), len(tiers) - 1))
        for k, t in enumerate(tiers[:-1]):
            name = data.models[t]
            for i, prompt in enumerate(data.prompts):
                request = {"model": name, "messages": [{"role": "user", "content": prompt}]}
                verdict = await gate.check(Answer(request, data.responses[i][name], "stop"))
                out[i, k] = 1.0 if verdict.ok else 0.0
        return out

    return asyncio.run(run())


class SeedGate:
    """The seed's heuristic gate: accept an answer longer than 500 chars that does not open with
    "I don't know" (this reading reproduces the issue's "~96 % of GPT-4 accuracy at ~84 % cost")."""

    name = "seed"

    async def check(self, answer: Any) -> Any:
        from thrifty.routing.gates import Verdict

        text = answer.text.strip()
        ok = len(text) > 500 and not text.lower().startswith(("i don't know", "i do not know"))
        return Verdict(ok, 1.0 if ok else 0.0, "seed heuristic")


def evaluate_cascade(
    path: str | Path,
    *,
    gate_file: str | Path | None = None,
    embed: bool = True,
    cache: EmbeddingCache | None = None,
) -> dict[str, Any]:
    """Train a gate on folds 0–3 (or load `gate_file`), replay fold 4. As `evaluate_router`'s, the
    headline figures and the random router are on `headline_axis` (calls for two tiers, cost for
    more) and `warnings` say when there is nothing to route."""
    from thrifty.routing.gates import AllGates, FormatGate, HeuristicGate
    from thrifty.routing.learned_gate import GateModel

    data = load_outcomes(path)
    require_models(data.models)
    cache = cache or router_cache(None)
    train_set, test_set = data.checked_split()
    tiers = answered_tiers(data, tier_order(train_set))
    if gate_file is None:
        emb = embed_rows(data, train_set, cache, embed)
        model, _ = train_gate(train_set, emb, tiers)
    else:
        model = GateModel.load(gate_file)
    test_emb = embed_rows(data, test_set, cache, model.use_embedding)
    ref = Reference.of(test_set.scores, test_set.costs)
    learned = gate_curve(score_gate(model, test_set, tiers, test_emb), tiers, test_set, ref)
    seed = replay(rule_gate_scores(test_set, tiers, SeedGate()), 0.5, tiers, test_set, ref)
    rule_gate = AllGates([FormatGate(), HeuristicGate()])
    rules = replay(rule_gate_scores(test_set, tiers, rule_gate), 0.5, tiers, test_set, ref)
    axis = headline_axis(len(tiers))
    warning = nothing_to_route(ref, test_set.scores, data.models)
    return {
        "data": Path(path).name,
        "tiers": [data.models[t] for t in tiers],
        "headline_axis": axis,
        "warnings": [] if warning is None else [warning],
        "rows": {"train": len(train_set), "test": len(test_set)},
        "weak": data.models[ref.weak],
        "strong": data.models[ref.strong],
        "learned_gate": {
            "training": model.meta,
            "use_embedding": model.use_embedding,
            **curve_report(learned, axis),
        },
        "seed_gate": _point_summary(seed, ref),
        "heuristic_format_gate": _point_summary(rules, ref),
        "baselines": baselines(test_set.scores, test_set.costs, data.models, ref, axis),
    }


def _point_summary(p: Point, ref: Reference) -> dict[str, Any]:
    """A pass/fail gate has one operating point."""
    return {
        "quality": p.quality,
        "quality_share_of_strong": p.quality / ref.q_strong if ref.q_strong else 0.0,
        "cost_share_of_strong": p.cost_usd / ref.c_strong if ref.c_strong else 0.0,
        "escalated": p.calls_share,
    }
