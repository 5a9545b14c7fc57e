"""Finds the context inside a user message and cuts it into units that extraction may keep or drop.

A message is read as a sequence of pieces: text kept verbatim (instructions, the question, markup) and
`Context` pieces (passages) made of units. Three ways to mark context, tried in this order:

1. **XML-style tags** — `<document>`, `<doc>`, `<context>`, `<passage>`, `<source>`, `<article>`,
   `<search_result(s)>`, `<result>`, `<snippet>`, `<chunk>`, `<excerpt>`, `<reference>` (any
   attributes, any case). The innermost tagged spans are contexts; tags and everything outside stay.
2. **Marker lines** — a line starting with `Document 1:`, `Passage:`, `Source [2] -`, `Context:`,
   `[3]`, `## Document 4` and the like opens a context section that runs to the next marker or to a
   question line (`Question:`, `Query:`, `Q:`, `Task:`). A short rest of the marker line (≤ 12 words,
   more lines below) is the section's title and stays with the marker. With no question line, the last
   block of the last section is taken as the question.
3. **Implicit** — a message of three or more blank-line-separated blocks: the last block is the
   question, the first one stays too when it is a lead-in (`_lead_in`: it ends with `:` as in "Read
   this:", asks something, or is a short instruction of at most two sentences and 40 words), the
   blocks between are context.

Inside a context: fenced code blocks, tables and JSON the client sent (each object/array that
`normalize.json_spans` finds in a paragraph: it starts a line and ends one, however long, pretty-printed
or compacted) are one unit each, never cut inside; a list paragraph gives one unit per item; prose gives
one unit per sentence (text without sentence or clause punctuation: windows of words, see
`sentences`); a markdown heading line is a heading unit kept only when something of its section is
kept. The question (the question line's section, else the
last verbatim piece) is what relevance is measured against — together with the text in front of the
first context when that asks something ("Which city …, according to the text below?"); of the lead and
the question, the parts that ask are the query (all of them when none does). A message whose query
asks nothing (`Segmented.asks`: no question line, no question mark) is not cut at all, and neither is
one whose instructions ask for something done to the whole text (`Segmented.whole_text`: proofread,
translate, summarise, rewrite, "the full letter", "every paragraph" …): extraction is for questions
answered by a part of the context, and would hand such a task only the part that looks relevant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from thrifty.compress.blocks import split_blocks
from thrifty.compress.normalize import json_spans
from thrifty.compress.sentences import split_sentences

_TAGS = (
    r"documents?|docs?|context|passages?|sources?|articles?|search_results?|results?|snippets?|chunks?|"
    r"excerpts?|references?"
)
_OPEN = re.compile(rf"<({_TAGS})(?:\s[^<>]*)?>", re.IGNORECASE)
_MARKER = re.compile(
    r"^[ \t]*(?:#{1,6}[ \t]*)?(?:\[\d{1,3}\][ \t]*[:.\-–—]?|"
    r"(?:documents?|docs?|passages?|sources?|context|articles?|excerpts?|chunks?|snippets?|"
    r"references?|search results?)(?:[ \t]*(?:#?\d{1,3}|\[\d{1,3}\]|\(\d{1,3}\)))?[ \t]*"
    r"(?:\([^)\n]{0,80}\))?[ \t]*(?:[:\-–—]|$))",
    re.IGNORECASE | re.MULTILINE,
)
_QUESTION = re.compile(
    r"^[ \t]*(?:#{1,6}[ \t]*)?(?:question|query|q|user question|user query|task)[ \t]*\d{0,3}[ \t]*"
    r"[:?\-–—]",
    re.IGNORECASE | re.MULTILINE,
)
_ANY_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
_HEADING = re.compile(r"^#{1,6}[ \t]+\S")
_OBJECT = (
    r"(?:text|letter|document|doc|article|essay|e-?mail|story|code|file|script|version|passage|"
    r"transcript|report|paper|message|draft|post|contents?|list|page|chapter|book|contract|context|"
    r"thing|notes?|summary|translation|output|data|table|json)"
)
_PARTS = (
    r"(?:paragraph|sentence|line|section|word|item|record|entry|entries|row|page|chapter|part|mention|"
    r"occurrence|instance)s?"
)
_ASKING = (
    r"(?:^|[.!?:;\n]\s*|\bplease\s+|\bkindly\s+|\b(?:can|could|would|will)\s+you\s+(?:please\s+)?|"
    r"\bhelp\s+me\s+|\b(?:want|need|like)\s+you\s+to\s+)"
)
_THIS = r"(?:the|this|that|these|those|my|our|your|it|them|everything|all|each|every|into|following)"
_WHOLE = re.compile(
    "|".join(
        (
            r"\b(?:proof-?read|copy-?edit|re-?write|rephrase|paraphrase|reword|summari[sz]|transcrib|redact|"
            r"anonymi[sz])\w*",
            r"\btl;?dr\b|\bcorrected\b|\bgist\b|\brecap\b|\bverbatim\b|\bin\s+full\b|\bas\s+a\s+whole\b",
            r"\bword[\s-]for[\s-]word\b|\bline[\s-]by[\s-]line\b",
            rf"{_ASKING}(?:translate|condense|shorten|simplify|polish|edit|improve|reformat|format|convert|"
            rf"clean\s+up|tidy\s+up|restructure|fix|correct)\s+{_THIS}\b",
            rf"{_ASKING}(?:check|review|go\s+through|look\s+over|read\s+through)\s+(?:my|our|this|these|it|them)\b",
            r"\b(?:give|write|provide|make|produce|need|want|create|draft)\s+(?:me\s+|us\s+)?an?\s+"
            r"(?:\w+\s+)?(?:summary|overview|outline|abstract|synopsis|translation)\b",
            r"\b(?:summary|overview|outline|synopsis|translation)\s+of\s+(?:the|this|that|these|my|our|it)\b",
            r"\b(?:main|key)\s+(?:points|takeaways|ideas|findings|arguments|themes)\b",
            r"\b(?:fix|correct|check)\s+(?:\w+\s+){0,2}?(?:grammar|spelling|typos?|punctuation|mistakes|"
            r"errors|wording|style)\b",
            rf"\b(?:the|this|my|your|our|a)\s+(?:full|whole|entire|complete)\s+(?:[\w-]+\s+){{0,2}}?{_OBJECT}\b",
            rf"\b(?:every|each)\s+(?:single\s+)?{_PARTS}\b|\ball\s+(?:of\s+)?(?:the\s+|my\s+|these\s+)?{_PARTS}\b",
        )
    ),
    re.IGNORECASE | re.MULTILINE,
)
"""Asks for something done to the whole text (transform, summarise, go through all of it). Phrases a
RAG instruction uses ("use all the documents", "review the context and answer") are left out: a false
hit only costs the saving, a miss costs the answer, but a hit on every RAG prompt costs all of it."""
_TITLE_WORDS = 12
_LEAD_WORDS = 40
_LEAD_SENTENCES = 2


@dataclass(slots=True)
class Unit:
    text: str
    """Exact text, with the whitespace that followed it."""
    group: int
    """Paragraph/block number: kept units of one group are joined directly, groups by a blank line."""
    section: int
    """Passage or sub-section the unit belongs to (for section relevance and headings)."""
    heading: bool = False
    first: bool = False
    """First content unit of its section (often names the section's subject)."""


@dataclass(slots=True)
class Context:
    head: str
    """Markup kept in front of the content when any unit is kept (opening tag, marker line)."""
    units: list[Unit]
    tail: str = ""
    lead: str = ""
    """Whitespace the content started with (kept around the kept units, like head and tail)."""
    trail: str = ""


@dataclass(slots=True)
class Segmented:
    pieces: list[str | Context]
    question: str

    @property
    def contexts(self) -> list[Context]:
        return [p for p in self.pieces if isinstance(p, Context)]

    @property
    def asks(self) -> bool:
        """Whether the message carries its question: a question line (`Question:` …) or a question
        mark in the text taken as the question. A message of passages whose question comes in a later
        message has neither; cutting it against its own last block would be cutting blind."""
        return bool(_QUESTION.search(self.question)) or "?" in self.question or "？" in self.question

    @property
    def whole_text(self) -> bool:
        """Whether the text kept verbatim (instructions, question) asks for something done to the whole
        text — proofread, translate, summarise, rewrite, "return the full letter", "every paragraph".
        Such a message is not cut: the answer needs all of the context, not its most relevant part."""
        verbatim = " ".join(_ANY_TAG.sub(" ", p) for p in self.pieces if isinstance(p, str))
        return wants_whole_text(verbatim)


def wants_whole_text(text: str) -> bool:
    """`text` asks for something done to a whole text rather than a question answered by a part."""
    return _WHOLE.search(text) is not None


@dataclass(slots=True)
class _Numbers:
    group: int = 0
    section: int = 0


@dataclass(slots=True)
class _Builder:
    numbers: _Numbers = field(default_factory=_Numbers)

    def context(self, head: str, body: str, tail: str = "") -> Context:
        core = body.strip()
        if not core:
            return Context(head, [], tail, body, "")
        start = body.index(core[0])
        lead, trail = body[:start], body[start + len(core) :]
        return Context(head, self.units(core), tail, lead, trail)

    def units(self, body: str) -> list[Unit]:
        """Cut one context body into units (sentences, list items, whole code blocks and tables)."""
        n = self.numbers
        n.section += 1
        out: list[Unit] = []
        first = True
        for block in split_blocks(body):
            if block.kind == "gap":
                continue
            n.group += 1
            if block.kind == "para" and _HEADING.match(block.text) and "\n" not in block.text.rstrip():
                n.section += 1
                out.append(Unit(block.text, n.group, n.section, heading=True))
                first = True
                continue
            pieces = [block.text] if block.kind != "para" else _para_units(block.text)
            for piece in pieces:
                out.append(Unit(piece, n.group, n.section, first=first))
                first = False
        return out


def _para_units(text: str) -> list[str]:
    """A paragraph's units: each JSON span (with the rest of its line) whole, the prose around it by
    sentences."""
    out: list[str] = []
    pos = 0
    for start, end in json_spans(text):
        newline = text.find("\n", end)
        stop = len(text) if newline == -1 else newline + 1
        if start > pos:
            out.extend(split_sentences(text[pos:start]))
        out.append(text[start:stop])
        pos = stop
    if pos < len(text):
        out.extend(split_sentences(text[pos:]))
    return out


def segment(text: str) -> Segmented:
    """Split a user message into verbatim pieces and contexts (see the module docstring)."""
    builder = _Builder()
    leaves = _xml_leaves(text, 0, len(text))
    if leaves:
        return _with_lead(_from_tags(text, leaves, builder))
    markers = list(_MARKER.finditer(text))
    if markers:
        return _with_lead(_from_markers(text, markers, builder))
    return _implicit(text, builder)


def _asks(text: str) -> bool:
    return bool(_QUESTION.search(text)) or "?" in text or "？" in text


def _query(parts: list[str]) -> str:
    """The text relevance is measured against: the parts that ask, else all of them."""
    parts = [p for p in parts if p.strip()]
    asking = [p for p in parts if _asks(p)]
    return "\n\n".join(p.strip() for p in asking or parts)


def _with_lead(seg: Segmented) -> Segmented:
    """Add the text before the first context to the query when it asks something."""
    lead = seg.pieces[0] if seg.pieces and isinstance(seg.pieces[0], str) else ""
    lead = _ANY_TAG.sub("", lead).strip()
    if not lead or not _asks(lead) or lead in seg.question:
        return seg
    return Segmented(seg.pieces, _query([lead, seg.question]))


def _lead_in(text: str) -> bool:
    """A first block that instructs or asks rather than informs: kept verbatim, never cut."""
    core = text.strip()
    if core.endswith(":") or _asks(core):
        return True
    return len(core.split()) <= _LEAD_WORDS and len(split_sentences(core)) <= _LEAD_SENTENCES


def _xml_leaves(text: str, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(open start, content start, content end, close end) of the innermost known tags."""
    out: list[tuple[int, int, int, int]] = []
    pos = start
    while True:
        opening = _OPEN.search(text, pos, end)
        if opening is None:
            return out
        close = re.compile(rf"</{re.escape(opening.group(1))}\s*>", re.IGNORECASE)
        closing = close.search(text, opening.end(), end)
        if closing is None:
            pos = opening.end()
            continue
        inner = _xml_leaves(text, opening.end(), closing.start())
        out.extend(inner or [(opening.start(), opening.end(), closing.start(), closing.end())])
        pos = closing.end()


def _from_tags(text: str, leaves: list[tuple[int, int, int, int]], builder: _Builder) -> Segmented:
    pieces: list[str | Context] = []
    pos = 0
    for open_start, content_start, content_end, close_end in leaves:
        pieces.append(text[pos:open_start])
        pieces.append(
            builder.context(
                text[open_start:content_start],
                text[content_start:content_end],
                text[content_end:close_end],
            )
        )
        pos = close_end
    pieces.append(text[pos:])
    kept = _ANY_TAG.sub("", "".join(p for p in pieces if isinstance(p, str)))
    return Segmented([p for p in pieces if p != ""], _question(kept))


def _from_markers(text: str, markers: list[re.Match[str]], builder: _Builder) -> Segmented:
    questions = list(_QUESTION.finditer(text))
    bounds = sorted(
        [(m.start(), "context", m) for m in markers] + [(q.start(), "question", q) for q in questions]
    )
    pieces: list[str | Context] = [text[: bounds[0][0]]]
    asked = ""  # the last question line's section (up to the next marker)
    for i, (start, kind, match) in enumerate(bounds):
        end = bounds[i + 1][0] if i + 1 < len(bounds) else len(text)
        if kind == "question":
            pieces.append(text[start:end])
            asked = text[start:end]
            continue
        head_end = _head_end(text, match, end)
        body = text[head_end:end]
        trailing = ""
        if not questions and i == len(bounds) - 1:
            body, trailing = _split_last_block(body)
        pieces.append(builder.context(text[start:head_end], body))
        if trailing:
            pieces.append(trailing)
    question = asked or _question("".join(p for p in pieces[1:] if isinstance(p, str)))
    return Segmented([p for p in pieces if p != ""], question)


def _head_end(text: str, marker: re.Match[str], end: int) -> int:
    """End of a marker's head: the whole marker line when its rest is a short title, else the marker."""
    newline = text.find("\n", marker.end(), end)
    if newline == -1:
        return marker.end()
    rest = text[marker.end() : newline]
    has_more = bool(text[newline:end].strip())
    return newline + 1 if has_more and len(rest.split()) <= _TITLE_WORDS else marker.end()


def _split_last_block(body: str) -> tuple[str, str]:
    blocks = [b for b in split_blocks(body) if b.kind != "gap"]
    if len(blocks) < 2:
        return body, ""
    cut = body.rfind(blocks[-1].text)
    return body[:cut], body[cut:]


def _implicit(text: str, builder: _Builder) -> Segmented:
    blocks = split_blocks(text)
    content = [i for i, b in enumerate(blocks) if b.kind != "gap"]
    if len(content) < 3:
        return Segmented([text], text)
    first, last = content[0], content[-1]
    start = first + 1 if _lead_in(blocks[first].text) else first
    before = "".join(b.text for b in blocks[:start])
    body = "".join(b.text for b in blocks[start:last])
    after = "".join(b.text for b in blocks[last:])
    pieces = [p for p in (before, builder.context("", body), after) if p != ""]
    return Segmented(pieces, _query([before, after]) if before.strip() else after)


def _question(kept: str) -> str:
    found = list(_QUESTION.finditer(kept))
    if found:
        return kept[found[-1].start() :]
    blocks = [b.text for b in split_blocks(kept) if b.kind != "gap"]
    return blocks[-1] if blocks else kept
