"""A chat stream handed to the client: chunks pass through, accounting happens when it ends.

What is booked: a provider stream that knows its usage exactly (a `reported_usage()` method returning
`ReportedUsage | None`, e.g. the Anthropic provider's) is taken at its word, at the end and when the
stream is cut (an upstream error, a client that left, a shutdown); only an output count it has not
reported yet is counted locally, and the row is then marked estimated. Otherwise the usage chunk's
counts are booked, and without one the tokens are counted locally. The client's chunks are never
changed by this (the usage chunk stays the OpenAI shape)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

from thrifty.errors import ThriftyError, UpstreamError
from thrifty.types import Body, ReportedUsage, Usage

log = logging.getLogger("thrifty.streaming")

Finish = Callable[[Usage | None, str, "UpstreamError | None", float], None]
"""Called once with (usage or None, output text, error or None, latency_ms) when the stream ends."""
Estimate = Callable[[str], Usage]
"""Local token counts for a stream whose provider sent no usage, from its output text."""


class ChatStream:
    """Async iterator of OpenAI chunk bodies. The usage chunk is forwarded only if the client asked."""

    def __init__(
        self,
        *,
        first: Body,
        rest: AsyncIterator[Body],
        request_id: str,
        served_model: str,
        provider: str,
        include_usage: bool,
        finish: Finish,
        started: float,
        estimate: Estimate | None = None,
    ) -> None:
        self.request_id = request_id
        self.served_model = served_model
        self.provider = provider
        self.include_usage = include_usage
        self.cost_usd: float | None = None
        """What the request cost in all, once the stream has ended and been booked."""
        self.prior_cost_usd = 0.0
        """What the request had cost before this stream (e.g. rejected cascade tiers), already booked."""
        self._first: Body | None = first
        self._rest = rest
        reported = getattr(rest, "reported_usage", None)
        self._reported: Callable[[], ReportedUsage | None] | None = reported if callable(reported) else None
        self._finish = finish
        self._estimate = estimate
        self._started = started
        self._last: Body = first
        self._text: list[str] = []
        self._text_chars = 0
        self._usage: Usage | None = None
        self._done = False
        self.headers: dict[str, str] = {}
        """Response headers stages add (e.g. `x-thrifty-cache`); the server sends them."""

    @property
    def usage(self) -> Usage | None:
        """The usage the provider reported (also when the client did not ask for the usage chunk); once
        the stream has ended, what was booked for it (see the module docstring)."""
        return self._usage

    def __aiter__(self) -> ChatStream:
        return self

    async def __anext__(self) -> Body:
        while True:
            chunk = await self._next_raw()
            if self._done:  # the locally estimated usage chunk, already booked
                return self._priced(chunk)
            if chunk.get("usage") is not None:
                self._usage = Usage.from_openai(chunk["usage"])
                if self._usage is None:  # unreadable: counted locally at the end, as if none came
                    chunk = {k: v for k, v in chunk.items() if k != "usage"}
                    if not chunk.get("choices"):
                        continue
                elif not chunk.get("choices"):
                    if self.include_usage:
                        return await self._usage_chunk(chunk)
                    continue
                if not self.include_usage:
                    chunk = {k: v for k, v in chunk.items() if k != "usage"}
            self._collect_text(chunk)
            return chunk

    async def _usage_chunk(self, chunk: Body) -> Body:
        """The usage chunk, with the request's booked cost in `usage.cost` (USD, as OpenRouter and
        LiteLLM send it) when it is the last chunk: the stream is read to its end and booked first."""
        try:
            following = await self._next_raw()
        except StopAsyncIteration:
            return self._priced(chunk)
        self._first = following  # more chunks after the usage: deliver them next, cost unknown yet
        return chunk

    def _priced(self, chunk: Body) -> Body:
        usage = chunk.get("usage")
        if not isinstance(usage, dict) or self.cost_usd is None:
            return chunk
        return {**chunk, "usage": {**usage, "cost": round(self.cost_usd, 10)}}

    async def _next_raw(self) -> Body:
        if self._first is not None:
            chunk, self._first = self._first, None
            return self._named(chunk)
        if self._done:
            raise StopAsyncIteration
        try:
            chunk = await self._rest.__anext__()
        except StopAsyncIteration:
            owed = self.include_usage and self._usage is None  # asked for usage, and no chunk carried it
            self._end(None)
            if owed and self._usage is not None:
                return self._late_usage_chunk(self._usage)
            raise
        except UpstreamError as exc:
            self._end(exc)
            raise
        except ThriftyError:
            raise
        except Exception as exc:  # a chunk the provider layer could not translate: the upstream's fault
            log.exception("stream %s: unreadable upstream chunk", self.request_id)
            error = UpstreamError(f"the upstream stream could not be read ({type(exc).__name__})")
            self._end(error)
            raise error from exc
        if not isinstance(chunk, dict):
            error = UpstreamError("the upstream stream sent a chunk that is not a JSON object")
            self._end(error)
            raise error
        self._last = chunk = self._named(chunk)
        return chunk

    def _named(self, chunk: Body) -> Body:
        """The chunk naming the model as the client is told (`x-thrifty-model`), not the deployment."""
        if chunk.get("model") in (None, self.served_model):
            return chunk
        return {**chunk, "model": self.served_model}

    def _late_usage_chunk(self, usage: Usage) -> Body:
        """A client that asked for usage gets it even when the provider sent no usage chunk: what was
        booked (counted locally when the provider reported nothing; the ledger row is marked estimated)."""
        meta = {k: self._last[k] for k in ("id", "object", "created", "model") if k in self._last}
        return {**meta, "choices": [], "usage": usage.to_openai()}

    def _booked_usage(self) -> Usage | None:
        """What the stream is booked on (None: the caller counts it locally); see the module docstring."""
        reported = self._reported() if self._reported is not None else None
        if reported is not None and reported.output_final:
            return reported.usage
        if reported is not None:  # cut before the upstream reported its output: that part is counted
            counted = self._estimate("".join(self._text)).output_tokens if self._estimate else 0
            output = max(reported.usage.output_tokens, counted)
            return replace(reported.usage, output_tokens=output, estimated=True)
        if self._usage is None and self.include_usage and self._estimate is not None:
            return self._estimate("".join(self._text))
        return self._usage

    def _collect_text(self, chunk: Body) -> None:
        """Keep the answer's text for a local count (a provider that sends no usage, a cut stream), up
        to `MAX_COUNTED_CHARS`: far past any model's output limit, it bounds what an endless stream
        holds in memory (what comes after is not counted)."""
        if self._text_chars >= MAX_COUNTED_CHARS:
            return
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            for name in ("content", *REASONING_FIELDS):
                if isinstance(delta.get(name), str):
                    self._keep(delta[name])
            functions = [call.get("function") or {} for call in delta.get("tool_calls") or ()]
            if isinstance(delta.get("function_call"), dict):
                functions.append(delta["function_call"])
            for fn in functions:
                self._keep(str(fn.get("name") or "") + str(fn.get("arguments") or ""))

    def _keep(self, text: str) -> None:
        self._text.append(text)
        self._text_chars += len(text)

    def _end(self, error: UpstreamError | None) -> None:
        if self._done:
            return
        self._done = True
        latency = (time.perf_counter() - self._started) * 1000
        self._usage = self._booked_usage()
        self._finish(self._usage, "".join(self._text), error, latency)

    def cut(self, error: UpstreamError) -> None:
        """Book an unfinished stream as stopped for `error` (the server cutting it at shutdown), not as
        a client that left; the `aclose` that follows only closes the upstream."""
        self._end(error)

    async def aclose(self) -> None:
        """Client went away or finished: close upstream; an unfinished stream is booked as cancelled
        (unless `cut` booked it first)."""
        if not self._done:
            self._end(
                UpstreamError(
                    "client disconnected before the stream ended", status=499, code="client_cancelled"
                )
            )
        closer: Any = getattr(self._rest, "aclose", None)
        if closer is not None:
            await closer()


MAX_COUNTED_CHARS = 4_000_000
"""Characters of a streamed answer kept for a local token count (~1M tokens: 8x the largest output
limits); past it, the rest of an endless stream is not counted."""

REASONING_FIELDS = ("reasoning_content", "reasoning")
"""Reasoning text some OpenAI-compatible providers (DeepSeek, vLLM, OpenRouter) send beside the content."""
_STRINGS = ("content", "refusal", *REASONING_FIELDS)
REPLAYED = frozenset({"role", *_STRINGS, "tool_calls", "function_call"})
"""The message fields a replay streams back; any other with a value makes an answer not replayable."""


def replayable(body: Body) -> bool:
    """Whether `replay` streams this complete answer back as it is: at least one choice, every one
    finished, and no message field the chunks cannot carry (an `audio` answer, say). A field with no
    value (`null`, `[]`) loses nothing."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    return all(isinstance(c, dict) and c.get("finish_reason") and _replayable_message(c) for c in choices)


def _replayable_message(choice: Body) -> bool:
    message = choice.get("message")
    if not isinstance(message, dict):
        return False
    if any(name not in REPLAYED and value not in (None, [], {}, "") for name, value in message.items()):
        return False
    strings = all(message.get(name) is None or isinstance(message[name], str) for name in _STRINGS)
    call = message.get("function_call")
    return (
        strings
        and (call is None or isinstance(call, dict))
        and isinstance(message.get("tool_calls") or [], list)
    )


def completion_chunks(body: Body) -> list[Body]:
    """A complete chat.completion as the chunks a stream of it would have carried."""
    base = {
        "id": body.get("id", "chatcmpl-replay"),
        "object": "chat.completion.chunk",
        "created": body.get("created", int(time.time())),
        "model": body.get("model", ""),
    }
    if body.get("system_fingerprint"):
        base["system_fingerprint"] = body["system_fingerprint"]
    chunks: list[Body] = []
    for choice in body.get("choices") or ():
        chunks.extend({**base, "choices": [part]} for part in _choice_chunks(choice))
    if body.get("usage"):
        chunks.append({**base, "choices": [], "usage": body["usage"]})
    return chunks


def _choice_chunks(choice: Body) -> list[Body]:
    """One choice of a complete answer as streamed choice deltas: role, reasoning text, content (with
    its token logprobs, when the answer has them), refusal, a legacy function call, tool calls, then
    the finish reason."""
    index = choice.get("index", 0)
    message = choice.get("message") or {}
    logprobs = choice.get("logprobs")

    def delta(fields: Body, **extra: Any) -> Body:
        return {"index": index, "delta": fields, "finish_reason": None, **extra}

    parts = [delta({"role": "assistant", "content": ""})]
    parts.extend(delta({name: message[name]}) for name in REASONING_FIELDS if message.get(name))
    if message.get("content"):
        parts.append(delta({"content": message["content"]}, **({"logprobs": logprobs} if logprobs else {})))
    elif logprobs:
        parts.append(delta({}, logprobs=logprobs))
    if message.get("refusal"):
        parts.append(delta({"refusal": message["refusal"]}))
    if message.get("function_call"):
        parts.append(delta({"function_call": message["function_call"]}))
    calls = [{"index": i, **call} for i, call in enumerate(message.get("tool_calls") or ())]
    if calls:
        parts.append(delta({"tool_calls": calls}))
    parts.append({"index": index, "delta": {}, "finish_reason": choice.get("finish_reason")})
    return parts


async def _iterate(chunks: list[Body]) -> AsyncIterator[Body]:
    for chunk in chunks:
        yield chunk


def replay(
    body: Body,
    *,
    request_id: str,
    served_model: str,
    provider: str,
    include_usage: bool,
    cost_usd: float = 0.0,
) -> ChatStream:
    """Stream a complete answer (a cache hit, an accepted cascade tier) as well-formed chunks.
    It is already booked, so finishing the stream books nothing."""
    chunks = completion_chunks(body)
    stream = ChatStream(
        first=chunks[0],
        rest=_iterate(chunks[1:]),
        request_id=request_id,
        served_model=served_model,
        provider=provider,
        include_usage=include_usage,
        finish=lambda *_: None,
        started=time.perf_counter(),
    )
    stream.cost_usd = cost_usd
    return stream
