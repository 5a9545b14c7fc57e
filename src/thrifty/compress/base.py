"""The Compressor seam: `compress(body, budget) -> (new_body, report)`.

A compressor takes a chat request body (OpenAI shape) and returns a new body — the input is never
mutated — plus a report with the request's input tokens before and after (counted with
`thrifty.pricing.tokens.TokenCounter`, the same count the ledger uses when a provider omits usage).

Every compressor obeys the prefix rule (see `thrifty.compress.prefix`): message *i* of the output is a
function of messages *0..i* of the input and of configuration only — never of a later message — so a
long stable prefix (system prompt, earlier turns) stays byte-identical across requests.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from thrifty.pricing.tokens import TokenCounter, message_text
from thrifty.types import Body

Message = dict[str, Any]

# Per-message framing overhead, as TokenCounter.count_messages counts it.
_PER_MESSAGE = 3
_PER_REPLY = 3


@dataclass(frozen=True, slots=True)
class Budget:
    """How small the compressible part should get: a kept share, an absolute token budget, or both
    (the smaller wins). `None` for both means "no target" (lossless compressors ignore budgets)."""

    ratio: float | None = None
    tokens: int | None = None

    def target(self, tokens: int) -> int | None:
        """The token target for a part currently `tokens` long (None: no target)."""
        limits = []
        if self.ratio is not None:
            limits.append(int(tokens * self.ratio))
        if self.tokens is not None:
            limits.append(self.tokens)
        return min(limits) if limits else None


NO_BUDGET = Budget()


@dataclass(slots=True)
class CompressionReport:
    name: str
    tokens_before: int
    tokens_after: int
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def saved(self) -> int:
        return self.tokens_before - self.tokens_after

    def as_meta(self) -> dict[str, Any]:
        return {"before": self.tokens_before, "after": self.tokens_after, **self.detail}


class Compressor(Protocol):
    """Shrinks a prompt while keeping what matters; never rewrites a stable prefix per request."""

    name: str

    async def compress(self, body: Body, budget: Budget) -> tuple[Body, CompressionReport]: ...


class TokenCache:
    """`TokenCounter` with an LRU memo by text, so unchanged messages are counted once per process.
    The memo holds at most `max_chars` characters of text in all."""

    def __init__(self, counter: TokenCounter | None = None, max_chars: int = 16_000_000) -> None:
        self.counter = counter or TokenCounter()
        self.max_chars = max_chars
        self._memo: OrderedDict[str, int] = OrderedDict()
        self._chars = 0

    def text(self, text: str) -> int:
        if len(text) < 64 or len(text) > self.max_chars // 16:
            return self.counter.count_text(text)
        hit = self._memo.get(text)
        if hit is not None:
            self._memo.move_to_end(text)
            return hit
        count = self.counter.count_text(text)
        self._memo[text] = count
        self._chars += len(text)
        while self._chars > self.max_chars:
            old, _ = self._memo.popitem(last=False)
            self._chars -= len(old)
        return count

    def messages(self, messages: list[Message]) -> int:
        """Same figure as `TokenCounter.count_messages`, memoised per message text."""
        total = _PER_REPLY
        for message in messages:
            total += _PER_MESSAGE + self.text(message_text(message))
            if message.get("tool_calls"):
                total += self.text(str(message["tool_calls"]))
        return total


def map_text(message: Message, fn: Callable[[str], str]) -> Message:
    """`message` with `fn` applied to its text (string content or each text part); same object when
    nothing changed."""
    content = message.get("content")
    if isinstance(content, str):
        new = fn(content)
        return message if new == content else {**message, "content": new}
    if isinstance(content, list):
        parts, changed = [], False
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                new = fn(part["text"])
                if new != part["text"]:
                    part, changed = {**part, "text": new}, True
            parts.append(part)
        return {**message, "content": parts} if changed else message
    return message


def with_messages(body: Body, messages: list[Message]) -> Body:
    return {**body, "messages": messages}
