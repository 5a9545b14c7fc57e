"""L2-regularised logistic regression over [dense | sparse] features, fitted with L-BFGS in numpy.

The design is a dense block (its last column the constant 1, the unpenalised bias) next to a
`SparseRows` block (hashed n-grams). Loss: mean log-loss + l2/(2n)·|w|² (the bias excluded), the
same parametrisation as `logistic.fit`. Soft labels in [0, 1] are allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from thrifty.routing.logistic import sigmoid

if TYPE_CHECKING:
    import numpy as np

    from thrifty.routing.ngrams import SparseRows

HISTORY = 10


@dataclass(slots=True)
class Design:
    """Rows of a design matrix: `dense` (n, d) with the constant column last, `sparse` optional."""

    dense: np.ndarray
    sparse: SparseRows | None

    @property
    def width(self) -> int:
        return self.dense.shape[1] + (0 if self.sparse is None else self.sparse.dim)

    def matvec(self, w: np.ndarray) -> np.ndarray:
        d = self.dense.shape[1]
        out = self.dense @ w[:d]
        if self.sparse is not None:
            out = out + self.sparse.matvec(w[d:])
        return out

    def rmatvec(self, r: np.ndarray) -> np.ndarray:
        import numpy as np

        head = self.dense.T @ r
        return head if self.sparse is None else np.concatenate([head, self.sparse.rmatvec(r)])

    def take(self, rows: np.ndarray) -> Design:
        return Design(self.dense[rows], None if self.sparse is None else self.sparse.take(rows))


def _loss_grad(
    x: Design, y: np.ndarray, rw: np.ndarray, w: np.ndarray, penalty: np.ndarray
) -> tuple[float, np.ndarray]:
    import numpy as np

    z = x.matvec(w)
    n = len(y)
    # log(1 + e^z) − y·z, computed stably
    loss = float(np.sum(rw * (np.logaddexp(0.0, z) - y * z))) / n + 0.5 * float(np.sum(penalty * w * w))
    grad = x.rmatvec(rw * (sigmoid(z) - y)) / n + penalty * w
    return loss, grad


def fit(
    x: Design,
    y: np.ndarray,
    l2: float,
    *,
    sample_weight: np.ndarray | None = None,
    iterations: int = 400,
    tol: float = 1e-6,
) -> np.ndarray:
    """Weights (width,) minimising mean log-loss + l2/(2n)·|w|² (dense column d−1 is the bias);
    `sample_weight` (n,): each row's factor in the mean (default 1).

    Only the sparse columns that occur in `x` are optimised (the others' optimum is 0)."""
    import numpy as np

    from thrifty.routing.ngrams import SparseRows

    rw = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if x.sparse is None:
        return _fit(x, y, rw, l2, iterations, tol)
    used, local = np.unique(x.sparse.indices, return_inverse=True)
    compact = SparseRows(x.sparse.indptr, local.astype(np.int64), x.sparse.values, len(used))
    w_compact = _fit(Design(x.dense, compact), y, rw, l2, iterations, tol)
    d = x.dense.shape[1]
    w = np.zeros(x.width)
    w[:d] = w_compact[:d]
    w[d + used] = w_compact[d:]
    return w


def _fit(x: Design, y: np.ndarray, rw: np.ndarray, l2: float, iterations: int, tol: float) -> np.ndarray:
    import numpy as np

    n = len(y)
    penalty = np.full(x.width, l2 / n)
    penalty[x.dense.shape[1] - 1] = 0.0
    w = np.zeros(x.width)
    loss, grad = _loss_grad(x, y, rw, w, penalty)
    steps: list[tuple[np.ndarray, np.ndarray, float]] = []
    for _ in range(iterations):
        direction = _two_loop(grad, steps)
        slope = float(grad @ direction)
        if slope >= 0:  # not a descent direction: restart from the gradient
            steps.clear()
            direction, slope = -grad, -float(grad @ grad)
        step = 1.0
        for _ in range(30):  # backtracking (Armijo)
            w_new = w + step * direction
            loss_new, grad_new = _loss_grad(x, y, rw, w_new, penalty)
            if loss_new <= loss + 1e-4 * step * slope:
                break
            step *= 0.5
        s, g = w_new - w, grad_new - grad
        sy = float(s @ g)
        if sy > 1e-12:
            steps.append((s, g, 1.0 / sy))
            del steps[:-HISTORY]
        w, grad, converged = w_new, grad_new, abs(loss - loss_new) <= tol * max(abs(loss_new), 1.0)
        loss = loss_new
        if converged or float(np.max(np.abs(grad))) < tol:
            break
    return w


def _two_loop(grad: np.ndarray, steps: list[tuple[np.ndarray, np.ndarray, float]]) -> np.ndarray:
    """The L-BFGS search direction −H·grad from the stored (s, y, 1/sᵀy) pairs."""
    q = grad.copy()
    alphas = []
    for s, y, rho in reversed(steps):
        a = rho * float(s @ q)
        alphas.append(a)
        q -= a * y
    if steps:
        s, y, _ = steps[-1]
        q *= float(s @ y) / float(y @ y)
    for (s, y, rho), a in zip(steps, reversed(alphas), strict=True):
        b = rho * float(y @ q)
        q += (a - b) * s
    return -q
