"""Model-based compression of long, stable contexts — paid once, memoised by content hash.

A system/developer message of at least `min_tokens` is rewritten by the cheapest configured chat
model (or the configured `model`) to about `target_tokens`. The rewrite is keyed by a hash of the
source text, model, target and prompt version, kept in memory and in SQLite (`SummaryStore`), and
reused by every later request carrying the same message — so the message stays byte-identical
across requests (prefix rule) and the model is called again only when the source changes.
Concurrent first requests share one model call. The call's cost is booked in the ledger as a row of
kind "compression"; the savings it earns are booked on each request that uses it.

If the model call fails the request goes on uncompressed (and that source is not retried for
`retry_after_s`); a rewrite that is not shorter is memoised as "keep the source".

Content given as parts: when every part is text, the source is the parts' text joined as
`message_text` joins it, and the rewrite replaces them with one text part (carrying the last part's
other keys, e.g. an Anthropic `cache_control` breakpoint). A message with any other part (an image,
audio) is not summarised at all — no call, no cost — since the rewrite could not say where it goes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from thrifty.compress.base import Budget, CompressionReport, Message, TokenCache, with_messages
from thrifty.compress.memo import Summary, SummaryStore
from thrifty.pricing.tokens import message_text
from thrifty.types import Body

if TYPE_CHECKING:
    from thrifty.pipeline import Call

log = logging.getLogger("thrifty.compress")

PROMPT_VERSION = "summary-v1"
INSTRUCTIONS = (
    "You compress prompts written for another AI assistant. Rewrite the text you are given so that it "
    "is at most {target} tokens long. Keep every instruction, rule, constraint, priority, name, number, "
    "identifier, format requirement and example that changes behaviour; keep the same voice (if the text "
    "addresses the assistant as 'you', so does the rewrite). Drop repetition, filler and politeness. "
    "Output only the rewritten text."
)

Writer = Callable[[str, int, "Call | None"], Awaitable[Summary]]
"""(source text, target tokens, triggering call) → the summary, its cost booked."""


class Summarizer:
    """The model-based compressor (off by default)."""

    name = "summarize"

    def __init__(
        self,
        tokens: TokenCache,
        store: SummaryStore,
        writer: Writer,
        *,
        model: str,
        min_tokens: int = 1000,
        roles: tuple[str, ...] = ("system", "developer"),
        retry_after_s: float = 60.0,
        memo_size: int = 256,
    ) -> None:
        self.tokens = tokens
        self.store = store
        self.writer = writer
        self.model = model
        self.min_tokens = min_tokens
        self.roles = roles
        self.retry_after_s = retry_after_s
        self.memo_size = memo_size
        self._memo: OrderedDict[str, Summary] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[Summary | None]] = {}
        self._failed: dict[str, float] = {}
        self.model_calls = 0

    def key(self, text: str, target: int) -> str:
        digest = hashlib.sha256()
        for part in (PROMPT_VERSION, self.model, str(target), text):
            digest.update(part.encode())
            digest.update(b"\0")
        return digest.hexdigest()

    async def summary(self, text: str, target: int, call: Call | None = None) -> Summary | None:
        """The memoised rewrite of `text` (None while the model cannot be reached)."""
        key = self.key(text, target)
        found = self._memo.get(key) or self.store.get(key)
        if found is not None:
            self._remember(key, found)
            return found
        if self._failed.get(key, 0.0) > time.monotonic():
            return None
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Summary | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await self._write(key, text, target, call)
            future.set_result(result)
            return result
        finally:
            if not future.done():
                future.set_result(None)
            del self._inflight[key]

    async def _write(self, key: str, text: str, target: int, call: Call | None) -> Summary | None:
        self.model_calls += 1
        try:
            written = await self.writer(text, target, call)
        except Exception:
            log.warning("summary by %s failed; request sent uncompressed", self.model, exc_info=True)
            self._failed[key] = time.monotonic() + self.retry_after_s
            return None
        if not written.text.strip() or not written.shorter:
            written = Summary(
                text, written.source_tokens, written.source_tokens, written.model, written.cost_usd
            )
        self.store.put(key, written)
        self._remember(key, written)
        return written

    def _remember(self, key: str, summary: Summary) -> None:
        self._memo[key] = summary
        self._memo.move_to_end(key)
        if len(self._memo) > self.memo_size:
            self._memo.popitem(last=False)

    def _candidates(self, messages: list[Message], min_tokens: int) -> list[str]:
        texts = []
        for message in messages:
            if message.get("role") in self.roles and _all_text(message):
                text = message_text(message)
                if self.tokens.text(text) >= min_tokens:
                    texts.append(text)
        return texts

    async def compress(
        self, body: Body, budget: Budget, *, call: Call | None = None, min_tokens: int | None = None
    ) -> tuple[Body, CompressionReport]:
        """Replace each long system/developer message with its memoised rewrite (`budget.tokens` long)."""
        messages: list[Message] = body.get("messages") or []
        before = self.tokens.messages(messages)
        target = budget.tokens or 400
        rewrites: dict[str, str] = {}
        for text in self._candidates(messages, self.min_tokens if min_tokens is None else min_tokens):
            found = await self.summary(text, target, call)
            if found is not None and found.shorter:
                rewrites[text] = found.text
        if not rewrites:
            return body, CompressionReport(self.name, before, before)
        out = [_rewrite(m, rewrites) if m.get("role") in self.roles else m for m in messages]
        detail = {"model": self.model, "summaries": len(rewrites)}
        return with_messages(body, out), CompressionReport(
            self.name, before, self.tokens.messages(out), detail
        )


def _all_text(message: Message) -> bool:
    """Whether the message's content is a string or a non-empty list of text parts only."""
    content = message.get("content")
    if isinstance(content, str):
        return True
    return (
        isinstance(content, list)
        and bool(content)
        and all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
            for p in content
        )
    )


def _rewrite(message: Message, rewrites: dict[str, str]) -> Message:
    """`message` with its whole text replaced by its rewrite (text parts become one part)."""
    if not _all_text(message):
        return message
    new = rewrites.get(message_text(message))
    if new is None:
        return message
    content = message["content"]
    if isinstance(content, str):
        return {**message, "content": new}
    return {**message, "content": [{**content[-1], "text": new}]}
