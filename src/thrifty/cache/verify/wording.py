r"""A question's wording as the verifier compares it: its words (any script) and the symbols that are
part of a term, in order; case, spacing and punctuation that does not change the meaning are dropped.

"What is 3+3?" and "what is 3*3" have the same words and are different questions, as are "C++" and
"C#", "5 > 3" and "5 < 3", "-5" and "5": an operator, a sign, a currency or unit sign or any other
symbol is kept. What is dropped: sentence punctuation (. , ; : ? !), quotes and apostrophes, a hyphen
joining words ("e-mail", "COVID-19", "10-year-old"), markdown marks (`*` and `_` in pairs around
words, as in **bold** or _this_, or standing alone as a bullet or footnote mark; between two operands,
as in 3*3, 3 * 3 or my_var, and on one side of a word, as in char *p or *args, they are kept), a
backslash escaping punctuation (\?), and
brackets — unless the text also has a symbol, since in "(3+3)*2" the brackets group the terms.
Ambiguous marks count as meaningful: calling two different questions the same serves a wrong answer,
calling two equal ones different only costs a hit.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_DASHES = frozenset("-‐‑‒–—―")
_BRACKETS = frozenset("()[]{}")
_QUOTES = frozenset("`´")  # accents typed as apostrophes or quotes (don´t, `word`): symbols by category
# punctuation (Unicode category P) that is part of a term: C#, 50%, R&D, a*b, km/h, user@host, my_var
_TERM_PUNCTUATION = frozenset("#%&@/\\§†‡′″·")
_MARKDOWN = frozenset("*_")  # operators (3*3, my_var) between operands; emphasis, bullets otherwise
_EMPHASIS = re.compile(
    r"(?<![\w*])(\*+)(?=[^\s*])(?:[^\n]{0,200}?[^\s*])?\1(?![\w*])"
    r"|(?<![\w_])(_+)(?=[^\s_])(?:[^\n]{0,200}?[^\s_])?\2(?![\w_])"
)
"""Markdown emphasis: a run of `*` or `_` opening on a word and the same run closing on one, within a
line (and 200 characters: the search stays linear in the text's length)."""
_WORD, _SPACE, _SYMBOL, _BRACKET = range(4)


@dataclass(frozen=True, slots=True)
class Wording:
    terms: tuple[str, ...]
    """Words (lower-cased, NFC) and meaningful symbols, in order."""
    words: tuple[str, ...]
    """The words alone."""


_PIECE = re.compile(r"[^\W_]+|\s+|\*+|_+|.", re.DOTALL)
"""A run of letters and digits, of spaces, of `*` or of `_`, or one other character."""


_PLAIN = re.compile(r"""[^\w\s.,;:?!'"()\[\]{}]|_|(?<!\d)[.,](?=\d)|(?<=\d)!""")
"""What only the full tokenisation reads: a symbol, a mark, `_`, a leading decimal point, a factorial."""
_PLAIN_WORD = re.compile(r"(?:[^\W_]|(?<=\d)[.,](?=\d))+")


def wording(text: str) -> Wording:
    text = unicodedata.normalize("NFC", text).lower().replace("’", "'")
    if _PLAIN.search(text) is None:  # words and sentence punctuation only (most questions): the words
        words = tuple(_PLAIN_WORD.findall(text))
        return Wording(words, words)
    return _tokenised(text)


def _tokenised(text: str) -> Wording:
    terms: list[str] = []
    words: list[str] = []
    brackets: list[int] = []  # where brackets sit in `terms`: dropped unless the text has a symbol
    has_symbol = False
    word_start: int | None = None
    emphasis = _emphasis_marks(text) if "*" in text or "_" in text else frozenset()
    for piece in _PIECE.finditer(text):
        i, ch = piece.start(), piece.group()[0]
        if i in emphasis:
            kind = _SPACE
        elif ch in _MARKDOWN:
            kind = _SYMBOL if _between_operands(text, i, piece.end()) else _SPACE
        else:
            kind = _WORD if ch.isalnum() else _kind(text, i, ch)
        if kind == _WORD:
            word_start = i if word_start is None else word_start
            continue
        if word_start is not None:
            words.append(text[word_start:i])
            terms.append(words[-1])
            word_start = None
        if kind == _SYMBOL:
            terms.append(piece.group())
            has_symbol = True
        elif kind == _BRACKET:
            brackets.append(len(terms))
            terms.append(ch)
    if word_start is not None:
        words.append(text[word_start:])
        terms.append(words[-1])
    if brackets and not has_symbol:
        dropped = set(brackets)
        terms = [t for i, t in enumerate(terms) if i not in dropped]
    return Wording(tuple(terms), tuple(words))


def _kind(text: str, i: int, ch: str) -> int:
    if ch.isalnum():
        return _WORD
    category = unicodedata.category(ch)
    if category[0] == "M":  # a combining mark belongs to its letter (Devanagari vowel signs, accents)
        return _WORD
    if ch.isspace() or category[0] in "CZ":
        return _SPACE
    before = text[i - 1] if i > 0 else " "
    after = text[i + 1] if i + 1 < len(text) else " "
    if ch in ".," and after.isdigit():  # inside a number (3.5, 20,000), or a leading decimal point (.5)
        return _WORD if before.isdigit() else _SYMBOL
    if ch in _DASHES:  # a minus or a sign before a number; otherwise a hyphen or a dash between words
        return _SYMBOL if _next_visible(text, i).isdigit() and not before.isalpha() else _SPACE
    if ch == "!":  # after a number: a factorial
        return _SYMBOL if before.isdigit() else _SPACE
    if ch in _BRACKETS:
        return _BRACKET
    if ch in _QUOTES:
        return _SPACE
    if ch == "\\" and unicodedata.category(after)[0] == "P" and after not in _TERM_PUNCTUATION:
        return _SPACE  # an escape: "\?" is "?"
    if category[0] == "P" and ch not in _TERM_PUNCTUATION:
        return _SPACE
    return _SYMBOL  # math, currency and other symbols (+ < = > ^ | ~ $ € ±), emoji, term punctuation


def _emphasis_marks(text: str) -> frozenset[int]:
    """Where the `*` / `_` runs of markdown emphasis pairs start."""
    marks: set[int] = set()
    for m in _EMPHASIS.finditer(text):
        width = len(m.group(1) or m.group(2))
        marks.update((m.start(), m.end() - width))
    return frozenset(marks)


def _next_visible(text: str, i: int) -> str:
    """The first character after `i` that is not a space (" " at the end)."""
    j = i + 1
    while j < len(text) and text[j].isspace():
        j += 1
    return text[j] if j < len(text) else " "


def _previous_visible(text: str, i: int) -> str:
    """The last character before `i` that is not a space (" " at the start)."""
    j = i - 1
    while j >= 0 and text[j].isspace():
        j -= 1
    return text[j] if j >= 0 else " "


def _between_operands(text: str, start: int, end: int) -> bool:
    """Whether the run of `*` or `_` in text[start:end] is part of a term: touching an operand (3*3,
    my_var, 2**8, and on one side only char *p or *args; the pairs of markdown emphasis are found
    before), or spaced from two (3 * 3). Spaced, with no operand on a side, it is a bullet or a
    footnote mark."""
    before = text[start - 1] if start > 0 else " "
    after = text[end] if end < len(text) else " "
    if _operand(before, "left") or _operand(after, "right"):
        return True
    if not (before.isspace() and after.isspace()):
        return False
    left, right = _previous_visible(text, start), _next_visible(text, end - 1)
    return _operand(left, "left") and _operand(right, "right")


def _operand(ch: str, side: str) -> bool:
    """Whether `ch`, on that side of an operator, can end (left) or start (right) an operand."""
    return ch.isalnum() or ch in (")]}" if side == "left" else "([{-+.$")


def same_wording(a: str | Wording, b: str | Wording) -> bool:
    """The same words and meaningful symbols in the same order (see the module's docstring)."""
    left = wording(a) if isinstance(a, str) else a
    right = wording(b) if isinstance(b, str) else b
    return bool(left.words) and left.terms == right.terms


def symbol_mismatch(a: str | Wording, b: str | Wording) -> str | None:
    """The same words, but a symbol differs: "3+3" / "3*3", "C++" / "C#", "-5" / "5"."""
    left = wording(a) if isinstance(a, str) else a
    right = wording(b) if isinstance(b, str) else b
    if left.words != right.words or left.terms == right.terms:
        return None
    return f"symbols differ: {_symbols(left)} / {_symbols(right)}"


def _symbols(w: Wording) -> str:
    words = set(w.words)
    return "".join(t for t in w.terms if t not in words) or "none"
