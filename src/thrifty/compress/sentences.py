"""Splits a prose paragraph into sentences (or list items), keeping every character.

Each piece carries the whitespace that followed it, so joining consecutive pieces gives the original
text and joining a selection gives readable text. A boundary is end punctuation (`.`, `!`, `?`, maybe
closed by a quote or bracket) followed by whitespace and a capital, digit, quote or bracket — except
after common abbreviations (e.g., i.e., et al., Fig., Dr., vs., …) and single-letter initials. A
paragraph whose lines are mostly bullets or numbered items splits into items instead. Chinese and
Japanese full stops (`。！？`) end a sentence without any whitespace after them.

Pieces longer than `max_words` are cut at clause punctuation (`;`, `:`, `, `) so no single unit
swallows a budget; a part that is still longer than `2 × max_words` (text without punctuation, one huge
log line, a long list of lines) falls back to windows of about `max_words` words, cut at whitespace and
preferring a line end — never inside a word. Text without any whitespace stays one piece.
"""

from __future__ import annotations

import re

_BOUNDARY = re.compile(
    r"(?<=[.!?])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])|(?<=[。！？])[」』）”’\"')\]]*\s*(?=\S)"
)
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


def _words(text: str) -> int:
    """Roughly the words in `text` (whitespace gaps; cheap)."""
    return text.count(" ") + text.count("\n")


def _cap(piece: str, max_words: int) -> list[str]:
    if _words(piece) < max_words:
        return [piece]
    out: list[str] = []
    start = 0
    for match in _CLAUSE.finditer(piece):
        if piece.count(" ", start, match.end()) >= max_words // 2:
            out.append(piece[start : match.end()])
            start = match.end()
    out.append(piece[start:])
    capped: list[str] = []
    for part in out:
        if _words(part) >= 2 * max_words:
            capped.extend(_windows(part, max_words))
        elif part:
            capped.append(part)
    return capped


_TOKEN = re.compile(r"\s*\S+\s*")


def _windows(text: str, size: int) -> list[str]:
    """`text` cut at whitespace into pieces of at most `size` words, ending early at a line end once
    half full (the fallback for text with no usable sentence or clause boundary)."""
    out: list[str] = []
    start = 0
    count = 0
    for match in _TOKEN.finditer(text):
        count += 1
        if count >= size or (count >= size // 2 and "\n" in match.group().lstrip()):
            out.append(text[start : match.end()])
            start = match.end()
            count = 0
    if start < len(text):
        out.append(text[start:])
    return out
