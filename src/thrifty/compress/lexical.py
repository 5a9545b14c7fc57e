"""Lexical relevance: terms (lower-cased words minus stopwords, lightly stemmed) and BM25.

Units are the "documents" of BM25 and IDF is computed over the units of the one context being
compressed, so no corpus statistics are needed. Scoring only visits the query's terms.

Chinese, Japanese and Korean are not written with spaces between words, so a run of their characters
would otherwise be one huge "word" that never matches the question. A run of CJK characters (Han,
kana, Hangul) gives its overlapping character bigrams instead (a lone character is its own term), the
usual trick of CJK full-text search; Latin letters and digits next to it ("1894年") are terms of their
own.
"""

from __future__ import annotations

import math
import re
from collections import Counter

_WORD = re.compile(r"[^\W_]+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]+")
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers herself him himself his how i if in into is it its itself just me more most my
    myself no nor not now of off on once only or other our ours ourselves out over own same she should so
    some such than that the their theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why will with would you your
    yours yourself yourselves also may might must shall one two many much us according based use used using
    question answer following given""".split()  # noqa: SIM905
)


def stem(word: str) -> str:
    """A light suffix stripper (plural and a few verb endings): enough for lexical overlap."""
    if len(word) <= 3 or word.isdigit():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "ss", "us", "is")):
        return word
    if word.endswith("s"):
        return word[:-1]
    if word.endswith("ing") and len(word) > 5:
        return word[:-3]
    if word.endswith("ed") and len(word) > 4:
        return word[:-2]
    return word


def _term(word: str) -> str | None:
    return None if word in STOPWORDS else stem(word)


def _cjk_terms(word: str) -> list[str]:
    """Terms of a word holding CJK characters: bigrams of each CJK run, other parts as words."""
    out: list[str] = []
    pos = 0
    for match in _CJK.finditer(word):
        if match.start() > pos and (term := _term(word[pos : match.start()])) is not None:
            out.append(term)
        run = match.group()
        out.extend([run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)])
        pos = match.end()
    if pos < len(word) and (term := _term(word[pos:])) is not None:
        out.append(term)
    return out


def terms(text: str) -> list[str]:
    return Lexicon(size=0).terms(text)


_UNSEEN = object()


class Lexicon:
    """`terms` with a per-instance memo of word → term (None for a stopword)."""

    def __init__(self, size: int = 200_000) -> None:
        self.size = size
        self._memo: dict[str, str | None] = {}

    def terms(self, text: str) -> list[str]:
        memo = self._memo
        out: list[str] = []
        for word in _WORD.findall(text.lower()):
            term = memo.get(word, _UNSEEN)
            if term is _UNSEEN:
                if _CJK.search(word):  # not memoised: CJK runs are whole phrases, rarely seen twice
                    out.extend(_cjk_terms(word))
                    continue
                term = _term(word)
                if len(memo) < self.size:
                    memo[word] = term
            if term is not None:
                out.append(term)  # type: ignore[arg-type]
        return out


class BM25:
    """Okapi BM25 over a list of term lists (k1 = 1.2, b = 0.75)."""

    def __init__(self, docs: list[list[str]], k1: float = 1.2, b: float = 0.75) -> None:
        self.counts = [Counter(d) for d in docs]
        self.lengths = [len(d) for d in docs]
        self.avg = (sum(self.lengths) / len(docs)) if docs else 0.0
        self.k1 = k1
        self.b = b

    def idf(self, term: str) -> float:
        n = len(self.counts)
        df = sum(1 for c in self.counts if term in c)
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def scores(self, query: list[str]) -> list[float]:
        out = [0.0] * len(self.counts)
        avg = self.avg or 1.0
        for term in set(query):
            idf = self.idf(term)
            for i, counts in enumerate(self.counts):
                tf = counts.get(term)
                if tf:
                    norm = self.k1 * (1 - self.b + self.b * self.lengths[i] / avg)
                    out[i] += idf * tf * (self.k1 + 1) / (tf + norm)
        return out
