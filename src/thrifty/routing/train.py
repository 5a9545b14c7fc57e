"""Training the learned router on recorded outcomes (numpy only).

Features: [prompt embedding (optional) | lexical | token priors | 1]; token priors of training rows
are out-of-fold. Hyper-parameters (L2 strength, kNN blend when embeddings are used) are chosen by
cross-validation across the folds of the training rows, maximising APGR of the resulting router;
the final model is refit on all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from thrifty.routing import token_prior
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


def design(data: OutcomeSet, embeddings: np.ndarray | None) -> np.ndarray:
    """Training design matrix (token priors out-of-fold)."""
    priors = token_prior.out_of_fold(data.prompts, data.scores, data.folds)
    return Featurizer().combine(embeddings, data.prompts, priors)


def _out_of_fold(
    x: np.ndarray, emb: np.ndarray | None, data: OutcomeSet, l2_grid: Sequence[float], knn_k: int
) -> tuple[dict[float, np.ndarray], np.ndarray | None]:
    """Out-of-fold logistic predictions per L2 value, and out-of-fold kNN predictions."""
    import numpy as np

    from thrifty.routing.knn import knn_quality
    from thrifty.routing.logistic import sigmoid

    logit = {l2: np.zeros(data.scores.shape) for l2 in l2_grid}
    near = None if emb is None else np.zeros(data.scores.shape)
    for fold in np.unique(data.folds):
        held = data.folds == fold
        for l2 in l2_grid:
            w = _fit_all(x[~held], data.scores[~held], l2)
            logit[l2][held] = sigmoid(x[held].astype(np.float64) @ w.T)
        if near is not None and emb is not None:
            near[held] = knn_quality(emb[held], emb[~held], data.scores[~held], knn_k)
    return logit, near


def train(
    data: OutcomeSet,
    embeddings: np.ndarray | None,
    *,
    l2_grid: Sequence[float] = L2_GRID,
    blend_grid: Sequence[float] = BLEND_GRID,
    knn_k: int = KNN_K,
    meta: dict | None = None,
) -> tuple[LearnedModel, TrainReport]:
    """Train on `data` (its folds are the CV folds). `embeddings=None` trains without embeddings."""
    import numpy as np

    if len(np.unique(data.folds)) < 2:
        raise ValueError("training data needs at least two folds for cross-validation")
    x = design(data, embeddings)
    est_cost = data.costs.mean(axis=0)
    logit, near = _out_of_fold(x, embeddings, data, l2_grid, knn_k)
    grid: dict[tuple[float, float], float] = {}
    for l2 in l2_grid:
        for blend in blend_grid if near is not None else (1.0,):
            probs = logit[l2] if near is None else blend * logit[l2] + (1 - blend) * near
            grid[(l2, blend)] = _router_apgr(probs, est_cost, data.scores, data.costs)
    l2, blend = max(grid, key=lambda key: grid[key])
    keep_knn = blend < 1.0 and embeddings is not None
    model = LearnedModel(
        models=list(data.models),
        weights=_fit_all(x, data.scores, l2).astype(np.float32),
        est_cost=est_cost,
        blend=blend,
        knn_k=knn_k,
        knn_keys=embeddings if keep_knn else None,
        knn_scores=data.scores if keep_knn else None,
        prior_table=token_prior.fit_table(data.prompts, data.scores),
        use_embedding=embeddings is not None,
        meta={**(meta or {}), "rows": len(data), "l2": l2, "cv_apgr_cost": grid[(l2, blend)]},
    )
    named = {f"l2={a:g},blend={b:g}": v for (a, b), v in grid.items()}
    report = TrainReport(l2, blend, grid[(l2, blend)], named)
    return model, report
