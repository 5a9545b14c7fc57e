"""Hashed TF-IDF n-grams of a prompt over MiniLM's WordPiece tokens (unigrams and bigrams).

The bundled MiniLM tokenizer (a Rust WordPiece, ~0.1 ms per prompt) splits the prompt into sub-word
ids; each unigram and bigram of ids is hashed (murmur3's finaliser, stable across processes)
into `dim` buckets. Row value: sublinear term frequency (1 + ln tf) × IDF (fitted on the
training prompts), L2-normalised. Rows are kept as a small CSR structure (`SparseRows`), so training
and routing need numpy and `tokenizers` only. Measured on MMLU (cross-validation inside folds 0–3)
this matches word + character TF-IDF n-grams at a fraction of the featurising time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

DIM = 1 << 18
MAX_TOKENS = 512
_VOCAB = 1 << 16  # > the WordPiece vocabulary (30,522): bigram keys never equal unigram keys


@dataclass(slots=True)
class SparseRows:
    """A CSR matrix: row i holds `indices[indptr[i]:indptr[i+1]]` with `values` at the same slots."""

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    dim: int

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def matvec(self, w: np.ndarray) -> np.ndarray:
        """(n,) = X @ w for w of shape (dim,)."""
        import numpy as np

        rows = np.repeat(np.arange(len(self)), np.diff(self.indptr))
        return np.bincount(rows, weights=self.values * w[self.indices], minlength=len(self))

    def rmatvec(self, r: np.ndarray) -> np.ndarray:
        """(dim,) = Xᵀ @ r for r of shape (n,)."""
        import numpy as np

        rows = np.repeat(r, np.diff(self.indptr))
        return np.bincount(self.indices, weights=self.values * rows, minlength=self.dim)

    def take(self, rows: np.ndarray) -> SparseRows:
        import numpy as np

        lengths = np.diff(self.indptr)[rows]
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        starts = np.repeat(self.indptr[rows] - indptr[:-1], lengths)
        picks = starts + np.arange(indptr[-1])
        return SparseRows(indptr, self.indices[picks], self.values[picks], self.dim)


def _hash(keys: np.ndarray, dim: int) -> np.ndarray:
    """The murmur3 64-bit finaliser (every key bit moves every output bit), then mod `dim`."""
    import numpy as np

    x = keys.astype(np.uint64)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xFF51AFD7ED558CCD)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xC4CEB9FE1A85EC53)
    x ^= x >> np.uint64(33)
    return (x % np.uint64(dim)).astype(np.int64)


def bucket_counts(ids: Sequence[int], dim: int = DIM) -> tuple[np.ndarray, np.ndarray]:
    """(distinct bucket ids, their counts) of one prompt's WordPiece ids (special tokens excluded)."""
    import numpy as np

    seq = np.asarray(ids, dtype=np.int64)
    keys = np.concatenate([seq, (seq[:-1] + 1) * _VOCAB + seq[1:]])
    return np.unique(_hash(keys, dim), return_counts=True)


class WordPieces:
    """The bundled MiniLM WordPiece tokenizer: texts → id lists without [CLS]/[SEP]."""

    def __init__(self, max_tokens: int = MAX_TOKENS) -> None:
        from tokenizers import Tokenizer

        from thrifty.embed.encoder import bundled_model_dir

        self._tok: Any = Tokenizer.from_file(str(bundled_model_dir() / "tokenizer.json"))
        self._tok.no_padding()
        self._tok.enable_truncation(max_length=max_tokens + 2)

    def ids(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids[1:-1] for e in self._tok.encode_batch(list(texts))]


class NgramFeaturizer:
    """texts → `SparseRows` of TF-IDF n-grams; `fit` learns the IDF weights from training prompts."""

    def __init__(
        self, idf: np.ndarray | None = None, dim: int = DIM, pieces: WordPieces | None = None
    ) -> None:
        self.dim = dim if idf is None else len(idf)
        self.idf = idf
        self._pieces = pieces

    @property
    def pieces(self) -> WordPieces:
        if self._pieces is None:
            self._pieces = WordPieces()
        return self._pieces

    def fit(self, texts: Sequence[str]) -> NgramFeaturizer:
        """IDF = ln((1 + n) / (1 + df)) + 1 per bucket; 0 for buckets seen in fewer than two prompts
        (a gram of one training prompt only identifies that prompt)."""
        import numpy as np

        df = np.zeros(self.dim)
        for ids in self.pieces.ids(texts):
            df[bucket_counts(ids, self.dim)[0]] += 1
        idf = np.log((1 + len(texts)) / (1 + df)) + 1
        self.idf = np.where(df >= 2, idf, 0.0).astype(np.float32)
        return self

    def transform(self, texts: Sequence[str]) -> SparseRows:
        import numpy as np

        if self.idf is None:
            raise ValueError("NgramFeaturizer.fit must run before transform")
        indices, values, indptr = [], [], [0]
        for ids in self.pieces.ids(texts):
            keys, counts = bucket_counts(ids, self.dim)
            vals = (1.0 + np.log(counts)) * self.idf[keys]
            keep = vals > 0
            keys, vals = keys[keep], vals[keep]
            norm = float(np.sqrt(vals @ vals)) or 1.0
            indices.append(keys)
            values.append(vals / norm)
            indptr.append(indptr[-1] + len(keys))
        return SparseRows(
            np.asarray(indptr, dtype=np.int64),
            np.concatenate(indices or [np.zeros(0, np.int64)]).astype(np.int64),
            np.concatenate(values or [np.zeros(0)]).astype(np.float64),
            self.dim,
        )
