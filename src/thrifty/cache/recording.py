"""A chat stream that rebuilds the complete answer from its chunks, to cache it once it ends cleanly.

Only what it can rebuild exactly is stored: content, refusal and reasoning text, tool calls, a legacy
`function_call`, token logprobs. A delta carrying anything else (an `audio` answer, whose id and expiry
are the provider's state; a field this version does not know) makes the stream not storable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from thrifty.stream_wrapper import StreamWrapper
from thrifty.streaming import REASONING_FIELDS, ChatStream
from thrifty.types import Body, Usage

OnComplete = Callable[[Body, "Usage | None"], Awaitable[None]]
"""Called once with the rebuilt chat.completion and the stream's usage, only if it ended cleanly."""


class _Choice:
    def __init__(self) -> None:
        self.role = "assistant"
        self.text: dict[str, list[str]] = {}  # content, refusal, reasoning text: the pieces in order
        self.function_call: dict[str, str] | None = None
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.logprobs: dict[str, list[Any]] | None = None

    def add_logprobs(self, logprobs: dict[str, Any]) -> None:
        """A chunk's token logprobs (`content` and `refusal` lists) appended to the answer's."""
        if self.logprobs is None:
            self.logprobs = {"content": [], "refusal": []}
        for part in ("content", "refusal"):
            self.logprobs[part].extend(logprobs.get(part) or ())

    def choice_logprobs(self) -> dict[str, Any] | None:
        if self.logprobs is None:
            return None
        return {part: tokens or None for part, tokens in self.logprobs.items()}

    def add(self, delta: dict[str, Any]) -> bool:
        """Record a delta; False when it carries what the recording cannot rebuild and a replay
        cannot stream back (an unknown field with a value, such as `audio`, or an unexpected shape)."""
        for name, value in delta.items():
            if value in (None, [], {}, "") or name == "role":
                continue
            if name in TEXT_FIELDS and isinstance(value, str):
                self.text.setdefault(name, []).append(value)
            elif name == "function_call" and isinstance(value, dict):
                self.function_call = _joined(self.function_call or {"name": "", "arguments": ""}, value)
            elif name == "tool_calls" and isinstance(value, list):
                if not all(self._add_tool_call(call) for call in value):
                    return False
            else:
                return False
        return True

    def _add_tool_call(self, call: Any) -> bool:
        if not isinstance(call, dict) or not isinstance(call.get("function") or {}, dict):
            return False
        empty = {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
        slot = self.tool_calls.setdefault(int(call.get("index", 0)), empty)
        slot["id"] = call.get("id") or slot["id"]
        slot["function"] = _joined(slot["function"], call.get("function") or {})
        return True

    def message(self) -> dict[str, Any]:
        content = self.text.get("content")
        out: dict[str, Any] = {"role": self.role, "content": "".join(content) if content else None}
        for name, pieces in self.text.items():
            if name != "content":
                out[name] = "".join(pieces)
        if self.function_call is not None:
            out["function_call"] = self.function_call
        if self.tool_calls:
            out["tool_calls"] = [self.tool_calls[i] for i in sorted(self.tool_calls)]
        return out


TEXT_FIELDS = frozenset({"content", "refusal", *REASONING_FIELDS})
"""Delta fields whose string pieces make one string of the message."""


def _joined(function: dict[str, str], piece: dict[str, Any]) -> dict[str, str]:
    """A function call's `name` and `arguments` with a delta's pieces appended (streams send them in
    parts)."""
    return {key: function[key] + str(piece.get(key) or "") for key in ("name", "arguments")}


class RecordingStream(StreamWrapper):
    """The client sees the chunks unchanged; a stream that ends cleanly is rebuilt and handed on."""

    def __init__(
        self,
        inner: ChatStream,
        on_complete: OnComplete,
        headers: dict[str, str],
        on_end: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(inner, {**getattr(inner, "headers", {}), **headers})
        self._on_complete: OnComplete | None = on_complete
        self._on_end = on_end
        """Called once however the stream ends (stored, failed, or closed early)."""
        self._choices: dict[int, _Choice] = {}
        self._head: dict[str, Any] = {}
        self._storable = True

    def _observe(self, chunk: Body) -> None:
        if not self._head:
            self._head = {k: chunk[k] for k in ("id", "created", "model", "system_fingerprint") if k in chunk}
        for choice in chunk.get("choices") or ():
            slot = self._choices.setdefault(int(choice.get("index", 0)), _Choice())
            logprobs = choice.get("logprobs")
            if isinstance(logprobs, dict):
                slot.add_logprobs(logprobs)
            elif logprobs is not None:
                self._storable = False  # a shape we cannot rebuild: do not cache a partial answer
            delta = choice.get("delta") or {}
            if not isinstance(delta, dict) or not slot.add(delta):
                self._storable = False  # a field we cannot rebuild (audio, say): never store half of it
            if choice.get("finish_reason"):
                slot.finish_reason = choice["finish_reason"]

    def body(self, usage: Usage | None) -> Body:
        out: Body = {**self._head, "object": "chat.completion"}
        out["choices"] = [
            {
                "index": i,
                "message": c.message(),
                "finish_reason": c.finish_reason,
                "logprobs": c.choice_logprobs(),
            }
            for i, c in sorted(self._choices.items())
        ]
        if usage is not None:
            out["usage"] = usage.to_openai()
        return out

    async def _finished(self) -> None:
        on_complete, self._on_complete = self._on_complete, None
        finished = self._choices and all(c.finish_reason for c in self._choices.values())
        try:
            if on_complete is not None and self._storable and finished:
                usage = getattr(self.inner, "usage", None)
                await on_complete(self.body(usage), usage)
        finally:
            self._ended()

    async def _failed(self) -> None:
        self._on_complete = None
        self._ended()

    async def aclose(self) -> None:
        self._on_complete = None  # closed before the end: never stored
        try:
            await super().aclose()
        finally:
            self._ended()

    def _ended(self) -> None:
        on_end, self._on_end = self._on_end, None
        if on_end is not None:
            on_end()
