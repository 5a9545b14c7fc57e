"""Pure translation of Anthropic Messages API answers into the OpenAI chat wire shape.

`to_openai_response` keeps text and tool use; thinking blocks are not surfaced. `StreamTranslator`
turns Anthropic stream events into OpenAI `chat.completion.chunk` bodies. The request side is
`anthropic_request`.

A stream commits nothing before its first content: the role chunk (`delta.role`, the first chunk a
client sees) is held back from `message_start` and sent just before the first text, tool call or
finish, so an `error` event after `message_start` (Anthropic's usual overload, after an HTTP 200)
comes before any chunk and is retried or failed over like an HTTP error. The exact usage Anthropic
reported so far (input and cache counts from `message_start`, the 1-hour cache-write split, the output
count from `message_delta`) is `StreamTranslator.reported_usage()`: the gateway books it, also for a
stream cut midway.

An emulated `response_format` answer — a tool_use of `RESPONSE_FORMAT_TOOL` — comes back as an ordinary
assistant message: `content` is the JSON text of the tool's input (streamed: its `input_json_delta`
fragments become content deltas), no `tool_calls`, and stop_reason `tool_use` maps to finish_reason
`stop`. Non-streamed, text blocks beside it are dropped; streamed, text that came before it (Anthropic
sends none when the tool is forced) has already been forwarded. Usage is Anthropic's, unchanged.

An answer without a readable `usage` (missing, not an object, a count that is not a non-negative
integer, or no input/output count) has none here: `usage_from_anthropic` returns None, the body has no
`usage` and a stream no usage chunk, so the gateway counts the tokens locally and books them as
estimated, as it does for any provider. An answer whose content cannot be read (a block that is not an
object, an event `index` that is not an integer, text that is not a string, …) raises `UpstreamError`
(502, "the upstream answer could not be read"), never a bare TypeError/KeyError/ValueError.
"""

from __future__ import annotations

import orjson

from thrifty.errors import UpstreamError
from thrifty.providers.anthropic_request import RESPONSE_FORMAT_TOOL
from thrifty.types import Body, ReportedUsage, Usage

FINISH_REASONS: dict[str, str] = {
    # The answer was cut short → "length", the one OpenAI finish_reason meaning "not finished":
    # `model_context_window_exceeded` (the context window filled up before max_tokens) and `pause_turn`
    # (Anthropic paused a long-running turn; it is continued by sending the answer back). "stop" would
    # tell the client the answer is complete.
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "pause_turn": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

_RETRYABLE_STREAM_ERRORS = ("overloaded_error", "api_error", "rate_limit_error", "timeout_error")
_CACHE_COUNTS = ("cache_read_input_tokens", "cache_creation_input_tokens")


def unreadable(what: str) -> UpstreamError:
    """The error for an answer that is valid JSON but not a Messages answer thrifty can read."""
    return UpstreamError(f"the upstream answer could not be read: anthropic sent {what}")


def _object(value: object, what: str) -> Body:
    """A JSON object field (missing → {}); anything else is unreadable."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise unreadable(f"{what} that is not an object")
    return value


def _string(value: object, what: str) -> str | None:
    """An optional string field; anything else is unreadable."""
    if value is None or isinstance(value, str):
        return value
    raise unreadable(f"{what} that is not a string")


def _index(data: Body) -> int:
    index = data.get("index")
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise unreadable(f"a {data.get('type')} event whose index is not a non-negative integer")
    return index


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# ── response: Anthropic → OpenAI ─────────────────────────────────────────────────────────────────


def finish_reason(stop_reason: object) -> str:
    """OpenAI finish_reason for an Anthropic stop_reason (unknown → stop; not a string → unreadable)."""
    return FINISH_REASONS.get(_string(stop_reason, "a stop_reason") or "", "stop")


def usage_from_anthropic(usage: object) -> Usage | None:
    """Anthropic usage as thrifty Usage: input counts every prompt token, cached or not. None when
    there is no readable usage (the gateway then counts the tokens locally, marked estimated)."""
    if not isinstance(usage, dict):
        return None
    if not (_is_count(usage.get("input_tokens")) and _is_count(usage.get("output_tokens"))):
        return None
    if any(usage.get(k) is not None and not _is_count(usage[k]) for k in _CACHE_COUNTS):
        return None
    reads = usage.get("cache_read_input_tokens") or 0
    writes = usage.get("cache_creation_input_tokens") or 0
    return Usage(
        input_tokens=usage["input_tokens"] + reads + writes,
        cached_input_tokens=reads,
        cache_write_tokens=writes,
        cache_write_long_tokens=min(_long_writes(usage.get("cache_creation")), writes),
        output_tokens=usage["output_tokens"],
    )


def _long_writes(detail: object) -> int:
    """The 1-hour cache writes of `usage.cache_creation` (`ephemeral_1h_input_tokens`; 0 if unreadable)."""
    count = detail.get("ephemeral_1h_input_tokens") if isinstance(detail, dict) else None
    return count if _is_count(count) else 0


def openai_usage(usage: Usage) -> Body:
    """Usage in the OpenAI shape, always with prompt_tokens_details."""
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {
            "cached_tokens": usage.cached_input_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
    }


def to_openai_response(data: Body, created: int) -> Body:
    """An Anthropic Messages response as an OpenAI chat.completion body."""
    content = data.get("content")
    if not isinstance(content, list):
        raise UpstreamError("anthropic sent a message without content")
    if not all(isinstance(b, dict) for b in content):
        raise unreadable("a content block that is not an object")
    finish = finish_reason(data.get("stop_reason"))
    answer = next((b for b in content if _is_answer_tool(b)), None)
    if answer is not None:  # an emulated response_format: the tool input is the answer
        message: Body = {"role": "assistant", "content": _json(answer.get("input")), "refusal": None}
        finish = "stop" if finish == "tool_calls" else finish
    else:
        texts = [_string(b.get("text"), "a text block") or "" for b in content if b.get("type") == "text"]
        calls = [_tool_call(b) for b in content if b.get("type") == "tool_use"]
        message = {"role": "assistant", "content": "".join(texts) if texts else None, "refusal": None}
        if calls:
            message["tool_calls"] = calls
    out: Body = {
        "id": data.get("id"),
        "object": "chat.completion",
        "created": created,
        "model": data.get("model"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish,
                "logprobs": None,
            }
        ],
    }
    usage = usage_from_anthropic(data.get("usage"))
    if usage is not None:
        out["usage"] = openai_usage(usage)
    return out


def _tool_call(block: Body) -> Body:
    return {
        "id": _string(block.get("id"), "a tool_use id"),
        "type": "function",
        "function": {"name": _tool_name(block), "arguments": _json(block.get("input"))},
    }


def _tool_name(block: Body) -> str:
    name = _string(block.get("name"), "a tool_use name")
    if not name:
        raise unreadable("a tool_use block without a name")
    return name


def _json(value: object) -> str:
    return orjson.dumps(value or {}).decode()


def _is_answer_tool(block: Body) -> bool:
    """Whether a content block is the tool_use of the emulated response_format."""
    return block.get("type") == "tool_use" and block.get("name") == RESPONSE_FORMAT_TOOL


# ── streaming: Anthropic events → OpenAI chunks ──────────────────────────────────────────────────


class StreamTranslator:
    """Turns Anthropic stream events, one at a time, into OpenAI chat.completion.chunk bodies."""

    def __init__(self, created: int) -> None:
        self.created = created
        self.id: str | None = None
        self.model: str | None = None
        self.usage: Body = {}
        self.stop_reason: str | None = None
        self.finished = False
        self._tool_index: dict[int, int] = {}
        self._answer_index: int | None = None
        """Index of the response_format tool_use block, whose input is streamed as content."""
        self._answer_sent = False
        self._role_sent = False
        self._output_reported = False

    def feed(self, event: str | None, data: Body) -> list[Body]:
        """Chunks for one event; raises UpstreamError on an `error` event. The first chunks carrying
        content (or the finish) are preceded by the role chunk."""
        chunks = self._translate(event, data)
        if chunks and not self._role_sent:
            self._role_sent = True
            chunks.insert(0, self._chunk({"role": "assistant", "content": ""}))
        return chunks

    def _translate(self, event: str | None, data: Body) -> list[Body]:
        kind = data.get("type") or event
        if kind == "message_start":
            return self._message_start(_object(data.get("message"), "a message_start message"))
        if kind == "content_block_start":
            return self._block_start(_index(data), _object(data.get("content_block"), "a content block"))
        if kind == "content_block_delta":
            return self._block_delta(_index(data), _object(data.get("delta"), "a content_block_delta"))
        if kind == "message_delta":
            self._message_delta(data)
            return []
        if kind == "content_block_stop":
            return self._block_stop(_index(data))
        if kind == "message_stop":
            return self._message_stop()
        if kind == "error":
            raise stream_error(data)
        return []  # ping and event types added later carry nothing to forward

    def finish(self) -> None:
        """Call when the upstream stream ends: it must have ended with message_stop."""
        if not self.finished:
            raise UpstreamError("anthropic stream ended without message_stop")

    def _chunk(self, delta: Body, finish: str | None = None) -> Body:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }

    def _message_start(self, message: Body) -> list[Body]:
        self.id = message.get("id")
        self.model = message.get("model")
        usage = message.get("usage")
        self.usage = dict(usage) if isinstance(usage, dict) else {}  # unreadable: as if missing
        return []  # the role chunk waits for the first content (see `feed`)

    def _block_start(self, index: int, block: Body) -> list[Body]:
        if block.get("type") == "text":
            text = _string(block.get("text"), "a text block")
            return [self._chunk({"content": text})] if text else []
        if block.get("type") != "tool_use":
            return []
        if _is_answer_tool(block):
            if self._answer_index is not None:
                return []  # a second answer (never sent: parallel tool use is disabled) is dropped
            self._answer_index = index
            if not block.get("input"):
                return []
            self._answer_sent = True
            return [self._chunk({"content": _json(block["input"])})]
        call_id, name = _string(block.get("id"), "a tool_use id"), _tool_name(block)
        tool_index = self._tool_index[index] = len(self._tool_index)
        arguments = orjson.dumps(block["input"]).decode() if block.get("input") else ""
        call = {
            "index": tool_index,
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
        return [self._chunk({"tool_calls": [call]})]

    def _block_delta(self, index: int, delta: Body) -> list[Body]:
        kind = delta.get("type")
        if kind == "text_delta":
            text = _string(delta.get("text"), "a text_delta")
            return [self._chunk({"content": text})] if text else []
        if kind != "input_json_delta":
            return []  # thinking, signature and citation deltas are not surfaced
        partial = _string(delta.get("partial_json"), "an input_json_delta")
        if partial and index == self._answer_index:
            self._answer_sent = True
            return [self._chunk({"content": partial})]
        if partial and index in self._tool_index:
            call = {"index": self._tool_index[index], "function": {"arguments": partial}}
            return [self._chunk({"tool_calls": [call]})]
        return []

    def _block_stop(self, index: int) -> list[Body]:
        if index != self._answer_index or self._answer_sent:
            return []
        self._answer_sent = True
        return [self._chunk({"content": "{}"})]  # the answer had an empty input

    def _message_delta(self, data: Body) -> None:
        delta = _object(data.get("delta"), "a message_delta")
        stop_reason = _string(delta.get("stop_reason"), "a stop_reason")
        if stop_reason:
            self.stop_reason = stop_reason
        usage = data.get("usage")
        if isinstance(usage, dict):  # unreadable usage: as if missing
            self.usage.update({k: v for k, v in usage.items() if v is not None})
            self._output_reported = self._output_reported or _is_count(usage.get("output_tokens"))

    def _message_stop(self) -> list[Body]:
        """The finish chunk, then the usage chunk (none without readable usage: the gateway estimates)."""
        self.finished = True
        finish = finish_reason(self.stop_reason)
        if finish == "tool_calls" and self._answer_index is not None:
            finish = "stop"
        chunks = [self._chunk({}, finish)]
        usage = self.final_usage()
        if usage is not None:
            chunks.append({**self._chunk({}), "choices": [], "usage": openai_usage(usage)})
        return chunks

    def final_usage(self) -> Usage | None:
        """The stream's usage so far; None when Anthropic sent none that can be read."""
        return usage_from_anthropic(self.usage)

    def reported_usage(self) -> ReportedUsage | None:
        """The exact usage so far (1-hour cache writes included, which the OpenAI-shaped usage chunk
        cannot carry); its output count is final once `message_delta` reported it."""
        usage = self.final_usage()
        return None if usage is None else ReportedUsage(usage, output_final=self._output_reported)


def stream_error(data: Body) -> UpstreamError:
    """An Anthropic stream `error` event as an UpstreamError."""
    error = data.get("error") if isinstance(data.get("error"), dict) else {}
    kind = str(error.get("type") or "error")
    message = str(error.get("message") or "unknown error")[:500]
    return UpstreamError(
        f"anthropic stream error ({kind}): {message}",
        upstream_status=529 if kind == "overloaded_error" else None,
        retryable=kind in _RETRYABLE_STREAM_ERRORS,
    )
