"""The learners behind `thrifty cache train`: numpy Adam for the lexical stage, Newton's method for
the logistic combiner, and scikit-learn's MLP (train time only) for the embedding head.

Each returns plain numpy arrays; `VerifierModel` evaluates them with numpy alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from thrifty.cache.verify.features import BUCKETS
from thrifty.cache.verify.model import COMBINER, LEXICAL, VerifierModel

if TYPE_CHECKING:
    import numpy as np

    from thrifty.cache.verify.train import TrainSettings


class SparseRows:
    """Binary sparse rows (hashed word buckets per pair), just what the training loop needs."""

    def __init__(self, rows: list[list[int]]) -> None:
        self.rows = rows

    def batch(self, idx: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(row position within the batch, bucket) of every non-zero in the selected rows."""
        import numpy as np

        pos = [i for i, r in enumerate(idx) for _ in self.rows[r]]
        cols = [c for r in idx for c in self.rows[r]]
        return np.asarray(pos, dtype=np.int64), np.asarray(cols, dtype=np.int64)

    def dot(self, idx: Sequence[int], weights: np.ndarray) -> np.ndarray:
        import numpy as np

        pos, cols = self.batch(idx)
        return np.bincount(pos, weights=weights[cols], minlength=len(idx))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    import numpy as np

    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


def fit_lexical(dense: np.ndarray, sparse: SparseRows, labels: np.ndarray, idf: np.ndarray, s: TrainSettings):
    """Minibatch Adam on binary cross-entropy; returns the lexical-stage arrays."""
    import numpy as np

    rng = np.random.default_rng(s.seed)
    x_all = dense[:, list(LEXICAL)]
    mean, std = x_all.mean(0), x_all.std(0) + 1e-6
    x_all = (x_all - mean) / std
    d = x_all.shape[1]
    params = {
        "w1": rng.normal(0, 1 / np.sqrt(d), (d, s.hidden)).astype(np.float32),
        "b1": np.zeros(s.hidden, np.float32),
        "w2": rng.normal(0, 1 / np.sqrt(s.hidden), s.hidden).astype(np.float32),
        "b2": np.zeros(1, np.float32),
        "sparse": np.zeros(BUCKETS, np.float32),
    }
    moments = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in params.items()}
    step = 0
    for _epoch in range(s.epochs):
        order = rng.permutation(len(labels))
        for start in range(0, len(order), s.batch):
            idx = order[start : start + s.batch]
            x, y = x_all[idx], labels[idx]
            pos, cols = sparse.batch(idx)
            pre = x @ params["w1"] + params["b1"]
            hidden = np.maximum(pre, 0)
            sparse_logit = np.bincount(pos, weights=params["sparse"][cols], minlength=len(idx))
            logit = hidden @ params["w2"] + params["b2"][0] + sparse_logit
            g = (_sigmoid(logit) - y) / len(idx)  # dLoss/dlogit
            g_hidden = np.outer(g, params["w2"]) * (pre > 0)
            grads = {
                "w2": hidden.T @ g + s.l2_dense * params["w2"],
                "b2": np.array([g.sum()], np.float32),
                "w1": x.T @ g_hidden + s.l2_dense * params["w1"],
                "b1": g_hidden.sum(0),
                "sparse": np.bincount(cols, weights=g[pos], minlength=BUCKETS).astype(np.float32)
                + s.l2_sparse * params["sparse"] * len(idx) / len(labels),
            }
            step += 1
            for k, grad in grads.items():
                m, v = moments[k]
                m *= 0.9
                m += 0.1 * grad
                v *= 0.999
                v += 0.001 * grad * grad
                m_hat, v_hat = m / (1 - 0.9**step), v / (1 - 0.999**step)
                params[k] -= (s.learning_rate * m_hat / (np.sqrt(v_hat) + 1e-8)).astype(np.float32)
    return VerifierModel(
        idf=idf,
        mean=mean.astype(np.float32),
        std=std.astype(np.float32),
        w1=params["w1"],
        b1=params["b1"],
        w2=params["w2"],
        sparse=params["sparse"],
        combiner=np.zeros(len(COMBINER) + 1, np.float32),
        cmean=np.zeros(len(COMBINER), np.float32),
        cstd=np.ones(len(COMBINER), np.float32),
        b2=float(params["b2"][0]),
    )


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, iterations: int = 50) -> np.ndarray:
    """Newton's method for an L2-regularised logistic regression; the last weight is the bias."""
    import numpy as np

    if len(x) == 0:
        raise ValueError("no rows to fit a logistic regression on")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("cannot fit a logistic regression on values that are not finite numbers")
    xb = np.hstack([x, np.ones((len(x), 1))]).astype(np.float64)
    w = np.zeros(xb.shape[1])
    for _ in range(iterations):
        p = _sigmoid(xb @ w)
        grad = xb.T @ (p - y) / len(y) + l2 * w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb / len(y) + l2 * np.eye(len(w))
        w -= np.linalg.solve(hess, grad)
    if not np.isfinite(w).all():
        raise ValueError("the logistic regression diverged: its weights are not finite numbers")
    return w.astype(np.float32)


def fit_head(
    x: np.ndarray, y: np.ndarray, s: TrainSettings
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """One-hidden-layer ReLU MLPs (scikit-learn, train time only), one per seed, merged into one.

    The mean of several MLPs' logits is itself a one-hidden-layer MLP: the members' hidden units side
    by side, their output weights divided by the member count. Returns (w1, b1, w2, b2).
    """
    try:
        from sklearn.neural_network import MLPClassifier
    except ImportError as exc:  # pragma: no cover - depends on the training environment
        raise ValueError(
            "training the embedding head needs scikit-learn: pip install thrifty[train]"
        ) from exc
    import numpy as np

    members = []
    for seed in range(s.seed, s.seed + s.head_seeds):
        mlp = MLPClassifier(
            hidden_layer_sizes=(s.head_hidden,),
            alpha=s.head_alpha,
            batch_size=256,
            learning_rate_init=1e-3,
            max_iter=200,
            early_stopping=True,
            validation_fraction=0.1,
            n_iter_no_change=8,
            random_state=seed,
        )
        mlp.fit(x, y.astype(int))
        members.append((mlp.coefs_[0], mlp.intercepts_[0], mlp.coefs_[1][:, 0], float(mlp.intercepts_[1][0])))
    n = len(members)
    return (
        np.hstack([m[0] for m in members]).astype(np.float32),
        np.concatenate([m[1] for m in members]).astype(np.float32),
        (np.concatenate([m[2] for m in members]) / n).astype(np.float32),
        sum(m[3] for m in members) / n,
    )
