"""A disk cache of sentence embeddings for offline training and evaluation runs.

Embedding a hundred thousand questions on a CPU takes long; runs that share a cache directory embed
each text once. Layout: `chunk-NNNNN.npy` (float32 rows) beside `chunk-NNNNN.json` (their texts).
The cache is only a speed-up for `thrifty cache train|calibrate|eval`; the gateway never reads it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from thrifty.embed import Embedder

_CHUNK = 512


class EmbeddingCache:
    def __init__(self, embedder: Embedder, directory: str | Path | None = None) -> None:
        self.embedder = embedder
        self.directory = Path(directory) if directory else None
        self._rows: dict[str, np.ndarray] = {}
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._load()

    def _load(self) -> None:
        import numpy as np

        assert self.directory is not None
        for meta in sorted(self.directory.glob("chunk-*.json")):
            vectors_path = meta.with_suffix(".npy")
            if not vectors_path.exists():
                continue
            texts = json.loads(meta.read_text())
            vectors = np.load(vectors_path)
            if len(texts) != len(vectors) or vectors.shape[1] != self.embedder.dim:
                continue
            self._rows.update(zip(texts, vectors, strict=True))

    def __len__(self) -> int:
        return len(self._rows)

    def missing(self, texts: Sequence[str]) -> list[str]:
        return list(dict.fromkeys(t for t in texts if t not in self._rows))

    def fill(self, texts: Sequence[str], progress: bool = False) -> None:
        """Embed every text not yet cached, saving each chunk as it is done."""
        import sys

        todo = self.missing(texts)
        for start in range(0, len(todo), _CHUNK):
            chunk = todo[start : start + _CHUNK]
            vectors = self.embedder.embed(chunk)
            self._rows.update(zip(chunk, vectors, strict=True))
            self._save(chunk, vectors)
            if progress:
                print(f"embedded {start + len(chunk)}/{len(todo)}", file=sys.stderr, flush=True)

    def _save(self, texts: list[str], vectors: np.ndarray) -> None:
        import os

        import numpy as np

        if self.directory is None:
            return
        stem = f"chunk-{os.getpid()}-{len(list(self.directory.glob('chunk-*.json'))):05d}"
        np.save(self.directory / f"{stem}.npy", vectors.astype(np.float32))
        (self.directory / f"{stem}.json").write_text(json.dumps(texts))

    def matrix(self, texts: Sequence[str]) -> np.ndarray:
        """Rows for `texts` in order, embedding whatever is missing."""
        import numpy as np

        self.fill(texts)
        return np.stack([self._rows[t] for t in texts]) if texts else np.zeros((0, self.embedder.dim))
