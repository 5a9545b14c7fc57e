"""Splits prompt text into blocks: fenced code, tables, paragraphs and the blank-line gaps between them.

The split is lossless: `"".join(b.text for b in split_blocks(text)) == text` for every text. Fenced code
(``` or ~~~, closed by a fence of the same character at least as long; an unclosed fence runs to the end)
and markdown tables (consecutive lines starting with `|`) are atomic: nothing downstream ever looks
inside them except to compact a fence that holds valid JSON.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

BlockKind = Literal["fence", "table", "para", "gap"]

_FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})([^\n]*)$")
_CODE_LINE_END = re.compile(r"[{;(\[]\s*$")
_CODE_LINE_START = re.compile(
    r"^(?:def |class |import |from \S+ import |#include|return\b|if\b.*:$|for\b.*:$|while\b.*:$|"
    r"function\b|const |let |var |public |private |@\w+)"
)
_ALIGN_RUN = re.compile(r"(?<=[^\s.!?]) {2,}(?=\S)")
"""A run of spaces inside a line, not after a sentence end: in a multi-line paragraph, column padding."""


@dataclass(slots=True)
class Block:
    kind: BlockKind
    text: str
    """The block's exact text, its line endings included."""
    info: str = ""
    """For fences: the info string after the opening fence (e.g. `json`, `python`)."""

    @property
    def verbatim(self) -> bool:
        """True when whitespace inside may carry meaning (code, fixed-width columns): such blocks are
        never re-spaced."""
        if self.kind == "fence":
            return True
        if self.kind != "para":
            return False
        lines = self.text.splitlines()
        if len(lines) > 1 and any(_ALIGN_RUN.search(line) for line in lines):
            return True
        for line in lines:
            if not line.strip():
                continue
            if line[0] in " \t" or "\t" in line:
                return True
            if _CODE_LINE_START.match(line) or _CODE_LINE_END.search(line):
                return True
        return False


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _fence_end(lines: list[str], start: int, marker: str) -> int:
    """Index one past the closing fence line (or len(lines) when the fence never closes)."""
    char, size = marker[0], len(marker)
    for i in range(start + 1, len(lines)):
        stripped = lines[i].strip()
        if stripped and set(stripped) == {char} and len(stripped) >= size and lines[i][:4].strip():
            return i + 1
    return len(lines)


def _is_table_line(line: str) -> bool:
    return line.lstrip(" ").startswith("|")


def split_blocks(text: str) -> list[Block]:
    """The blocks of `text` in order; joining their texts gives `text` back exactly."""
    lines = _lines(text)
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE_OPEN.match(line.rstrip("\r\n"))
        if fence:
            end = _fence_end(lines, i, fence.group(1))
            blocks.append(Block("fence", "".join(lines[i:end]), fence.group(2).strip()))
            i = end
            continue
        kind: BlockKind
        if not line.strip():
            kind = "gap"
        elif _is_table_line(line):
            kind = "table"
        else:
            kind = "para"
        j = i + 1
        while j < len(lines) and _same_run(kind, lines[j]):
            j += 1
        blocks.append(Block(kind, "".join(lines[i:j])))
        i = j
    return blocks


def _same_run(kind: BlockKind, line: str) -> bool:
    if _FENCE_OPEN.match(line.rstrip("\r\n")):
        return False
    if kind == "gap":
        return not line.strip()
    if kind == "table":
        return bool(line.strip()) and _is_table_line(line)
    return bool(line.strip()) and not _is_table_line(line)


def join_blocks(blocks: list[Block]) -> str:
    return "".join(b.text for b in blocks)
