"""The answer-length head, a routing experiment: each model's answer length predicted from the prompt.

Recorded outcomes often carry each model's `completion_tokens`. How long an answer ran (how many
steps a solution took) says how hard the prompt was. A ridge regression per model learns
log(1 + completion tokens) from the prompt's lexical and item measurements (routing/features.py,
item_features.py); `route_experiments`' `answer-length` variant feeds its out-of-fold predictions
to the router's stacker. Measured and not shipped: cross-validation inside folds 0–3 favoured it on
GSM8K, the test fold did not (docs/routing.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from thrifty.routing.features import LEXICAL_NAMES

if TYPE_CHECKING:
    import numpy as np

RIDGE_L2 = 100.0
"""Ridge strength on standardised columns (the best of 10, 100, 1000 inside GSM8K's folds 0–3)."""


def design(lexical: np.ndarray, texts: Sequence[str]) -> np.ndarray:
    """(n, d) float64: [lexical measurements | item measurements] of each prompt."""
    import numpy as np

    from thrifty.evaluate.item_features import item_matrix

    return np.hstack([lexical, item_matrix(texts)])


def lexical_of(dense_x: np.ndarray) -> np.ndarray:
    """The lexical columns of a dense design ([embedding? | lexical | 1])."""
    return dense_x[:, -1 - len(LEXICAL_NAMES) : -1]


def usable(completion_tokens: np.ndarray) -> bool:
    """Whether the recorded answer lengths can teach the head: all recorded, and not all alike."""
    import numpy as np

    tokens = np.asarray(completion_tokens, dtype=np.float64)
    return bool(tokens.size and np.isfinite(tokens).all() and (tokens.std(axis=0) > 0).any())


@dataclass(slots=True)
class AnswerLengthHead:
    """Per model, a ridge regression of log(1 + completion tokens) on standardised `design` columns."""

    mean: np.ndarray
    """(d,) column means of the training design."""
    scale: np.ndarray
    """(d,) column standard deviations (+ a small epsilon)."""
    weights: np.ndarray
    """(m, d) ridge weights per model."""
    centre: np.ndarray
    """(m,) mean log(1 + completion tokens) per model."""

    @classmethod
    def fit(cls, x: np.ndarray, completion_tokens: np.ndarray, l2: float = RIDGE_L2) -> AnswerLengthHead:
        import numpy as np

        y = np.log1p(completion_tokens)
        mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
        z = (x - mean) / scale
        centre = y.mean(axis=0)
        gram = z.T @ z + l2 * np.eye(z.shape[1])
        weights = np.linalg.solve(gram, z.T @ (y - centre)).T
        return cls(mean, scale, weights, centre)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(n, m) predicted log(1 + completion tokens) per prompt and model."""
        return ((x - self.mean) / self.scale) @ self.weights.T + self.centre


def out_of_fold(x: np.ndarray, completion_tokens: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """(n, m) predictions for each fold's rows from a head fitted on the other folds."""
    import numpy as np

    out = np.zeros(completion_tokens.shape)
    for fold in np.unique(folds):
        held = folds == fold
        out[held] = AnswerLengthHead.fit(x[~held], completion_tokens[~held]).predict(x[held])
    return out
