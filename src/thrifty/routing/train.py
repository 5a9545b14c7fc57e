"""Training the learned router on recorded outcomes (numpy only).

Two heads per model (see learned.py): an n-gram logistic regression (L-BFGS on hashed TF-IDF) and a
dense one ([embedding × scale? | lexical | 1], Newton steps). Each head's L2 strength (and the
embedding scale) is chosen by cross-validation across the folds of the training rows: out-of-fold
predictions, scored by the APGR of the resulting router (on the calls axis, the RouteLLM paper's, for
two models; on the cost axis for more, where a share of calls mixes models of different prices). A
per-model stacker over the heads' out-of-fold logits (of all models) weighs and calibrates them; the
n-gram head is kept only if it beats the dense head alone. The final heads are refit on all
training rows. The IDF table is fitted on all training prompts (no labels involved).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from thrifty.embed.encoder import MAX_TOKENS
from thrifty.routing.data import OutcomeSet
from thrifty.routing.learned import LearnedModel, dense_design, stacked

if TYPE_CHECKING:
    import numpy as np

    from thrifty.routing.ngrams import SparseRows
    from thrifty.routing.sparse_logistic import Design

L2_GRID = (1.0, 2.0, 4.0)
"""N-gram head (rows are unit-norm TF-IDF)."""
DENSE_L2_GRID = (0.01, 0.1, 1.0, 10.0)
SCALE_GRID = (0.1, 0.3, 1.0)
"""The embedding's factor in the dense design (only with embeddings)."""
FULL_TOKENS = MAX_TOKENS  # the embedder's whole window


@dataclass(slots=True)
class TrainReport:
    l2: float
    dense_l2: float
    embed_scale: float
    heads: str
    """"both" (dense + n-gram heads, stacked) or "dense" (the n-gram head did not help)."""
    cv_apgr: float
    grid: dict[str, float]


def _router_apgr(probs: np.ndarray, est_cost: np.ndarray, scores: np.ndarray, costs: np.ndarray) -> float:
    from thrifty.evaluate.metrics import Reference, sweep

    ref = Reference.of(scores, costs)
    return sweep(probs, est_cost, scores, costs, ref).apgr("calls" if scores.shape[1] == 2 else "cost")


def _fit_dense(x: np.ndarray, scores: np.ndarray, l2: float) -> np.ndarray:
    import numpy as np

    from thrifty.routing.logistic import fit

    return np.stack([fit(x, scores[:, j], l2) for j in range(scores.shape[1])])


def _fit_ngram(x: Design, scores: np.ndarray, l2: float) -> np.ndarray:
    import numpy as np

    from thrifty.routing.sparse_logistic import fit

    return np.stack([fit(x, scores[:, j], l2) for j in range(scores.shape[1])])


def _ngram_design(rows: SparseRows) -> Design:
    import numpy as np

    from thrifty.routing.sparse_logistic import Design

    return Design(np.ones((len(rows), 1)), rows)


def _oof(
    kind: str, x: np.ndarray | Design, data: OutcomeSet, grid: Sequence[float]
) -> dict[float, np.ndarray]:
    """Out-of-fold logits of one head per L2 value."""
    import numpy as np

    out = {l2: np.zeros(data.scores.shape) for l2 in grid}
    for fold in np.unique(data.folds):
        held = data.folds == fold
        train_rows, held_rows = np.flatnonzero(~held), np.flatnonzero(held)
        for l2 in grid:
            if kind == "dense":
                assert isinstance(x, np.ndarray)
                w = _fit_dense(x[train_rows], data.scores[train_rows], l2)
                out[l2][held] = x[held_rows].astype(np.float64) @ w.T
            else:
                assert not isinstance(x, np.ndarray)
                w = _fit_ngram(x.take(train_rows), data.scores[train_rows], l2)
                part = x.take(held_rows)
                out[l2][held] = np.stack([part.matvec(wj) for wj in w], axis=1)
    return out


def _stack(dense: np.ndarray, ngram: np.ndarray | None, scores: np.ndarray) -> np.ndarray:
    """Per model, a logistic regression of its scores on all out-of-fold logits (see LearnedModel.stack)."""
    import numpy as np

    from thrifty.routing.logistic import fit

    x = np.hstack([dense, *([] if ngram is None else [ngram]), np.ones((len(dense), 1))])
    return np.stack([fit(x, scores[:, j], 1.0) for j in range(scores.shape[1])])


def _best(oof: dict[Any, np.ndarray], score: Callable[[np.ndarray], float]) -> tuple[Any, dict[Any, float]]:
    figures = {key: score(p) for key, p in oof.items()}
    return max(figures, key=lambda k: figures[k]), figures


def train(
    data: OutcomeSet,
    embeddings: np.ndarray | None,
    *,
    embed_tokens: int | None = None,
    l2_grid: Sequence[float] = L2_GRID,
    dense_l2_grid: Sequence[float] = DENSE_L2_GRID,
    use_ngrams: bool = True,
    scale_grid: Sequence[float] = SCALE_GRID,
    meta: dict | None = None,
) -> tuple[LearnedModel, TrainReport]:
    """Train on `data` (its folds are the CV folds). `embeddings=None` trains without embeddings;
    `embed_tokens` records how many prompt tokens the embeddings were computed from."""
    import numpy as np

    from thrifty.routing.logistic import sigmoid
    from thrifty.routing.ngrams import NgramFeaturizer

    if len(np.unique(data.folds)) < 2:
        raise ValueError("training data needs at least two folds for cross-validation")
    est_cost = data.costs.mean(axis=0)

    def score(p: np.ndarray) -> float:
        return _router_apgr(p, est_cost, data.scores, data.costs)

    scales = (1.0,) if embeddings is None else tuple(scale_grid)
    dense = {s: dense_design(embeddings, data.prompts, s) for s in scales}
    dense_oof = {(s, l2): z for s in scales for l2, z in _oof("dense", dense[s], data, dense_l2_grid).items()}
    (scale, dense_l2), dense_fig = _best(dense_oof, lambda z: score(sigmoid(z)))
    grid: dict[str, float] = {f"dense scale={a:g},l2={b:g}": v for (a, b), v in dense_fig.items()}
    ngrams = NgramFeaturizer().fit(data.prompts)
    sparse = _ngram_design(ngrams.transform(data.prompts))
    stacks = {"dense": _stack(dense_oof[(scale, dense_l2)], None, data.scores)}
    figures = {"dense": score(stacked(dense_oof[(scale, dense_l2)], None, stacks["dense"]))}
    l2 = l2_grid[0]
    if use_ngrams:
        ngram_oof = _oof("ngram", sparse, data, l2_grid)
        l2, ngram_fig = _best(ngram_oof, lambda z: score(sigmoid(z)))
        grid.update({f"ngram l2={k:g}": v for k, v in ngram_fig.items()})
        stacks["both"] = _stack(dense_oof[(scale, dense_l2)], ngram_oof[l2], data.scores)
        figures["both"] = score(stacked(dense_oof[(scale, dense_l2)], ngram_oof[l2], stacks["both"]))
    grid.update({f"stacked {k}": v for k, v in figures.items()})
    heads = max(figures, key=lambda k: figures[k])
    cv_apgr = figures[heads]
    with_ngrams = heads == "both"
    model = LearnedModel(
        models=list(data.models),
        dense_weights=_fit_dense(dense[scale], data.scores, dense_l2).astype(np.float32),
        est_cost=est_cost,
        idf=ngrams.idf if with_ngrams else None,
        ngram_weights=_fit_ngram(sparse, data.scores, l2).astype(np.float32) if with_ngrams else None,
        stack=stacks[heads],
        embed_tokens=(embed_tokens or FULL_TOKENS) if embeddings is not None else None,
        embed_scale=scale,
        meta={
            **(meta or {}),
            "rows": len(data),
            "l2": l2,
            "dense_l2": dense_l2,
            "embed_scale": scale,
            "heads": heads,
            "cv_apgr": cv_apgr,
        },
    )
    return model, TrainReport(l2, dense_l2, scale, heads, cv_apgr, grid)
