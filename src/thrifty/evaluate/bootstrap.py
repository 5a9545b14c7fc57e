"""How much a test-split figure could move by chance: a bootstrap over the test prompts.

Fold 4 of the routing files holds a few hundred (GSM8K) to a few thousand (MMLU) prompts; APGR and
CPT measured on it carry sampling noise of a few points. The router's predictions stay fixed; the
prompts are resampled with replacement and the figure recomputed (its reference points included).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from thrifty.evaluate.metrics import Reference, sweep

if TYPE_CHECKING:
    import numpy as np

RESAMPLES = 100


def apgr_interval(
    probs: np.ndarray,
    est_cost: np.ndarray,
    scores: np.ndarray,
    costs: np.ndarray,
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
    axis: str = "calls",
) -> dict[str, Any]:
    """Bootstrap standard deviation and 95 % interval of APGR on `axis` (each resample's curve from
    at most 300 λ values, a close approximation of the headline curve)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = len(scores)
    values = []
    for _ in range(resamples):
        rows = rng.integers(0, n, n)
        ref = Reference.of(scores[rows], costs[rows])
        values.append(sweep(probs[rows], est_cost, scores[rows], costs[rows], ref, limit=300).apgr(axis))
    low, high = np.quantile(values, [0.025, 0.975])
    return {
        "std": float(np.std(values)),
        "low": float(low),
        "high": float(high),
        "resamples": resamples,
        "axis": axis,
    }
