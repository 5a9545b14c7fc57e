"""Lexical features of a (query, candidate) pair for the learned duplicate classifier.

Dense features are cheap set and string statistics plus the hard checks as flags; the sparse part is
the hashed words the two texts do not share (a learned weight says how much a differing word matters:
"best" versus "good" little, "India" versus "China" a lot). Word weights (IDF) live in a hashed table
trained with the model; the `align_*` features (align.py) say how close each differing content word is
to its best match in the other text, in MiniLM's static word-piece embedding space ("buy" / "purchase"
close, "chess" / "guitar" far). A feature vector needs the two texts, the cosine, that table and the
word vectors.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from thrifty.cache.verify import checks
from thrifty.cache.verify.align import ALIGN, alignment

if TYPE_CHECKING:
    import numpy as np

    from thrifty.cache.verify.align import WordVectors

HASH_BITS = 14
BUCKETS = 1 << HASH_BITS
_STOPWORDS = frozenset({
    "a", "an", "the", "of", "to", "in", "on", "for", "and", "or", "is", "are", "was", "were", "be",
    "been", "i", "you", "he", "she", "it", "we", "they", "my", "your", "do", "does", "did", "can",
    "could", "should", "would", "will", "what", "how", "why", "which", "who", "when", "where", "that",
    "this", "with", "as", "at", "by", "from", "about", "into", "best", "good", "way", "some", "any",
})  # fmt: skip

DENSE = (
    "cosine", "cosine_sq", "jaccard", "overlap_min", "overlap_max", "idf_jaccard", "idf_missing_a",
    "idf_missing_b", "max_idf_missing", "content_jaccard", "char3_jaccard", "len_ratio",
    "log_len_diff", "same_first", "same_last", "prefix_ratio", "same_kind", "veto_numbers",
    "veto_negation", "veto_question_kind", "veto_entities", "has_numbers", "min_words", *ALIGN,
)  # fmt: skip


def bucket(word: str) -> int:
    return zlib.crc32(word.encode()) & (BUCKETS - 1)


@dataclass(frozen=True, slots=True)
class PairFeatures:
    dense: list[float]
    differing: list[int]  # hashed buckets of the words only one text has


def _char_grams(tokens: list[str], n: int = 3) -> set[str]:
    s = " ".join(tokens)
    return {s[i : i + n] for i in range(max(len(s) - n + 1, 1))}


def _jaccard(x: set, y: set) -> float:
    union = len(x | y)
    return len(x & y) / union if union else 1.0


def _prefix_ratio(x: list[str], y: list[str]) -> float:
    """Share of the shorter text's words that open both texts in the same order."""
    same = 0
    for u, v in zip(x, y, strict=False):
        if u != v:
            break
        same += 1
    return same / max(min(len(x), len(y)), 1)


def extract(
    query: str | checks.Analysis,
    candidate: str | checks.Analysis,
    cosine: float,
    idf: np.ndarray,
    words: WordVectors,
) -> PairFeatures:
    q = checks.analyze(query) if isinstance(query, str) else query
    c = checks.analyze(candidate) if isinstance(candidate, str) else candidate
    wq, wc = q.words, c.words
    sq, sc = q.word_set, c.word_set
    shared = sq & sc

    def weight(ws: frozenset[str]) -> float:
        return float(sum(idf[bucket(w)] for w in ws))

    iq, ic, ishared = weight(sq), weight(sc), weight(shared)
    only_q, only_c = sq - shared, sc - shared
    missing = [float(idf[bucket(w)]) for w in only_q | only_c]
    content_q, content_c = sq - _STOPWORDS, sc - _STOPWORDS
    lq, lc = sum(map(len, wq)) + len(wq), sum(map(len, wc)) + len(wc)
    dense = [
        cosine,
        cosine * cosine,
        _jaccard(sq, sc),
        len(shared) / max(min(len(sq), len(sc)), 1),
        len(shared) / max(len(sq), len(sc), 1),
        ishared / max(iq + ic - ishared, 1e-6),
        weight(only_q) / max(iq, 1e-6),
        weight(only_c) / max(ic, 1e-6),
        max(missing, default=0.0),
        _jaccard(content_q, content_c),
        _jaccard(_char_grams(wq), _char_grams(wc)),
        min(lq, lc) / max(lq, lc, 1),
        math.log1p(abs(len(wq) - len(wc))),
        float(bool(wq) and bool(wc) and wq[0] == wc[0]),
        float(bool(wq) and bool(wc) and wq[-1] == wc[-1]),
        _prefix_ratio(wq, wc),
        float(q.kind == c.kind),
        *(float(check(q, c) is not None) for check in checks.CHECKS.values()),
        float(bool(q.numbers or c.numbers)),
        math.log1p(min(len(wq), len(wc))),
        *alignment(content_q, content_c, only_q, only_c, lambda w: float(idf[bucket(w)]), words),
    ]
    return PairFeatures(dense, sorted({bucket(w) for w in only_q | only_c}))


def fit_idf(texts: list[str]) -> np.ndarray:
    """Smoothed inverse document frequency per hashed word bucket."""
    import numpy as np

    df = np.zeros(BUCKETS, dtype=np.float64)
    for text in texts:
        for b in {bucket(w) for w in checks.words(text)}:
            df[b] += 1
    return np.log((1 + len(texts)) / (1 + df)).astype(np.float32) + 1.0
