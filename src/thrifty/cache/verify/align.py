"""Word alignment of two texts with MiniLM's static WordPiece input embeddings (no transformer run).

A word's vector is the mean of its WordPiece rows in all-MiniLM-L6-v2's input embedding table
(`embeddings.word_embeddings.weight` of the bundled safetensors, memory-mapped, so only the rows of
words actually seen are read), scaled to unit length. For every content word only one text has, its
best match is its highest cosine with a content word of the other text: "buy" / "purchase" match
(0.75), "chess" / "guitar" (0.27) and "india" / "china" (0.35) do not. The verifier's dense features
aggregate those best matches (`alignment`), so it can tell a rewording from a swapped subject, which
hashed differing words and IDF mass alone cannot.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

TABLE = "embeddings.word_embeddings.weight"
UNMATCHED = 0.5  # a differing word whose best match is below this cosine has no counterpart
ALIGN = (
    "align_mean_a", "align_mean_b", "align_min", "align_worst_idf", "align_unmatched",
    "align_unmatched_idf", "static_cosine",
)  # fmt: skip
_NEUTRAL = (1.0, 1.0, 1.0, 0.0, 0.0, 0.0)  # nothing differs: every word is matched by itself
_MAX_CACHED_WORDS = 200_000  # word -> WordPiece ids; a few MB at most


def _memmap_tensor(path: Path, name: str) -> np.ndarray:
    """One float32 tensor of a safetensors file, memory-mapped (read-only)."""
    import numpy as np

    with open(path, "rb") as handle:
        size = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(size))
    info = header[name]
    if info["dtype"] != "F32":
        raise ValueError(f"{path}: {name} is {info['dtype']}, expected F32")
    start, _end = info["data_offsets"]
    mapped = np.memmap(path, dtype="<f4", mode="r", offset=8 + size + start, shape=tuple(info["shape"]))
    return mapped.view(np.ndarray)  # the same pages; plain-array indexing is faster than memmap's


class WordVectors:
    """Unit word vectors from a WordPiece tokenizer and its input embedding table."""

    def __init__(self, table: np.ndarray, tokenize: Callable[[list[str]], list[list[int]]]) -> None:
        self.table = table
        self._tokenize = tokenize
        self._ids: dict[str, tuple[int, ...]] = {}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model_dir: Path) -> WordVectors:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.no_truncation()

        def tokenize(words: list[str]) -> list[list[int]]:
            return [e.ids for e in tokenizer.encode_batch(words, add_special_tokens=False)]

        return cls(_memmap_tensor(model_dir / "model.safetensors", TABLE), tokenize)

    @classmethod
    def bundled(cls) -> WordVectors:
        from thrifty.embed.encoder import bundled_model_dir

        return cls.load(bundled_model_dir())

    @property
    def dim(self) -> int:
        return int(self.table.shape[1])

    def _piece_ids(self, words: Sequence[str]) -> list[tuple[int, ...]]:
        new = [w for w in dict.fromkeys(words) if w not in self._ids]
        if new:
            found = self._tokenize(new)
            with self._lock:
                if len(self._ids) + len(new) > _MAX_CACHED_WORDS:
                    self._ids.clear()
                self._ids.update({w: tuple(ids) for w, ids in zip(new, found, strict=True)})
        return [self._ids.get(w) or tuple(self._tokenize([w])[0]) for w in words]

    def vectors(self, words: Sequence[str]) -> np.ndarray:
        """(len(words), dim) unit rows; a word with no pieces gets a zero row."""
        import numpy as np

        pieces = self._piece_ids(words)
        out = np.empty((len(words), self.dim), dtype=np.float32)
        single = [i for i, p in enumerate(pieces) if len(p) == 1]
        if single:  # most words are one piece: one gather
            out[single] = self.table.take([pieces[i][0] for i in single], axis=0)
        for i, p in enumerate(pieces):
            if len(p) != 1:
                out[i] = self.table[list(p)].mean(0) if p else 0.0
        norms = np.sqrt(np.einsum("ij,ij->i", out, out))
        return out / np.maximum(norms, 1e-12)[:, None]


def alignment(
    content_a: Iterable[str],
    content_b: Iterable[str],
    only_a: Iterable[str],
    only_b: Iterable[str],
    idf: Callable[[str], float],
    vectors: WordVectors,
) -> list[float]:
    """The `ALIGN` features of two texts' content words (`only_*`: those the other text lacks).

    align_mean_a / _b: IDF-weighted mean best-match cosine of each side's differing words; align_min:
    the worst best match; align_worst_idf: that word's IDF; align_unmatched: differing words with no
    match >= UNMATCHED; align_unmatched_idf: their IDF mass over both texts' content IDF mass;
    static_cosine: cosine of the IDF-weighted sums of each text's content word vectors.
    (Small arrays: one Gram matrix in numpy, the rest in plain Python, which is faster at this size.)
    """
    import numpy as np

    words_a, words_b = sorted(content_a), sorted(content_b)
    na = len(words_a)
    weights = [idf(w) for w in (*words_a, *words_b)]
    vec = vectors.vectors([*words_a, *words_b])
    scaled = vec * np.asarray(weights, dtype=np.float32)[:, None]
    sa, sb = scaled[:na].sum(0), scaled[na:].sum(0)
    denom = math.sqrt(float(sa @ sa) * float(sb @ sb))
    static_cosine = float(sa @ sb) / denom if denom > 0 else 0.0
    diff_a, diff_b = set(only_a), set(only_b)
    ia = [i for i, w in enumerate(words_a) if w in diff_a]
    ib = [j for j, w in enumerate(words_b) if w in diff_b]
    if not ia and not ib:
        return [*_NEUTRAL, static_cosine]
    cross = (vec[:na] @ vec[na:].T).tolist()  # cosines, words_a x words_b
    best_a = [max(cross[i], default=0.0) for i in ia]
    best_b = [max((row[j] for row in cross), default=0.0) for j in ib]
    wa = [weights[i] for i in ia]
    wb = [weights[na + j] for j in ib]

    def weighted_mean(best: list[float], w: list[float]) -> float:
        total = sum(w)
        return sum(b * x for b, x in zip(best, w, strict=True)) / total if best and total > 0 else 1.0

    best, w = best_a + best_b, wa + wb
    worst = min(range(len(best)), key=best.__getitem__)
    unmatched = [x for b, x in zip(best, w, strict=True) if b < UNMATCHED]
    total = sum(weights)
    return [
        weighted_mean(best_a, wa),
        weighted_mean(best_b, wb),
        best[worst],
        w[worst],
        float(len(unmatched)),
        sum(unmatched) / total if total > 0 else 0.0,
        static_cosine,
    ]
