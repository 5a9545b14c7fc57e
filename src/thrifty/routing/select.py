"""Choosing a model from predicted qualities and per-call costs (any number of models).

Three policies, all pure functions of (quality, cost) vectors in the same model order:
- `cheapest_meeting(target[, cap])`: the cheapest model whose predicted quality ≥ target (else the
  best one), among those the cap affords when one is given;
- `best_under_cap(cap)`: the best predicted quality among models whose cost ≤ cap (else the cheapest);
- `tradeoff(lam)`: argmax quality − lam × cost, i.e. pay at most 1/lam USD per unit of quality; a
  tie goes to the cheaper model (then to the first). `tradeoff_rows` is the same rule over a matrix
  of predictions: `thrifty route calibrate` replays with it the λ the gateway will serve.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def _best(indices: Sequence[int], quality: Sequence[float], cost: Sequence[float]) -> int:
    return max(indices, key=lambda i: (quality[i], -cost[i]))


def cheapest_meeting(
    quality: Sequence[float], cost: Sequence[float], target: float, cap: float | None = None
) -> int:
    """With a cap, only the models it affords are considered (the cap is the operator's; a target may
    come from a client); if it affords none, the cheapest model."""
    allowed = [i for i in range(len(quality)) if cap is None or cost[i] <= cap]
    if not allowed:
        return min(range(len(cost)), key=lambda i: (cost[i], -quality[i]))
    meeting = [i for i in allowed if quality[i] >= target]
    if not meeting:
        return _best(allowed, quality, cost)
    return min(meeting, key=lambda i: (cost[i], -quality[i]))


def best_under_cap(quality: Sequence[float], cost: Sequence[float], cap: float) -> int:
    affordable = [i for i in range(len(quality)) if cost[i] <= cap]
    if not affordable:
        return min(range(len(cost)), key=lambda i: (cost[i], -quality[i]))
    return _best(affordable, quality, cost)


def tradeoff(quality: Sequence[float], cost: Sequence[float], lam: float) -> int:
    return max(range(len(quality)), key=lambda i: (quality[i] - lam * cost[i], -cost[i]))


def tradeoff_rows(quality: np.ndarray, cost: np.ndarray, lam: float) -> np.ndarray:
    """`tradeoff` for each row of an (n, m) quality matrix at once: the same values in float64, the
    same ties (the cheaper model, then the first)."""
    import numpy as np

    q = np.asarray(quality, dtype=np.float64)
    c = np.asarray(cost, dtype=np.float64)
    value = q - lam * c[None, :]
    best = value == value.max(axis=1, keepdims=True)
    return np.argmin(np.where(best, c[None, :], np.inf), axis=1)
