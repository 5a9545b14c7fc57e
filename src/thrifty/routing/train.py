"""Training the learned router on recorded outcomes (numpy only).

Hyper-parameters (L2 strength, kNN blend) are chosen by cross-validation across the folds of the
training rows, maximising APGR of the resulting router; the final model is refit on all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from thrifty.routing.data import OutcomeSet
from thrifty.routing.features import Featurizer
from thrifty.routing.learned import LearnedModel

if TYPE_CHECKING:
    import numpy as np

L2_GRID = (1.0, 4.0, 16.0, 64.0)
BLEND_GRID = (1.0, 0.75, 0.5, 0.25)
KNN_K = 40


@dataclass(slots=True)
class TrainReport:
    l2: float
    blend: float
    cv_apgr: float
    grid: dict[str, float]


def _fit_all(x: np.ndarray, scores: np.ndarray, l2: float) -> np.ndarray:
    import numpy as np

    from thrifty.routing.logistic import fit

    return np.stack([fit(x, scores[:, j], l2) for j in range(scores.shape[1])])


def _router_apgr(probs: np.ndarray, est_cost: np.ndarray, scores: np.ndarray, costs: np.ndarray) -> float:
    from thrifty.evaluate.metrics import Reference, sweep

    ref = Reference.of(scores, costs)
    return sweep(probs, est_cost, scores, costs, ref).apgr("cost")


def _out_of_fold(
    x: np.ndarray, emb: np.ndarray, data: OutcomeSet, l2_grid: Sequence[float], knn_k: int
) -> tuple[dict[float, np.ndarray], np.ndarray]:
    """Out-of-fold logistic predictions per L2 value, and out-of-fold kNN predictions."""
    import numpy as np

    from thrifty.routing.knn import knn_quality
    from thrifty.routing.logistic import sigmoid

    folds = np.unique(data.folds)
    logit = {l2: np.zeros(data.scores.shape) for l2 in l2_grid}
    near = np.zeros(data.scores.shape)
    for fold in folds:
        held = data.folds == fold
        for l2 in l2_grid:
            w = _fit_all(x[~held], data.scores[~held], l2)
            logit[l2][held] = sigmoid(x[held].astype(np.float64) @ w.T)
        near[held] = knn_quality(emb[held], emb[~held], data.scores[~held], knn_k)
    return logit, near


def train(
    data: OutcomeSet,
    embeddings: np.ndarray,
    *,
    l2_grid: Sequence[float] = L2_GRID,
    blend_grid: Sequence[float] = BLEND_GRID,
    knn_k: int = KNN_K,
    meta: dict | None = None,
) -> tuple[LearnedModel, TrainReport]:
    import numpy as np

    featurizer = Featurizer()
    x = featurizer.combine(embeddings, data.prompts)
    est_cost = data.costs.mean(axis=0)
    if len(np.unique(data.folds)) < 2:
        raise ValueError("training data needs at least two folds for cross-validation")
    logit, near = _out_of_fold(x, embeddings, data, l2_grid, knn_k)
    grid: dict[str, float] = {}
    for l2 in l2_grid:
        for blend in blend_grid:
            probs = blend * logit[l2] + (1 - blend) * near
            grid[f"l2={l2:g},blend={blend:g}"] = _router_apgr(probs, est_cost, data.scores, data.costs)
    best = max(grid, key=lambda key: grid[key])
    l2 = float(best.split(",")[0].split("=")[1])
    blend = float(best.split(",")[1].split("=")[1])
    model = LearnedModel(
        models=list(data.models),
        weights=_fit_all(x, data.scores, l2).astype(np.float32),
        est_cost=est_cost,
        blend=blend,
        knn_k=knn_k,
        knn_keys=embeddings if blend < 1.0 else None,
        knn_scores=data.scores if blend < 1.0 else None,
        meta={**(meta or {}), "rows": len(data), "l2": l2, "cv_apgr_cost": grid[best]},
    )
    return model, TrainReport(l2, blend, grid[best], grid)
