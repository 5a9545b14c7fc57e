"""Hard checks that veto a semantic match: two questions that differ in a number, a named entity,
a negation or the kind of question asked are different questions, however close their embeddings.

Each check is a pure function of the two texts and says why it vetoes (a short reason) or None.
`CHECKS` are also the learned model's inputs (the `veto_*` features), and which of them veto is a
property of the model file; `ALWAYS` veto in every model: two texts with the same words whose symbols
differ ("3+3" / "3*3") are different questions that no learned stage can tell apart (they never see
symbols), so no calibration may let them through.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from thrifty.cache.verify import wording as _wording

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:['’][A-Za-z]+)?|[.?!]")
# digits inside a word count too: ww1 / ww2, mp3 / mp4, python2 / python3 are different things
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
    "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50", "hundred": "100",
    "thousand": "1000", "million": "1000000", "billion": "1000000000",
    "first": "1", "second": "2", "third": "3", "fourth": "4", "fifth": "5",
}  # fmt: skip
_NEGATIONS = {"not", "no", "never", "nothing", "nobody", "none", "neither", "nor", "without", "cannot"}
_QUESTION_WORDS = {
    "what": "what", "whats": "what", "what's": "what", "why": "why", "how": "how", "when": "when",
    "where": "where", "who": "who", "whom": "who", "whose": "who", "who's": "who", "which": "which",
}  # fmt: skip
_AUXILIARIES = {
    "is", "are", "was", "were", "do", "does", "did", "can", "could", "should", "would", "will",
    "shall", "may", "might", "must", "has", "have", "had", "am",
}  # fmt: skip
# kinds of question that never ask the same thing as each other: a time, a place, a person, a reason
_EXCLUSIVE_KINDS = {"when", "where", "who", "why"}
_HOW_QUANTITY = {"much", "many", "long", "old", "far", "big", "often", "tall", "fast", "large"}


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("’", "'"))


def same_wording(a: str | Analysis, b: str | Analysis) -> bool:
    """The same words in the same order, in any script, and the same symbols that are part of a term:
    only case, spacing or punctuation that does not change the meaning differ (wording.py). (`words`
    keeps ASCII words only, so it cannot tell "What does 心中 mean?" from "What does 女漢子 mean?".)"""
    return _wording.same_wording(_wording_of(a), _wording_of(b))


def _wording_of(text: str | Analysis) -> _wording.Wording:
    return _wording.wording(text) if isinstance(text, str) else text.wording


def numbers(text: str) -> set[str]:
    found = {n.replace(",", "").rstrip(".") for n in _NUMBER.findall(text)}
    found |= {_NUMBER_WORDS[w] for w in words(text) if w in _NUMBER_WORDS}
    return found


def negated(text: str) -> bool:
    """Whether the text carries an odd number of negations (two negations cancel)."""
    return sum(1 for w in words(text) if w in _NEGATIONS or w.endswith("n't")) % 2 == 1


def question_kind(text: str) -> str:
    """The kind of answer asked for: a wh-word (how-much style quantities apart), yes/no, or other."""
    tokens = words(text)
    for i, w in enumerate(tokens):
        kind = _QUESTION_WORDS.get(w)
        if kind == "how" and i + 1 < len(tokens) and tokens[i + 1] in _HOW_QUANTITY:
            return "how-" + tokens[i + 1]
        if kind is not None:
            return kind
    if tokens and tokens[0] in _AUXILIARIES:
        return "yesno"
    return "other"


def entities(text: str) -> set[str]:
    """Lower-cased proper-noun-like tokens: capitalised words not opening a sentence, and acronyms."""
    found: set[str] = set()
    sentence_start = True
    for token in _TOKEN.findall(text):
        if token in ".?!":
            sentence_start = True
            continue
        lower = token.lower().replace("’", "'")
        upper_inside = token[1:] != token[1:].lower()
        proper = (token[0].isupper() and not sentence_start and lower != "i") or upper_inside
        if proper and lower not in _QUESTION_WORDS and lower not in _AUXILIARIES:
            found.add(lower)
        sentence_start = False
    return found


@dataclass(frozen=True, slots=True)
class Analysis:
    """Everything the checks and features need from one text, computed once."""

    words: list[str]
    word_set: frozenset[str]
    numbers: frozenset[str]
    negated: bool
    kind: str
    entities: frozenset[str]
    wording: _wording.Wording


def analyze(text: str) -> Analysis:
    tokens = words(text)
    return Analysis(
        words=tokens,
        word_set=frozenset(tokens),
        numbers=frozenset(numbers(text)),
        negated=negated(text),
        kind=question_kind(text),
        entities=frozenset(entities(text)),
        wording=_wording.wording(text),
    )


def _numbers(a: Analysis, b: Analysis) -> str | None:
    if a.numbers != b.numbers:
        return f"numbers differ: {sorted(a.numbers ^ b.numbers)}"
    return None


def _negation(a: Analysis, b: Analysis) -> str | None:
    if a.negated != b.negated:
        return "one question is negated"
    return None


def _question_kind(a: Analysis, b: Analysis) -> str | None:
    ka, kb = a.kind, b.kind
    if ka == kb:
        return None
    if ka in _EXCLUSIVE_KINDS or kb in _EXCLUSIVE_KINDS or ka.startswith("how-") or kb.startswith("how-"):
        return f"question kinds differ: {ka} / {kb}"
    return None


def _entities(a: Analysis, b: Analysis) -> str | None:
    """One named entity swapped for another: each text names one the other never mentions (in any
    case). A name present on one side only is left to the learned model: it often only adds context."""
    only_a, only_b = a.entities - b.word_set, b.entities - a.word_set
    if only_a and only_b:
        return f"entities differ: {sorted(only_a | only_b)}"
    return None


def _symbols(a: Analysis, b: Analysis) -> str | None:
    return _wording.symbol_mismatch(a.wording, b.wording)


def number_mismatch(a: str, b: str) -> str | None:
    return _numbers(analyze(a), analyze(b))


def negation_mismatch(a: str, b: str) -> str | None:
    return _negation(analyze(a), analyze(b))


def question_kind_mismatch(a: str, b: str) -> str | None:
    return _question_kind(analyze(a), analyze(b))


def entity_mismatch(a: str, b: str) -> str | None:
    return _entities(analyze(a), analyze(b))


def symbol_mismatch(a: str, b: str) -> str | None:
    return _wording.symbol_mismatch(a, b)


Check = Callable[[Analysis, Analysis], str | None]
CHECKS: dict[str, Check] = {
    "numbers": _numbers,
    "negation": _negation,
    "question_kind": _question_kind,
    "entities": _entities,
}
"""The checks the learned model sees as features; a model file names which of them veto."""
ALWAYS: dict[str, Check] = {"symbols": _symbols}
"""Checks that veto in every model, whatever its file's list (not model inputs)."""


@dataclass(frozen=True, slots=True)
class Veto:
    check: str
    reason: str


def vetoes(a: str | Analysis, b: str | Analysis, enabled: tuple[str, ...] = tuple(CHECKS)) -> list[Veto]:
    """Every enabled check that rejects the pair, with its reason (`ALWAYS` checks are named, like
    the others, in `enabled`; `hard_vetoes` runs them all)."""
    a = analyze(a) if isinstance(a, str) else a
    b = analyze(b) if isinstance(b, str) else b
    found = []
    for name in enabled:
        reason = (CHECKS.get(name) or ALWAYS[name])(a, b)
        if reason is not None:
            found.append(Veto(name, reason))
    return found


def hard_vetoes(a: str | Analysis, b: str | Analysis, enabled: tuple[str, ...] = ()) -> list[Veto]:
    """The `ALWAYS` checks that reject the pair, then the `enabled` ones (a model file's list)."""
    return vetoes(a, b, (*ALWAYS, *(name for name in enabled if name not in ALWAYS)))
