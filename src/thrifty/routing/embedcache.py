"""Embeddings of a list of prompts, cached on disk outside the repo so training iterations are fast.

The cache key hashes the embedder's `id` (its backend: numpy float32 and ONNX int8 vectors are never
mixed), its `max_tokens` and every prompt in order, so a changed file or embedder never reuses stale
vectors. The default directory is `$THRIFTY_CACHE_DIR` or the system temp dir
(`/tmp/thrifty-embeddings`).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from thrifty.embed import Embedder


def default_cache_dir() -> Path:
    base = os.environ.get("THRIFTY_CACHE_DIR") or tempfile.gettempdir()
    return Path(base) / "thrifty-embeddings"


def embedder_key(embedder: Embedder) -> str:
    """What identifies an embedder's vectors: its backend id and its token limit."""
    return f"{embedder.id}/t{embedder.max_tokens}"


class EmbeddingCache:
    """`embed(texts)` → (n, dim) float32 rows, computed once per embedder and distinct list of texts."""

    def __init__(self, embedder: Embedder | None = None, directory: Path | None = None) -> None:
        self._embedder = embedder
        self.directory = directory or default_cache_dir()

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from thrifty.embed import get_embedder

            self._embedder = get_embedder()
        return self._embedder

    def _key(self, texts: Sequence[str]) -> str:
        digest = hashlib.sha256(embedder_key(self.embedder).encode())
        digest.update(b"\x00")
        for text in texts:
            digest.update(text.encode("utf-8", "replace"))
            digest.update(b"\x00")
        return digest.hexdigest()[:32]

    def embed(self, texts: Sequence[str], *, batch: int = 64) -> np.ndarray:
        import numpy as np

        path = self.directory / f"{self._key(texts)}.npy"
        if path.exists():
            return np.load(path)
        parts = [self.embedder.embed(texts[i : i + batch]) for i in range(0, len(texts), batch)]
        vectors = np.concatenate(parts) if parts else np.zeros((0, self.embedder.dim), np.float32)
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, vectors.astype(np.float32))
        tmp.replace(path)
        return vectors
