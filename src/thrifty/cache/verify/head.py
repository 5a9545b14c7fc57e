"""The embedding head's inputs: what the MLP sees of the two sentence vectors.

One function builds them for training (many pairs at once) and for serving (one pair), so the two
never drift apart. Parts, in this order, each optional (the model file names the ones it uses):

- `absdiff`, `prod`: |u - v| and u * v of the two L2-normalised MiniLM vectors;
- `white_absdiff`, `white_prod`, `white_cos`: the same after PCA whitening (centre, rotate onto the
  principal axes, scale each to unit variance, re-normalise), fitted on the train questions. Whitening
  spreads the few directions that dominate every MiniLM vector, so the element-wise features see the
  rest; the whitened cosine alone ranks QQP duplicates better than the raw one;
- `sum`: u + v, the topic of the pair (how strict to be depends on what the question is about).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

PARTS = ("absdiff", "prod", "white_absdiff", "white_prod", "white_cos", "sum")
WHITENED = frozenset({"white_absdiff", "white_prod", "white_cos"})


@dataclass
class Whitening:
    mean: np.ndarray  # (dim,)
    matrix: np.ndarray  # (dim, dim): centred vector @ matrix = whitened vector

    @classmethod
    def fit(cls, vectors: np.ndarray, eps: float = 1e-4) -> Whitening:
        import numpy as np

        mean = vectors.mean(0)
        values, axes = np.linalg.eigh(np.cov((vectors - mean).T))
        return cls(mean.astype(np.float32), (axes / np.sqrt(np.maximum(values, 0) + eps)).astype(np.float32))

    def __call__(self, vectors: np.ndarray) -> np.ndarray:
        import numpy as np

        w = (vectors - self.mean) @ self.matrix
        return w / np.maximum(np.linalg.norm(w, axis=-1, keepdims=True), 1e-12)


def head_features(
    standardised_rows: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    parts: tuple[str, ...],
    whitening: Whitening | None,
) -> np.ndarray:
    """Rows of head inputs (2-D arguments) or one input vector (1-D arguments)."""
    import numpy as np

    out = [standardised_rows]
    if "absdiff" in parts:
        out.append(np.abs(u - v))
    if "prod" in parts:
        out.append(u * v)
    if WHITENED.intersection(parts):
        if whitening is None:
            raise ValueError("a whitened head input needs the model's whitening arrays")
        wu, wv = whitening(u), whitening(v)
        if "white_absdiff" in parts:
            out.append(np.abs(wu - wv))
        if "white_prod" in parts:
            out.append(wu * wv)
        if "white_cos" in parts:
            out.append((wu * wv).sum(-1, keepdims=True))
    if "sum" in parts:
        out.append(u + v)
    return np.concatenate(out, axis=-1).astype(np.float32)
