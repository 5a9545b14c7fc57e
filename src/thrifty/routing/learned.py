"""The learned router: per-model P(good answer | prompt) from two linear heads, stacked.

- the *n-gram head*: a logistic regression over hashed WordPiece TF-IDF uni/bigrams (ngrams.py);
- the *dense head*: a logistic regression over [embedding of the first `embed_tokens` tokens
  (optional) × `embed_scale` | lexical measurements | 1].

A per-model stacker (`stack`) weighs the two heads' logits and calibrates the result. Saved as one
`.npz` file; routing needs numpy, `tokenizers` and (only with an embedding) the embedder.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thrifty.routing.features import LEXICAL_NAMES, Featurizer
from thrifty.routing.signals import Signals

if TYPE_CHECKING:
    import numpy as np

    from thrifty.embed import Embedder
    from thrifty.routing.ngrams import NgramFeaturizer, SparseRows

FORMAT = "thrifty-learned-router/3"


def stacked(dense_logit: np.ndarray, ngram_logit: np.ndarray | None, stack: np.ndarray) -> np.ndarray:
    """(n, m): per model j, σ(stack[j] · [dense logits of every model | n-gram logits of every model | 1])."""
    import numpy as np

    from thrifty.routing.logistic import sigmoid

    parts = [dense_logit, *([] if ngram_logit is None else [ngram_logit]), np.ones((len(dense_logit), 1))]
    return sigmoid(np.hstack(parts) @ stack.T)


def dense_design(embeddings: np.ndarray | None, texts: Sequence[str], scale: float = 1.0) -> np.ndarray:
    """The dense head's (n, d) float64 design: [embedding × scale (if given) | lexical | 1]."""
    import numpy as np

    emb = None if embeddings is None else embeddings.astype(np.float64) * scale
    return Featurizer().combine(emb, texts).astype(np.float64)


class RouterFileError(ValueError):
    """A router file is missing, unreadable or of another format."""


@dataclass
class LearnedModel:
    """The trained parameters, independent of how prompts are embedded."""

    models: list[str]
    dense_weights: np.ndarray
    """(m, d) logistic weights per model over [embedding? | lexical | 1]."""
    est_cost: np.ndarray
    """(m,) mean USD per call on the training data: the cost a decision assumes."""
    idf: np.ndarray | None = None
    """(dim,) IDF of the n-gram buckets; None: no n-gram head."""
    ngram_weights: np.ndarray | None = None
    """(m, 1 + dim) logistic weights per model over [1 | n-grams]."""
    stack: np.ndarray | None = None
    """(m, 2m + 1), or (m, m + 1) without the n-gram head: per model, a logistic regression over
    both heads' logits of every model, fitted on out-of-fold logits: it weighs the heads, lets one
    model's estimate inform another's (a question hard for one is often hard for all) and calibrates
    the result, so a predicted 0.8 means about 80 % (quality-target policies rely on it)."""
    embed_tokens: int | None = None
    """Tokens of the prompt the dense head embeds; None: no embedding."""
    embed_scale: float = 1.0
    """The embedding's factor in the dense design (a smaller one regularises it more than the rest)."""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def use_embedding(self) -> bool:
        return self.embed_tokens is not None

    def ngrams(self) -> NgramFeaturizer | None:
        from thrifty.routing.ngrams import NgramFeaturizer

        return None if self.idf is None else NgramFeaturizer(self.idf)

    def predict(
        self,
        texts: Sequence[str],
        embeddings: np.ndarray | None,
        sparse: SparseRows | None = None,
    ) -> np.ndarray:
        """(n, m) predicted quality per prompt and model (`sparse`: n-gram rows if already built)."""
        import numpy as np

        from thrifty.routing.logistic import sigmoid

        if self.use_embedding and embeddings is None:
            raise ValueError("this router needs prompt embeddings")
        x = dense_design(embeddings if self.use_embedding else None, texts, self.embed_scale)
        dense_logit = x @ self.dense_weights.T.astype(np.float64)
        if self.stack is None:
            return sigmoid(dense_logit)
        ngram_logit = None
        if self.idf is not None and self.ngram_weights is not None:
            from thrifty.routing.ngrams import NgramFeaturizer

            rows = sparse if sparse is not None else NgramFeaturizer(self.idf).transform(texts)
            w = self.ngram_weights.astype(np.float64)
            ngram_logit = np.stack([rows.matvec(w[j, 1:]) + w[j, 0] for j in range(len(w))], axis=1)
        return stacked(dense_logit, ngram_logit, self.stack)

    def save(self, path: str | Path) -> Path:
        import numpy as np

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {
            "format": np.array(FORMAT),
            "models": np.array(self.models),
            "dense_weights": self.dense_weights.astype(np.float32),
            "est_cost": self.est_cost.astype(np.float64),
            "embed_tokens": np.array(-1 if self.embed_tokens is None else self.embed_tokens),
            "embed_scale": np.array(self.embed_scale),
            "stack": np.zeros((0, 0)) if self.stack is None else self.stack.astype(np.float64),
            "meta": np.array(json.dumps({**self.meta, "lexical": list(LEXICAL_NAMES)})),
        }
        if self.idf is not None and self.ngram_weights is not None:
            arrays["idf"] = self.idf.astype(np.float32)
            arrays["ngram_weights"] = self.ngram_weights.astype(np.float32)
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
            raise RouterFileError(f"{path} is not a {FORMAT} file; retrain it with `thrifty route train`")
        meta = json.loads(str(data["meta"]))
        if meta.get("lexical") != list(LEXICAL_NAMES):
            raise RouterFileError(f"{path} was trained with other lexical features; retrain it")
        tokens = int(data["embed_tokens"])
        has_ngrams = "idf" in data and "ngram_weights" in data
        return cls(
            models=[str(m) for m in data["models"]],
            dense_weights=data["dense_weights"],
            est_cost=data["est_cost"],
            idf=data["idf"].astype(np.float32) if has_ngrams else None,
            ngram_weights=data["ngram_weights"].astype(np.float32) if has_ngrams else None,
            embed_tokens=None if tokens < 0 else tokens,
            embed_scale=float(data["embed_scale"]),
            stack=data["stack"] if len(data["stack"]) else None,
            meta=meta,
        )


class LearnedRouter:
    """Router seam: `quality(signals)` → predicted quality per candidate model (in `models` order)."""

    def __init__(self, model: LearnedModel, embedder: Embedder | None = None) -> None:
        self.model = model
        self._given = embedder
        self._ngrams = model.ngrams()

    @classmethod
    def load(cls, path: str | Path, embedder: Embedder | None = None) -> LearnedRouter:
        return cls(LearnedModel.load(path), embedder)

    @property
    def models(self) -> list[str]:
        return self.model.models

    @cached_property
    def embedder(self) -> Embedder:
        """The given (else the process's) embedder, limited to the router's `embed_tokens`: a router
        trained on 32-token embeddings must not be fed whole-prompt ones."""
        from thrifty.embed import get_embedder, limited
        from thrifty.embed.encoder import MAX_TOKENS

        tokens = self.model.embed_tokens or MAX_TOKENS
        return get_embedder(tokens) if self._given is None else limited(self._given, tokens)

    def quality(self, signals: Signals) -> list[float]:
        text = signals.text
        emb = self.embedder.embed([text]) if self.model.use_embedding else None
        sparse = None if self._ngrams is None else self._ngrams.transform([text])
        return [float(v) for v in self.model.predict([text], emb, sparse)[0]]
