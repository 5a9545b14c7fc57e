"""Splits a prose paragraph into sentences (or list items), keeping every character.

Each piece carries the whitespace that followed it, so joining consecutive pieces gives the original
text and joining a selection gives readable text. A boundary is end punctuation (`.`, `!`, `?`, maybe
closed by a quote or bracket) followed by whitespace and a capital, digit, quote or bracket — except
after common abbreviations (e.g., i.e., et al., Fig., Dr., vs., …) and single-letter initials. A
paragraph whose lines are mostly bullets or numbered items splits into items instead. Pieces longer
than `max_words` are cut at clause punctuation (`;`, `:`, `, `) so no single unit swallows a budget.
"""

from __future__ import annotations

import re

_BOUNDARY = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")
_ABBREV = re.compile(
    r"(?:\b(?:e\.g|i\.e|et al|etc|fig|figs|eq|eqs|ref|refs|no|nos|vol|pp|approx|ca|cf|vs|dr|mr|mrs|ms|"
    r"prof|st|jr|sr|inc|ltd|co|corp|dept|univ|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec)|"
    r"\b[A-Z])\.[\"'”’)\]]*$",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^[ \t]*(?:[-*+•]|\d{1,3}[.)])[ \t]+")
_CLAUSE = re.compile(r"(?<=[;:,])\s+")


def split_sentences(text: str, max_words: int = 60) -> list[str]:
    """Pieces of `text` whose concatenation is `text`."""
    lines = text.splitlines(keepends=True)
    if len(lines) >= 2 and sum(bool(_BULLET.match(line)) for line in lines) * 2 >= len(lines):
        pieces = _items(lines)
    else:
        pieces = _sentences(text)
    out: list[str] = []
    for piece in pieces:
        out.extend(_cap(piece, max_words))
    return out


def _items(lines: list[str]) -> list[str]:
    items: list[str] = []
    for line in lines:
        if items and not _BULLET.match(line):
            items[-1] += line
        else:
            items.append(line)
    return items


def _sentences(text: str) -> list[str]:
    pieces: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        candidate = text[start : match.end()]
        if _ABBREV.search(text, max(start, match.start() - 12), match.start()):
            continue
        pieces.append(candidate)
        start = match.end()
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def _cap(piece: str, max_words: int) -> list[str]:
    if piece.count(" ") < max_words:
        return [piece]
    out: list[str] = []
    start = 0
    for match in _CLAUSE.finditer(piece):
        if piece.count(" ", start, match.end()) >= max_words // 2:
            out.append(piece[start : match.end()])
            start = match.end()
    out.append(piece[start:])
    return [p for p in out if p]
