"""Choosing a model from predicted qualities and per-call costs (any number of models).

Three policies, all pure functions of (quality, cost) vectors in the same model order:
- `cheapest_meeting(target[, cap])`: the cheapest model whose predicted quality ≥ target (else the
  best one), among those the cap affords when one is given;
- `best_under_cap(cap)`: the best predicted quality among models whose cost ≤ cap (else the cheapest);
- `tradeoff(lam)`: argmax quality − lam × cost, i.e. pay at most 1/lam USD per unit of quality.
"""

from __future__ import annotations

from collections.abc import Sequence


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
