"""Token priors: how each model did, on average, on training prompts containing each word / bigram.

Words and bigrams are hashed (crc32, stable across processes) into `dim` buckets. For each bucket
and model the table holds the shrunk deviation of the mean score from the model's overall mean:
(Σ scores − count × mean) / (count + smoothing). A prompt's feature per model is the mean deviation
over its buckets. Training features must be out-of-fold (`out_of_fold`) so the logistic layer on
top does not learn from leaked labels.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from itertools import pairwise
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

_TOKEN = re.compile(r"[a-z0-9]+")
DIM = 1 << 17
SMOOTHING = 10.0


def bucket_ids(text: str, dim: int = DIM) -> list[int]:
    """Distinct hashed unigrams and bigrams of the lowercased text (first 4,000 chars)."""
    words = _TOKEN.findall(text[:4000].lower())
    grams = set(words)
    grams.update(f"{a} {b}" for a, b in pairwise(words))
    return [zlib.crc32(g.encode()) % dim for g in grams]


def _flatten(texts: Sequence[str], dim: int) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    ids = [bucket_ids(t, dim) for t in texts]
    rows = np.repeat(np.arange(len(ids)), [len(i) for i in ids])
    flat = np.fromiter((x for i in ids for x in i), dtype=np.int64, count=len(rows))
    return rows, flat


def fit_table(
    texts: Sequence[str], scores: np.ndarray, dim: int = DIM, smoothing: float = SMOOTHING
) -> np.ndarray:
    """(dim, m) float32 table of shrunk deviations."""
    import numpy as np

    rows, flat = _flatten(texts, dim)
    mean = scores.mean(axis=0)
    count = np.bincount(flat, minlength=dim).astype(np.float64)
    table = np.empty((dim, scores.shape[1]), dtype=np.float32)
    for j in range(scores.shape[1]):
        total = np.bincount(flat, weights=scores[rows, j], minlength=dim)
        table[:, j] = (total - count * mean[j]) / (count + smoothing)
    return table


def features(texts: Sequence[str], table: np.ndarray) -> np.ndarray:
    """(n, m) mean table deviation over each text's buckets."""
    import numpy as np

    dim = table.shape[0]
    rows, flat = _flatten(texts, dim)
    n = len(texts)
    per_row = np.maximum(np.bincount(rows, minlength=n), 1)
    out = np.empty((n, table.shape[1]))
    for j in range(table.shape[1]):
        out[:, j] = np.bincount(rows, weights=table[flat, j].astype(np.float64), minlength=n) / per_row
    return out * 10.0


def out_of_fold(texts: Sequence[str], scores: np.ndarray, folds: np.ndarray, dim: int = DIM) -> np.ndarray:
    """Features for training rows, each fold's from a table fit on the other folds."""
    import numpy as np

    out = np.zeros(scores.shape)
    for fold in np.unique(folds):
        held = folds == fold
        table = fit_table([t for t, h in zip(texts, held, strict=True) if not h], scores[~held], dim)
        out[held] = features([t for t, h in zip(texts, held, strict=True) if h], table)
    return out
