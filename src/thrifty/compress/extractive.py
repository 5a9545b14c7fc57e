"""Extractive compression: keep the context units most relevant to the question, to a token budget.

Only the `Context` pieces that `thrifty.compress.segment` finds inside user messages are touched;
system/developer messages, instructions, markup and the question itself are never changed. Each user
message is compressed against its own question, so its output depends on itself alone (prefix rule).

Relevance of a unit (sentence, list item, code block, table) =
  BM25(unit, question)            normalised to [0, 1] over the context
+ `section` × BM25(its passage)   the passage as a whole is about the question
+ `first` if it opens its passage (it usually names the passage's subject)
+ `embed` × cosine(unit, question) with local MiniLM embeddings (optional; memoised by content)
then smoothed with `neighbor` × the best adjacent unit of the same paragraph (answers that span two
sentences). Units are picked greedily by relevance − `redundancy` × (max term-overlap cosine with what
is already picked) — MMR — while they fit the budget (a passage's marker/heading is charged with its
first unit), and are put back in their original order. MMR runs over pools of the `pool` most relevant
units at a time (all of them in any ordinary prompt), so a megabyte of context costs linear time.

Extraction must never make the prompt lose what the question is about, so a message is left whole
when it cannot be cut safely: its question is elsewhere (`Segmented.asks`), it asks for something done
to the whole text (`Segmented.whole_text`), no term of the question occurs in the context (nothing to
measure relevance by), or the cut would keep less than `min_fill` of the budget (the context is a few
units too big to fit, so almost everything would go). The single most relevant unit is always kept,
even when it alone is over the budget (a whole code block, table or JSON the question is about): the
result exceeds the budget only by that one unit, and is then that unit alone.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from thrifty.compress.base import Budget, CompressionReport, Message, TokenCache, map_text, with_messages
from thrifty.compress.lexical import BM25, Lexicon
from thrifty.compress.segment import Context, Segmented, Unit, segment
from thrifty.pricing.tokens import message_text
from thrifty.types import Body

if TYPE_CHECKING:
    import numpy as np

    from thrifty.compress.embedcache import EmbeddingCache


_NAME = re.compile(r"\b[A-Z][\w'’-]*(?:\s+[A-Z][\w'’-]*)*")


@dataclass(frozen=True, slots=True)
class Weights:
    section: float = 0.5
    first: float = 0.1
    neighbor: float = 0.3
    embed: float = 0.6
    title: int = 2
    """How many times a passage's title terms count in its section's text."""
    bridge: float = 0.5
    """Weight of passages matching names found in the top units (pseudo-relevance feedback)."""
    bridge_units: int = 3
    redundancy: float = 0.2
    pool: int = 2048
    """MMR compares units within pools of this many, taken in order of relevance."""
    min_fill: float = 0.2
    """A cut keeping less than this share of the budget leaves the message whole."""


@dataclass(slots=True)
class Extraction:
    text: str
    """The whole message text, contexts cut."""
    context_before: int
    context_after: int
    original_context: str = ""
    kept_context: str = ""


class Extractor:
    """The extractive compressor (off by default; a ratio and/or token budget per route)."""

    name = "extractive"

    def __init__(
        self,
        tokens: TokenCache,
        *,
        embeddings: EmbeddingCache | None = None,
        weights: Weights | None = None,
        min_context_tokens: int = 200,
        memo_size: int = 1024,
        max_message_chars: int | None = None,
    ) -> None:
        self.tokens = tokens
        self.max_message_chars = max_message_chars
        """A longer user message is left whole (its extraction would take too long)."""
        self.lexicon = Lexicon()
        self.embeddings = embeddings
        self.weights = weights or Weights()
        self.min_context_tokens = min_context_tokens
        self._memo: OrderedDict[tuple[str, Budget], Extraction] = OrderedDict()
        self.memo_size = memo_size

    # ---- one text

    def extract(self, text: str, budget: Budget) -> Extraction:
        """`text` with its contexts cut to the budget (memoised by text and budget)."""
        key = (text, budget)
        hit = self._memo.get(key)
        if hit is not None:
            self._memo.move_to_end(key)
            return hit
        result = self._extract(text, budget)
        self._memo[key] = result
        if len(self._memo) > self.memo_size:
            self._memo.popitem(last=False)
        return result

    def _extract(self, text: str, budget: Budget) -> Extraction:
        seg = segment(text)
        contexts = seg.contexts
        original = "\n\n".join(_context_text(c) for c in contexts)
        units = [u for c in contexts for u in c.units]
        before = sum(self.tokens.text(_context_text(c)) for c in contexts)
        whole = Extraction(text, before, before, original, original)
        target = budget.target(before)
        if not units or target is None or before <= target or before < self.min_context_tokens:
            return whole
        if not seg.asks or seg.whole_text:  # question elsewhere, or a task on the whole text
            return whole
        unit_terms = [self.lexicon.terms(u.text) for u in units]
        if not self._matches(seg, unit_terms):  # cutting blind
            return whole
        costs = [self.tokens.text(u.text) for u in units]
        markup = [self.tokens.text(c.head + c.tail) + 1 for c in contexts]
        keep, rel, top = self._select(seg, units, unit_terms, costs, markup, target)
        out, kept = self._assemble(seg, keep)
        after = sum(self.tokens.text(t) for t in kept)
        spare = sorted(keep - {top}, key=lambda i: (rel[i], i), reverse=True)  # least relevant last
        while after > target and spare:
            keep.discard(spare.pop())
            out, kept = self._assemble(seg, keep)
            after = sum(self.tokens.text(t) for t in kept)
        if after < self.weights.min_fill * target:  # nearly everything would go: keep it all
            return whole
        return Extraction(out, before, after, original, "\n\n".join(t for t in kept if t))

    def _matches(self, seg: Segmented, unit_terms: list[list[str]]) -> bool:
        """Whether any term of the question occurs in the context (a unit or a passage title)."""
        query = set(self.lexicon.terms(seg.question))
        if not query:
            return False
        heads = (t for c in seg.contexts for t in self.lexicon.terms(c.head))
        return any(not query.isdisjoint(ts) for ts in unit_terms) or not query.isdisjoint(heads)

    # ---- relevance and selection

    def relevance(self, seg: Segmented, units: list[Unit], unit_terms: list[list[str]]) -> list[float]:
        w = self.weights
        query = self.lexicon.terms(seg.question)
        scores = _unit_scale(BM25(unit_terms).scores(query))
        sections: dict[int, list[str]] = {}
        for ctx in seg.contexts:  # a passage's title (marker line, tag attributes) speaks for all of it
            if ctx.units:
                sections[ctx.units[0].section] = self.lexicon.terms(ctx.head) * w.title
        for u, t in zip(units, unit_terms, strict=True):
            sections.setdefault(u.section, []).extend(t)
        section_ids = list(sections)
        section_bm25 = BM25([sections[s] for s in section_ids])
        section_rel = dict(zip(section_ids, _unit_scale(section_bm25.scores(query)), strict=True))
        rel = [
            s + w.section * section_rel[u.section] + (w.first if u.first else 0.0)
            for s, u in zip(scores, units, strict=True)
        ]
        if self.embeddings is not None and w.embed:
            cos = self._cosines(seg.question, units)
            rel = [r + w.embed * c for r, c in zip(rel, cos, strict=True)]
        if w.bridge:
            bridged = self._bridge_terms(units, rel, set(query))
            hop = dict(zip(section_ids, _unit_scale(section_bm25.scores(bridged)), strict=True))
            rel = [r + w.bridge * hop[u.section] for r, u in zip(rel, units, strict=True)]
        return _smooth(rel, units, w.neighbor)

    def _bridge_terms(self, units: list[Unit], rel: list[float], query: set[str]) -> list[str]:
        """Names in the most relevant units that the question does not mention: the second hop of a
        question whose answer sits in a passage about something the first passage names."""
        top = sorted(range(len(units)), key=lambda i: -rel[i])[: self.weights.bridge_units]
        names = " ".join(" ".join(_NAME.findall(units[i].text)) for i in top)
        return [t for t in self.lexicon.terms(names) if t not in query]

    def _cosines(self, question: str, units: list[Unit]) -> list[float]:
        assert self.embeddings is not None
        vecs = self.embeddings.vectors([u.text.strip() for u in units] + [question.strip()])
        cos = vecs[:-1] @ vecs[-1]
        top = float(cos.max()) if len(cos) else 0.0
        return [max(float(c), 0.0) / top if top > 0 else 0.0 for c in cos]

    def _select(
        self,
        seg: Segmented,
        units: list[Unit],
        unit_terms: list[list[str]],
        costs: list[int],
        markup: list[int],
        target: int,
    ) -> tuple[set[int], list[float], int]:
        """The kept units, every unit's relevance, and the top unit (kept even over the budget)."""
        import numpy as np

        relevance = self.relevance(seg, units, unit_terms)
        rel = np.asarray(relevance, dtype=np.float64)
        cost = np.asarray(costs, dtype=np.float64)
        overhead = self._overheads(seg, units, costs, markup)
        content = np.asarray([not u.heading for u in units])
        top = int(np.where(content, rel, -np.inf).argmax())
        order = [int(i) for i in np.argsort(-rel, kind="stable") if content[i]]
        buckets = _buckets(unit_terms) if self.weights.redundancy else None
        keep: set[int] = set()
        paid: set[tuple[str, int]] = set()
        used = 0.0
        size = max(self.weights.pool, 1)
        for start in range(0, len(order), size):
            pool = sorted(order[start : start + size])  # in text order: ties go to the earlier unit
            sim = _Overlap([buckets[i] for i in pool]) if buckets is not None else None
            alive = np.ones(len(pool), dtype=bool)
            max_sim = np.zeros(len(pool))
            pool_rel = rel[pool]
            while alive.any():
                score = np.where(alive, pool_rel - self.weights.redundancy * max_sim, -np.inf)
                j = int(score.argmax())
                alive[j] = False
                i = pool[j]
                extra = sum(t for k, t in overhead[i] if k not in paid)
                if used + cost[i] + extra > target and i != top:
                    continue
                used += cost[i] + extra
                paid.update(k for k, _ in overhead[i])
                keep.add(i)
                if sim is not None:
                    np.maximum(max_sim, sim.row(j), out=max_sim)
        return keep, relevance, top

    def _overheads(
        self, seg: Segmented, units: list[Unit], costs: list[int], markup: list[int]
    ) -> list[list[tuple[tuple[str, int], int]]]:
        """Per unit: the once-per-passage costs its selection brings (marker/tags, section heading)."""
        headings = {u.section: i for i, u in enumerate(units) if u.heading}
        owner: list[int] = []
        for n, ctx in enumerate(seg.contexts):
            owner.extend([n] * len(ctx.units))
        out = []
        for i, u in enumerate(units):
            items = [(("ctx", owner[i]), markup[owner[i]])]
            if u.section in headings and headings[u.section] != i:
                h = headings[u.section]
                items.append((("head", h), costs[h]))
            out.append(items)
        return out

    # ---- output

    def _assemble(self, seg: Segmented, keep: set[int]) -> tuple[str, list[str]]:
        """The message with only the kept units, and the text of each context as output."""
        parts: list[str] = []
        contexts: list[str] = []
        ordered = sorted(keep)
        index = 0
        for piece in seg.pieces:
            if isinstance(piece, str):
                parts.append(piece)
                continue
            lo = bisect_left(ordered, index)
            hi = bisect_left(ordered, index + len(piece.units), lo)
            chosen = {i - index for i in ordered[lo:hi]}
            text = _context_out(piece, chosen)
            index += len(piece.units)
            contexts.append(text)
            parts.append(text)
        return "".join(parts), contexts

    # ---- messages

    def run(self, body: Body, budget: Budget) -> tuple[Body, CompressionReport]:
        messages: list[Message] = body.get("messages") or []
        stats = {"context_before": 0, "context_after": 0}

        def shrink(text: str) -> str:
            result = self.extract(text, budget)
            stats["context_before"] += result.context_before
            stats["context_after"] += result.context_after
            return result.text

        out = [map_text(m, shrink) if self._cuts(m) else m for m in messages]
        before = self.tokens.messages(messages)
        if all(a is b for a, b in zip(out, messages, strict=True)):
            return body, CompressionReport(self.name, before, before, stats)
        return with_messages(body, out), CompressionReport(
            self.name, before, self.tokens.messages(out), stats
        )

    def _cuts(self, message: Message) -> bool:
        """Extraction cuts user messages only, and not those over `max_message_chars`."""
        if message.get("role") != "user":
            return False
        return self.max_message_chars is None or len(message_text(message)) <= self.max_message_chars

    async def compress(self, body: Body, budget: Budget) -> tuple[Body, CompressionReport]:
        return self.run(body, budget)


def _context_text(ctx: Context) -> str:
    return ctx.head + ctx.lead + "".join(u.text for u in ctx.units) + ctx.trail + ctx.tail


def _context_out(ctx: Context, keep: set[int]) -> str:
    """A context with only the kept units (and headings of sections that keep something)."""
    if not keep:
        return ""
    kept_sections = {ctx.units[i].section for i in keep}
    groups: dict[int, list[str]] = {}
    for i, u in enumerate(ctx.units):
        if i in keep or (u.heading and u.section in kept_sections):
            groups.setdefault(u.group, []).append(u.text)
    body = "\n\n".join("".join(texts).rstrip() for texts in groups.values())
    return ctx.head + ctx.lead + body + ctx.trail + ctx.tail


def _unit_scale(values: list[float]) -> list[float]:
    top = max(values, default=0.0)
    return [v / top for v in values] if top > 0 else [0.0] * len(values)


def _smooth(rel: list[float], units: list[Unit], weight: float) -> list[float]:
    if not weight:
        return rel
    out = list(rel)
    for i, u in enumerate(units):
        best = 0.0
        if i > 0 and units[i - 1].group == u.group:
            best = rel[i - 1]
        if i + 1 < len(units) and units[i + 1].group == u.group:
            best = max(best, rel[i + 1])
        out[i] += weight * best
    return out


def _buckets(unit_terms: list[list[str]], buckets: int = 512) -> list[list[int]]:
    """Each unit's terms hashed into `buckets` columns (ids in order of first appearance)."""
    vocab: dict[str, int] = {}
    return [[vocab.setdefault(t, len(vocab)) % buckets for t in ts] for ts in unit_terms]


class _Overlap:
    """Cosine between units' hashed term sets, one selected unit at a time: rows of 512 bits packed
    into 8 machine words, AND + popcount (no BLAS threads woken for a few milliseconds of work)."""

    def __init__(self, unit_buckets: list[list[int]], buckets: int = 512) -> None:
        import numpy as np

        rows = [r for r, cols in enumerate(unit_buckets) for _ in cols]
        cols = [c for cs in unit_buckets for c in cs]
        dense = np.zeros((len(unit_buckets), buckets), dtype=bool)
        dense[rows, cols] = True
        self.matrix = np.ascontiguousarray(np.packbits(dense, axis=1)).view(np.uint64)
        self.sizes = np.maximum(dense.sum(axis=1), 1).astype(np.float64)

    def row(self, i: int) -> np.ndarray:
        import numpy as np

        shared = _popcount(self.matrix & self.matrix[i])
        out: Any = shared / np.sqrt(self.sizes * self.sizes[i])
        out[i] = 0.0
        return out


def _popcount(words: np.ndarray) -> np.ndarray:
    """Set bits per row of a 2-D uint64 array."""
    import numpy as np

    if hasattr(np, "bitwise_count"):  # numpy >= 2
        return np.bitwise_count(words).sum(axis=1, dtype=np.int64)
    table = np.asarray([bin(b).count("1") for b in range(256)], dtype=np.int64)
    return table[words.view(np.uint8)].sum(axis=1)
