"""k-nearest-neighbour quality estimate: how the models did on the most similar training prompts."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

CHUNK = 2048


def knn_quality(
    queries: np.ndarray,
    keys: np.ndarray,
    scores: np.ndarray,
    k: int,
    *,
    exclude_self: bool = False,
    sharpness: float = 20.0,
) -> np.ndarray:
    """(q, m): similarity-weighted mean score of each model over the k nearest keys (cosine; rows of
    `queries` and `keys` are L2-normalised). `exclude_self` drops the diagonal (leave-one-out on the
    training set itself)."""
    import numpy as np

    k = max(1, min(k, len(keys) - (1 if exclude_self else 0)))
    keys32 = keys.astype(np.float32)
    out = np.empty((len(queries), scores.shape[1]), dtype=np.float64)
    for start in range(0, len(queries), CHUNK):
        sims = queries[start : start + CHUNK].astype(np.float32) @ keys32.T
        if exclude_self:
            rows = np.arange(sims.shape[0])
            sims[rows, rows + start] = -np.inf
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top_sims = np.take_along_axis(sims, top, axis=1).astype(np.float64)
        weights = np.exp(sharpness * (top_sims - top_sims.max(axis=1, keepdims=True)))
        weights /= weights.sum(axis=1, keepdims=True)
        out[start : start + CHUNK] = np.einsum("qk,qkm->qm", weights, scores[top])
    return out
