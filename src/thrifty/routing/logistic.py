"""L2-regularised logistic regression in numpy (Newton steps); soft labels in [0, 1] are allowed."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def sigmoid(z: np.ndarray) -> np.ndarray:
    import numpy as np

    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def fit(
    x: np.ndarray,
    y: np.ndarray,
    l2: float,
    *,
    sample_weight: np.ndarray | None = None,
    iterations: int = 25,
    tol: float = 1e-6,
) -> np.ndarray:
    """Weights w minimising mean log-loss + l2/(2n)·|w[:-1]|² (the last column is the bias, unpenalised).

    x: (n, d) with a constant column last; y: (n,) in [0, 1]; `sample_weight` (n,): each row's factor
    in the mean (default 1)."""
    import numpy as np

    x = x.astype(np.float64)
    n, d = x.shape
    rw = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    w = np.zeros(d)
    penalty = np.full(d, l2 / n)
    penalty[-1] = 0.0
    for _ in range(iterations):
        p = sigmoid(x @ w)
        grad = x.T @ (rw * (p - y)) / n + penalty * w
        weights = rw * np.maximum(p * (1 - p), 1e-6) / n
        hessian = (x * weights[:, None]).T @ x + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, grad)
        w -= step
        if np.max(np.abs(step)) < tol:
            break
    return w


def predict(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    import numpy as np

    return sigmoid(x.astype(np.float64) @ w)
