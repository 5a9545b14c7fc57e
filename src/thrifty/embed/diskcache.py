"""A disk cache of sentence embeddings for offline training and evaluation runs.

Runs that share a cache directory embed each text once. Vectors are kept per embedder: the directory
holds one sub-directory per embedder `id` (e.g. `minilm-numpy-fp32`, an int8 ONNX build), with the token
limit appended when the embedder reads fewer than its full window (`…-t32`), so vectors of two backends
or two windows are never mixed. Layout inside it: `chunk-*.npy` (float32 rows) beside `chunk-*.json`
(their texts). It is only a speed-up for `thrifty cache …` and `thrifty route …`; the gateway never
reads it. Without a directory, vectors are kept in memory for the run.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from thrifty.embed import Embedder

_CHUNK = 1024


def embedder_id(embedder: Embedder) -> str:
    """A file-name-safe name of the embedder's vectors: its backend `id`, and its token limit when that
    is shorter than the model's window."""
    from thrifty.embed.encoder import MAX_TOKENS

    name = embedder.id if embedder.max_tokens >= MAX_TOKENS else f"{embedder.id}-t{embedder.max_tokens}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def default_directory() -> Path:
    """Where `thrifty route …` keeps vectors between runs: `$THRIFTY_CACHE_DIR` or the temp dir."""
    return Path(os.environ.get("THRIFTY_CACHE_DIR") or tempfile.gettempdir()) / "thrifty-embeddings"


class EmbeddingCache:
    """`matrix(texts)` → (n, dim) float32 rows, each distinct text embedded once per embedder."""

    def __init__(self, embedder: Embedder, directory: str | Path | None = None) -> None:
        self.embedder = embedder
        self.embedder_id = embedder_id(embedder)
        self.directory = Path(directory) / self.embedder_id if directory else None
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
            try:
                texts = json.loads(meta.read_text())
                vectors = np.load(vectors_path)
            except (OSError, ValueError):
                continue  # a chunk cut short by an interrupted run: embed its texts again
            if len(texts) != len(vectors) or vectors.ndim != 2 or vectors.shape[1] != self.embedder.dim:
                continue
            self._rows.update(zip(texts, vectors, strict=True))

    def __len__(self) -> int:
        return len(self._rows)

    def missing(self, texts: Sequence[str]) -> list[str]:
        return list(dict.fromkeys(t for t in texts if t not in self._rows))

    def fill(self, texts: Sequence[str], progress: bool = False) -> None:
        """Embed every text not yet cached (longest-similar texts together: little padding),
        saving each chunk as it is done."""
        import time

        todo = sorted(self.missing(texts), key=len)
        started = time.perf_counter()
        for start in range(0, len(todo), _CHUNK):
            chunk = todo[start : start + _CHUNK]
            vectors = self.embedder.embed(chunk)
            self._rows.update(zip(chunk, vectors, strict=True))
            self._save(chunk, vectors)
            if progress:
                done, spent = start + len(chunk), time.perf_counter() - started
                print(
                    f"embedded {done}/{len(todo)} ({1000 * spent / done:.2f} ms/text)",
                    file=sys.stderr,
                    flush=True,
                )

    def _save(self, texts: list[str], vectors: np.ndarray) -> None:
        import uuid

        import numpy as np

        if self.directory is None:
            return
        stem = f"chunk-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        # the vectors first, the texts last: a chunk counts only once both files are complete
        with open(self.directory / f"{stem}.npy", "wb") as handle:
            np.save(handle, vectors.astype(np.float32))
        (self.directory / f"{stem}.json").write_text(json.dumps(texts))

    def matrix(self, texts: Sequence[str]) -> np.ndarray:
        """Rows for `texts` in order, embedding whatever is missing."""
        import numpy as np

        self.fill(texts)
        if not texts:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        return np.stack([self._rows[t] for t in texts]).astype(np.float32, copy=False)
