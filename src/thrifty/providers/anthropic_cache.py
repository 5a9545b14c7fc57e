"""Automatic Anthropic prompt-cache breakpoints (`cache_control: {"type": "ephemeral"}`).

Anthropic caches a request's prefix (tools → system → messages) only up to blocks marked with
`cache_control`, at most 4 per request, and only when the prefix reaches a model minimum (1024 tokens
for Sonnet/Opus, 2048 for Haiku). `Breakpoints.apply` marks, in an already translated Messages request:

1. the last tool, when the tools alone reach the minimum (survives a system prompt change);
2. the last system block, when tools + system reach it;
3. the last block of the turn before the final one (the earlier turns of a conversation), when the
   prefix up to there reaches it — the next turn reads it back through Anthropic's 20-block lookback.

The final turn is never marked: it is new in every request, so writing it to the cache (1.25× input)
would rarely be read. A request whose caller already placed any `cache_control` is left as it is.
Token counts are local (cl100k) estimates of Anthropic's; a breakpoint below the real minimum is
ignored by Anthropic, never an error.
"""

from __future__ import annotations

from typing import Protocol

import orjson

from thrifty.types import Body

EPHEMERAL: Body = {"type": "ephemeral"}
MAX_BREAKPOINTS = 4
MIN_TOKENS = 1024
MIN_TOKENS_HAIKU = 2048


class Counter(Protocol):
    def count_text(self, text: str) -> int: ...


def min_tokens_for(model: str) -> int:
    """Anthropic's shortest cacheable prefix for a model."""
    return MIN_TOKENS_HAIKU if "haiku" in model.lower() else MIN_TOKENS


def has_cache_control(payload: Body) -> bool:
    """Whether the caller placed any breakpoint (tools, system or message blocks)."""
    for tool in payload.get("tools") or ():
        if "cache_control" in tool:
            return True
    system = payload.get("system")
    if isinstance(system, list) and any("cache_control" in b for b in system):
        return True
    for turn in payload.get("messages") or ():
        content = turn.get("content")
        if isinstance(content, list) and any(isinstance(b, dict) and "cache_control" in b for b in content):
            return True
    return False


class Breakpoints:
    """Adds cache breakpoints to Anthropic Messages requests whose stable prefix is long enough."""

    def __init__(self, counter: Counter, min_tokens: int | None = None) -> None:
        self.counter = counter
        self.min_tokens = min_tokens

    def threshold(self, model: str) -> int:
        return self.min_tokens if self.min_tokens is not None else min_tokens_for(model)

    def _block_tokens(self, block: Body) -> int:
        if block.get("type") == "text":
            return self.counter.count_text(str(block.get("text") or ""))
        if block.get("type") == "image":
            return 0
        return self.counter.count_text(orjson.dumps(block).decode())

    def apply(self, payload: Body) -> Body:
        """The request with breakpoints added (a new dict; the input is not changed)."""
        if has_cache_control(payload):
            return payload
        need = self.threshold(str(payload.get("model") or ""))
        out = dict(payload)
        placed = 0
        total = 0
        tools = payload.get("tools") or []
        if tools:
            total += self.counter.count_text(orjson.dumps(tools).decode())
            if total >= need:
                out["tools"] = [*tools[:-1], {**tools[-1], "cache_control": EPHEMERAL}]
                placed += 1
        system = payload.get("system")
        if system:
            blocks = [{"type": "text", "text": system}] if isinstance(system, str) else list(system)
            total += sum(self._block_tokens(b) for b in blocks)
            if total >= need and blocks:
                blocks[-1] = {**blocks[-1], "cache_control": EPHEMERAL}
                out["system"] = blocks
                placed += 1
        turns = payload.get("messages") or []
        if len(turns) >= 2 and placed < MAX_BREAKPOINTS:
            earlier = turns[:-1]
            total += sum(self._turn_tokens(t) for t in earlier)
            if total >= need:
                out["messages"] = [*_mark_last_block(earlier), turns[-1]]
        return out

    def _turn_tokens(self, turn: Body) -> int:
        content = turn.get("content")
        if isinstance(content, str):
            return self.counter.count_text(content)
        return sum(self._block_tokens(b) for b in content or () if isinstance(b, dict))


def _mark_last_block(turns: list[Body]) -> list[Body]:
    """The turns with `cache_control` on the last block of the last one (string content → block)."""
    last = turns[-1]
    content = last.get("content")
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
    if not blocks:
        return turns
    blocks[-1] = {**blocks[-1], "cache_control": EPHEMERAL}
    return [*turns[:-1], {**last, "content": blocks}]
