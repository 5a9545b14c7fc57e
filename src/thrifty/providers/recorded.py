"""A Provider that answers from a recorded trace instead of calling anyone (for `thrifty simulate`).

The simulator marks which trace entry is being replayed; the provider answers with that entry's
recorded response, whatever model the pipeline chose. Where the request that reaches the provider is
not the recorded one (compression changed it) or nothing was recorded, token counts come from the local
TokenCounter and the usage is marked estimated, so the ledger says which figures are measured.
"""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import orjson

from thrifty.config import ProviderConfig
from thrifty.pricing.tokens import TokenCounter, message_text
from thrifty.providers.base import Provider, Reply
from thrifty.providers.http import HttpClient
from thrifty.types import Body, Usage

DEFAULT_OUTPUT_TOKENS = 256
"""Output length assumed for unrecorded answers when the trace records none at all."""


@dataclass(frozen=True, slots=True)
class Recorded:
    """One trace line: the client's chat request and, if recorded, the provider's chat.completion."""

    index: int
    request: Body
    response: Body | None = None
    timestamp: float | None = None
    tenant: str | None = None
    key: str | None = None

    @property
    def usage(self) -> dict[str, Any] | None:
        usage = (self.response or {}).get("usage")
        return usage if isinstance(usage, dict) and usage else None


def messages_hash(body: Body) -> str:
    return hashlib.sha256(orjson.dumps(body.get("messages") or [], option=orjson.OPT_SORT_KEYS)).hexdigest()


class TraceBook:
    """The recorded answers and which one is being replayed (per asyncio context)."""

    def __init__(self, entries: list[Recorded], tokens: TokenCounter) -> None:
        self.entries = entries
        self.tokens = tokens
        self.current: ContextVar[Recorded | None] = ContextVar(f"thrifty_trace_{id(self)}", default=None)
        self._by_hash: dict[str, Recorded] = {}
        for entry in entries:
            self._by_hash.setdefault(messages_hash(entry.request), entry)
        lengths = [int(e.usage.get("completion_tokens") or 0) for e in entries if e.usage]
        self.default_output_tokens = int(statistics.median(lengths)) if lengths else DEFAULT_OUTPUT_TOKENS

    def lookup(self, body: Body) -> Recorded | None:
        return self.current.get() or self._by_hash.get(messages_hash(body))

    def reply(self, entry: Recorded | None, body: Body, model: str) -> Reply:
        """The recorded answer to `body` as served by `model`, with usage (estimated where needed)."""
        response = entry.response if entry is not None else None
        if response and response.get("choices"):
            answer = {**response}
            text = "".join(
                message_text(c.get("message") or {}) for c in response["choices"] if isinstance(c, dict)
            )
        else:
            text = ""
            answer = None
        usage = self._usage(entry, body, text, has_answer=answer is not None)
        index = entry.index if entry is not None else 0
        if answer is None:
            answer = {
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": f"[thrifty simulate: no recorded answer; {usage.output_tokens} "
                            "output tokens assumed]",
                        },
                        "finish_reason": "stop",
                    }
                ],
            }
        answer["id"] = f"chatcmpl-sim-{index:06d}"
        answer["model"] = model
        answer["created"] = int(entry.timestamp or 0) if entry is not None else 0
        answer["usage"] = usage.to_openai()
        return Reply(body=answer, usage=usage)

    def _usage(self, entry: Recorded | None, body: Body, text: str, *, has_answer: bool) -> Usage:
        recorded = Usage.from_openai(entry.usage) if entry is not None else None
        unchanged = entry is not None and messages_hash(entry.request) == messages_hash(body)
        if recorded is not None and unchanged and has_answer:
            return recorded
        input_tokens = self.tokens.count_messages(body.get("messages") or [])
        if recorded is not None:
            output_tokens = recorded.output_tokens
        elif has_answer:
            output_tokens = self.tokens.count_text(text)
        else:
            output_tokens = _cap(self.default_output_tokens, body)
        return Usage(input_tokens=input_tokens, output_tokens=output_tokens, estimated=True)


def _cap(tokens: int, body: Body) -> int:
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    return min(tokens, int(limit)) if isinstance(limit, int) and limit > 0 else tokens


class RecordedProvider(Provider):
    """Serves every model from the TraceBook; never touches the network."""

    def __init__(self, name: str, config: ProviderConfig, http: HttpClient, book: TraceBook) -> None:
        super().__init__(name, config, http)
        self.book = book

    async def chat(self, body: Body, model: str) -> Reply:
        return self.book.reply(self.book.lookup(body), body, model)

    async def stream(self, body: Body, model: str) -> AsyncIterator[Body]:
        reply = await self.chat(body, model)
        message = reply.body["choices"][0].get("message") or {}
        base = {"id": reply.body["id"], "object": "chat.completion.chunk", "model": model}
        base["created"] = reply.body["created"]
        yield {
            **base,
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": message.get("content") or ""}}
            ],
        }
        yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        yield {**base, "choices": [], "usage": reply.body["usage"]}
