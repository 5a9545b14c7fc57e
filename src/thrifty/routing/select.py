"""Choosing a model from predicted qualities and per-call costs (any number of models).

Three policies, all pure functions of (quality, cost) vectors in the same model order:
- `cheapest_meeting(target)`: the cheapest model whose predicted quality ≥ target (else the best one);
- `best_under_cap(cap)`: the best predicted quality among models whose cost ≤ cap (else the cheapest);
- `tradeoff(lam)`: argmax quality − lam × cost, i.e. pay at most 1/lam USD per unit of quality.
"""

from __future__ import annotations

from collections.abc import Sequence


def _best(indices: Sequence[int], quality: Sequence[float], cost: Sequence[float]) -> int:
    return max(indices, key=lambda i: (quality[i], -cost[i]))


def cheapest_meeting(quality: Sequence[float], cost: Sequence[float], target: float) -> int:
    meeting = [i for i in range(len(quality)) if quality[i] >= target]
    if not meeting:
        return _best(range(len(quality)), quality, cost)
    return min(meeting, key=lambda i: (cost[i], -quality[i]))


def best_under_cap(quality: Sequence[float], cost: Sequence[float], cap: float) -> int:
    affordable = [i for i in range(len(quality)) if cost[i] <= cap]
    if not affordable:
        return min(range(len(cost)), key=lambda i: (cost[i], -quality[i]))
    return _best(affordable, quality, cost)


def tradeoff(quality: Sequence[float], cost: Sequence[float], lam: float) -> int:
    return max(range(len(quality)), key=lambda i: (quality[i] - lam * cost[i], -cost[i]))
