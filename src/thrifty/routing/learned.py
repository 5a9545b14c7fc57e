"""The learned router: per-model P(good answer | prompt) from embeddings + lexical features.

Each candidate model gets a logistic regression over [embedding | lexical | 1]; optionally blended
with a kNN estimate over the training prompts. Saved as one `.npz` file (numpy only at run time).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thrifty.routing.features import LEXICAL_NAMES, Featurizer
from thrifty.routing.signals import Signals

if TYPE_CHECKING:
    import numpy as np

    from thrifty.embed import Embedder

FORMAT = "thrifty-learned-router/2"


class RouterFileError(ValueError):
    """A router file is missing, unreadable or of another format."""


@dataclass
class LearnedModel:
    """The trained parameters, independent of how prompts are embedded."""

    models: list[str]
    weights: np.ndarray
    """(m, d) logistic weights per model."""
    est_cost: np.ndarray
    """(m,) mean USD per call on the training data: the cost a decision assumes."""
    blend: float = 1.0
    """Share of the logistic estimate; the rest is kNN (needs knn_keys/knn_scores)."""
    knn_k: int = 0
    knn_keys: np.ndarray | None = None
    knn_scores: np.ndarray | None = None
    prior_table: np.ndarray | None = None
    """(buckets, m) token priors (token_prior.py), or None."""
    use_embedding: bool = True
    meta: dict[str, Any] = field(default_factory=dict)

    def features(self, texts: Sequence[str], embeddings: np.ndarray | None) -> np.ndarray:
        from thrifty.routing import token_prior

        priors = None if self.prior_table is None else token_prior.features(texts, self.prior_table)
        return Featurizer().combine(embeddings if self.use_embedding else None, texts, priors)

    def predict(self, texts: Sequence[str], embeddings: np.ndarray | None) -> np.ndarray:
        """(n, m) predicted quality per prompt and model."""
        from thrifty.routing.knn import knn_quality
        from thrifty.routing.logistic import sigmoid

        x = self.features(texts, embeddings)
        probs = sigmoid(x.astype("float64") @ self.weights.T.astype("float64"))
        usable = embeddings is not None and self.knn_keys is not None and self.knn_scores is not None
        if self.blend < 1.0 and usable:
            near = knn_quality(embeddings, self.knn_keys, self.knn_scores.astype("float64"), self.knn_k)
            probs = self.blend * probs + (1.0 - self.blend) * near
        return probs

    def save(self, path: str | Path) -> Path:
        import numpy as np

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {
            "format": np.array(FORMAT),
            "models": np.array(self.models),
            "weights": self.weights.astype(np.float32),
            "est_cost": self.est_cost.astype(np.float64),
            "blend": np.array(self.blend),
            "knn_k": np.array(self.knn_k),
            "use_embedding": np.array(self.use_embedding),
            "meta": np.array(json.dumps({**self.meta, "lexical": list(LEXICAL_NAMES)})),
        }
        if self.blend < 1.0 and self.knn_keys is not None and self.knn_scores is not None:
            arrays["knn_keys"] = self.knn_keys.astype(np.float16)
            arrays["knn_scores"] = self.knn_scores.astype(np.float16)
        if self.prior_table is not None:
            arrays["prior_table"] = self.prior_table.astype(np.float16)
        with path.open("wb") as fh:
            np.savez_compressed(fh, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> LearnedModel:
        import numpy as np

        try:
            data = np.load(Path(path), allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise RouterFileError(f"cannot read router file {path}: {exc}") from None
        if "format" not in data or str(data["format"]) != FORMAT:
            raise RouterFileError(f"{path} is not a {FORMAT} file")
        meta = json.loads(str(data["meta"]))
        if meta.get("lexical") != list(LEXICAL_NAMES):
            raise RouterFileError(f"{path} was trained with other lexical features; retrain it")
        return cls(
            models=[str(m) for m in data["models"]],
            weights=data["weights"],
            est_cost=data["est_cost"],
            blend=float(data["blend"]),
            knn_k=int(data["knn_k"]),
            knn_keys=data.get("knn_keys"),
            knn_scores=data.get("knn_scores"),
            prior_table=data.get("prior_table"),
            use_embedding=bool(data["use_embedding"]),
            meta=meta,
        )


class LearnedRouter:
    """Router seam: `quality(signals)` → predicted quality per candidate model (in `models` order)."""

    def __init__(self, model: LearnedModel, embedder: Embedder | None = None) -> None:
        self.model = model
        self._embedder = embedder

    @classmethod
    def load(cls, path: str | Path, embedder: Embedder | None = None) -> LearnedRouter:
        return cls(LearnedModel.load(path), embedder)

    @property
    def models(self) -> list[str]:
        return self.model.models

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from thrifty.embed import get_embedder

            self._embedder = get_embedder()
        return self._embedder

    def quality(self, signals: Signals) -> list[float]:
        text = signals.text
        emb = self.embedder.embed([text]) if self.model.use_embedding else None
        return [float(v) for v in self.model.predict([text], emb)[0]]
