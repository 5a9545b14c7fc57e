"""Lossless normalisation: fewer tokens, same meaning.

What it does, block by block (blocks as `thrifty.compress.blocks` splits them):

- prose paragraphs: runs of spaces inside a line become one space (never inside quotes or backticks,
  never next to a digit: `1 234  567` is two numbers), trailing spaces go; runs of blank lines become
  one blank line;
- JSON: a valid JSON object/array that starts a line (in prose, in an indented block, in a fenced
  block holding only JSON, or as a whole tool result) loses the whitespace outside its strings — the
  text is not re-serialised, so key order, duplicate keys and number spellings stay exactly as written;
- tables: padding next to the `|` cell borders collapses (and runs inside a cell, unless next to a
  digit), `|-------|` separators shrink to `|---|`.

What it never does: drop any text, touch a fenced code block (other than one holding only valid JSON),
re-space any paragraph that looks like code (an indented line, a tab, a line starting like
`def`/`class`/`import` or ending in `{`, `;`, `(`, `[`) or like fixed-width columns (a multi-line
paragraph with a space run inside a line), or change the blank lines next to such a paragraph — so
Python indentation, aligned columns and whitespace inside strings survive. Each message's output
depends only on that message, so prefixes stay byte-identical.

Duplicate removal is **not** part of the lossless default: repetition can carry meaning (a step done
twice, two documents that are identical, a question asked again after an error). With `dedupe=True`
(opt-in) an exact duplicate block (prose or table, at least `dedupe_min_chars` long) is dropped after
its first occurrence *in the same user message* — never across messages, never in another role, never
the last block of a text (the question), so no message or text part is ever emptied.
"""

from __future__ import annotations

import json
import re

from thrifty.compress.base import Budget, CompressionReport, Message, TokenCache, map_text, with_messages
from thrifty.compress.blocks import Block, join_blocks, split_blocks
from thrifty.types import Body

_JSON_START = re.compile(r"^[ \t]*([\[{])", re.MULTILINE)
_JSON_WS = re.compile(r'("(?:[^"\\\n]|\\.)*")|\s+')
_SPACE_RUN = re.compile(r"""("[^"\n]*"|'[^'\n]*'|`[^`\n]*`)|(?<=[^\s\d]) {2,}(?=[^\s\d])""")
_TABLE_PAD = re.compile(r"(?<=\|) {2,}| {2,}(?=\|)|(?<=[^\s\d]) {2,}(?=[^\s\d])")
_TRAILING = re.compile(r"[ \t]+(?=\r?\n|$)")
_TABLE_RULE = re.compile(r"-{4,}")
_DECODER = json.JSONDecoder()


def minify_json(text: str) -> str:
    """Valid JSON text without the whitespace outside its strings."""
    return _JSON_WS.sub(lambda m: m.group(1) or "", text)


def json_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every valid, non-empty JSON object/array in `text` that starts a line and ends
    one (only whitespace after it on its last line). Extraction keeps each such span whole."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for match in _JSON_START.finditer(text):
        start = match.start(1)
        if start < pos:
            continue
        try:
            value, end = _DECODER.raw_decode(text, start)
        except ValueError:
            continue
        newline = text.find("\n", end)
        rest = text[end : newline if newline != -1 else len(text)]
        if not isinstance(value, dict | list) or not value or rest.strip():
            continue
        spans.append((start, end))
        pos = end
    return spans


def compact_json_spans(text: str) -> str:
    """Minify every valid JSON object/array in `text` that starts a line and ends one."""
    spans = json_spans(text)
    if not spans:
        return text
    out: list[str] = []
    pos = 0
    for start, end in spans:
        out.append(text[pos:start])
        out.append(minify_json(text[start:end]))
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _respace(text: str) -> str:
    text = _TRAILING.sub("", text)
    return _SPACE_RUN.sub(lambda m: m.group(1) or " ", text)


def _normalize_table(text: str) -> str:
    lines = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        ending = line[len(body) :]
        indent = body[: len(body) - len(body.lstrip(" "))]
        cells = _TABLE_PAD.sub(" ", body.strip())
        if set(cells) <= set("|-: "):
            cells = _TABLE_RULE.sub("---", cells)
        lines.append(indent + cells + ending)
    return "".join(lines)


def _fence_json(block: Block) -> str:
    lines = block.text.splitlines(keepends=True)
    if len(lines) < 3 or block.info.lower() not in ("", "json"):
        return block.text
    inner = "".join(lines[1:-1])
    try:
        value = json.loads(inner)
    except ValueError:
        return block.text
    if not isinstance(value, dict | list):
        return block.text
    return lines[0] + minify_json(inner.strip()) + "\n" + lines[-1]


class Normalizer:
    """The lossless compressor (on by default). `dedupe=True` adds the opt-in, not lossless, removal of
    duplicate blocks inside one user message (see the module docstring)."""

    name = "normalize"

    def __init__(self, tokens: TokenCache, *, dedupe: bool = False, dedupe_min_chars: int = 64) -> None:
        self.tokens = tokens
        self.dedupe = dedupe
        self.dedupe_min_chars = dedupe_min_chars

    def _block(self, block: Block) -> str:
        if block.kind == "fence":
            return _fence_json(block)
        if block.kind == "table":
            return _normalize_table(block.text)
        if block.kind == "para":
            text = compact_json_spans(block.text)
            return text if Block("para", text).verbatim else _respace(text)
        return block.text

    def normalize_text(self, text: str, seen: set[str] | None = None) -> str:
        """Normalised `text`. With `seen` (the blocks met earlier in the same message; updated), a
        duplicate block is dropped — never the text's last block, so the text never empties."""
        if not text.strip():
            return text
        blocks = split_blocks(text)
        last = max(i for i, b in enumerate(blocks) if b.kind != "gap")
        kept: list[Block] = []
        for i, block in enumerate(blocks):
            if block.kind == "gap":
                kept.append(block)
                continue
            new = Block(block.kind, self._block(block), block.info)
            key = new.text.strip()
            if seen is not None and not new.verbatim and len(key) >= self.dedupe_min_chars:
                if key in seen and i != last:
                    continue
                seen.add(key)
            kept.append(new)
        return join_blocks(_tidy_gaps(kept))

    def _message(self, message: Message) -> Message:
        if not (self.dedupe and message.get("role") == "user"):
            return map_text(message, self.normalize_text)
        seen: set[str] = set()  # one user message's blocks: nothing is compared across messages
        return map_text(message, lambda t: self.normalize_text(t, seen))

    def run(self, body: Body) -> tuple[Body, CompressionReport]:
        messages: list[Message] = body.get("messages") or []
        out = [self._message(m) for m in messages]
        before = self.tokens.messages(messages)
        if all(a is b for a, b in zip(out, messages, strict=True)):
            return body, CompressionReport(self.name, before, before)
        after = self.tokens.messages(out)
        return with_messages(body, out), CompressionReport(self.name, before, after)

    async def compress(self, body: Body, budget: Budget) -> tuple[Body, CompressionReport]:
        return self.run(body)


def _tidy_gaps(blocks: list[Block]) -> list[Block]:
    """Drop leading/trailing/doubled gaps; shrink gaps between prose blocks to one blank line."""
    out: list[Block] = []
    for block in blocks:
        if block.kind == "gap" and (not out or out[-1].kind == "gap"):
            continue
        out.append(block)
    while out and out[-1].kind == "gap":
        out.pop()
    for i, block in enumerate(out):
        if block.kind != "gap":
            continue
        prev, nxt = out[i - 1], out[i + 1]
        if not _unfenced_code(prev) and not _unfenced_code(nxt):
            out[i] = Block("gap", "\n")
    if out and out[-1].kind != "fence" and not out[-1].verbatim:
        out[-1] = Block(out[-1].kind, out[-1].text.rstrip("\n"), out[-1].info)
    return out


def _unfenced_code(block: Block) -> bool:
    """Blank lines next to unfenced code may sit inside a multi-line string: they are kept."""
    return block.kind == "para" and block.verbatim
