"""Pure translation between the OpenAI chat wire shape and the Anthropic Messages API.

Request mapping (`to_anthropic_request`):

- system/developer messages, wherever they appear, become the top-level `system` (a string when there
  is one plain text, else a list of text blocks that keeps any `cache_control`);
- user/assistant/tool messages become Anthropic turns; consecutive turns of the same role are merged,
  since Anthropic requires the roles to alternate (tool results become user turns);
- fields Anthropic has no counterpart for are dropped silently: `response_format` (no instruction is
  added to the prompt), `frequency_penalty`, `presence_penalty`, `logit_bias`, `logprobs`, `seed`,
  `stream_options`, `reasoning_effort`, `store`, `service_tier`, … Only `n > 1` is refused, because
  dropping it would silently change the answer's shape;
- `temperature` is clamped to Anthropic's range [0, 1] (OpenAI allows up to 2).

Response mapping (`to_openai_response`) keeps text and tool use; thinking blocks are not surfaced.
`StreamTranslator` turns Anthropic stream events into OpenAI `chat.completion.chunk` bodies.
"""

from __future__ import annotations

import orjson

from thrifty.errors import InvalidRequest, UpstreamError
from thrifty.types import Body, Usage

DEFAULT_MAX_TOKENS = 4096

FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

_RETRYABLE_STREAM_ERRORS = ("overloaded_error", "api_error", "rate_limit_error", "timeout_error")


# ── request: OpenAI → Anthropic ──────────────────────────────────────────────────────────────────


def to_anthropic_request(body: Body, model: str, *, stream: bool = False) -> Body:
    """Translate an OpenAI chat request body into an Anthropic Messages request body."""
    if int(body.get("n") or 1) > 1:
        raise InvalidRequest("this provider returns one choice per request; n must be 1", param="n")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise InvalidRequest("messages must be a list", param="messages")
    out: Body = {"model": model, "max_tokens": _max_tokens(body)}
    system = system_prompt(messages)
    if system is not None:
        out["system"] = system
    out["messages"] = convert_messages(messages)
    out.update(_sampling(body))
    tools = body.get("tools")
    if tools:
        out["tools"] = convert_tools(tools)
        choice = convert_tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice is not None:
            out["tool_choice"] = choice
    user_id = _user_id(body)
    if user_id is not None:
        out["metadata"] = {"user_id": user_id}
    if stream:
        out["stream"] = True
    return out


def _max_tokens(body: Body) -> int:
    value = body.get("max_completion_tokens")
    if value is None:
        value = body.get("max_tokens")
    return DEFAULT_MAX_TOKENS if value is None else int(value)


def _sampling(body: Body) -> Body:
    out: Body = {}
    if body.get("temperature") is not None:
        out["temperature"] = min(float(body["temperature"]), 1.0)
    if body.get("top_p") is not None:
        out["top_p"] = body["top_p"]
    if body.get("top_k") is not None:
        out["top_k"] = body["top_k"]
    stop = stop_sequences(body.get("stop"))
    if stop:
        out["stop_sequences"] = stop
    return out


def stop_sequences(stop: str | list[str] | None) -> list[str]:
    """OpenAI `stop` (a string or a list) as Anthropic `stop_sequences`."""
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    return [s for s in stop if isinstance(s, str)]


def _user_id(body: Body) -> str | None:
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and metadata.get("user_id"):
        return str(metadata["user_id"])
    return str(body["user"]) if body.get("user") else None


def system_prompt(messages: list[Body]) -> str | list[Body] | None:
    """Collect system/developer messages as Anthropic's top-level `system`."""
    blocks: list[Body] = []
    for message in messages:
        if message.get("role") in ("system", "developer"):
            blocks.extend(_with_message_cache_control(_content_blocks(message.get("content")), message))
    for block in blocks:
        if block["type"] != "text":
            raise InvalidRequest("system messages may only contain text", param="messages")
    if not blocks:
        return None
    if len(blocks) == 1 and "cache_control" not in blocks[0]:
        return str(blocks[0]["text"])
    return blocks


def convert_messages(messages: list[Body]) -> list[Body]:
    """Translate the non-system messages to Anthropic turns, merging consecutive same-role turns."""
    turns: list[Body] = []
    for message in messages:
        turn = convert_message(message)
        if turn is None or not turn["content"]:
            continue
        if turns and turns[-1]["role"] == turn["role"]:
            turns[-1]["content"].extend(turn["content"])
        else:
            turns.append(turn)
    return turns


def convert_message(message: Body) -> Body | None:
    """One OpenAI message as one Anthropic turn; None for system/developer messages."""
    role = message.get("role")
    if role in ("system", "developer"):
        return None
    if role == "user":
        blocks = _content_blocks(message.get("content"))
    elif role == "assistant":
        blocks = _content_blocks(message.get("content"))
        blocks.extend(tool_use_block(call) for call in message.get("tool_calls") or [])
    elif role == "tool":
        blocks, role = [tool_result_block(message)], "user"
    else:
        raise InvalidRequest(f"unsupported message role {role!r}", param="messages")
    return {"role": role, "content": _with_message_cache_control(blocks, message)}


def _with_message_cache_control(blocks: list[Body], message: Body) -> list[Body]:
    """A `cache_control` set on the message itself goes on its last block."""
    if blocks and isinstance(message.get("cache_control"), dict):
        blocks[-1] = {**blocks[-1], "cache_control": message["cache_control"]}
    return blocks


def _content_blocks(content: str | list[Body] | None) -> list[Body]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequest("message content must be a string or a list of parts", param="messages")
    return [block for part in content if (block := content_block(part)) is not None]


def content_block(part: Body) -> Body | None:
    """One OpenAI content part as an Anthropic content block (None for an empty text part)."""
    kind = part.get("type")
    if kind in ("text", "refusal"):
        text = part.get("text") if kind == "text" else part.get("refusal")
        if not text:
            return None
        block: Body = {"type": "text", "text": str(text)}
    elif kind == "image_url":
        block = image_block(part.get("image_url"))
    else:
        raise InvalidRequest(f"unsupported content part type {kind!r}", param="messages")
    if "cache_control" in part:
        block["cache_control"] = part["cache_control"]
    return block


def image_block(image_url: str | Body | None) -> Body:
    """An OpenAI image_url (data: URL or http(s) URL) as an Anthropic image block."""
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str) or not url:
        raise InvalidRequest("image_url part without a url", param="messages")
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        media_type, _, encoding = header.partition(";")
        if not sep or encoding != "base64" or not media_type:
            raise InvalidRequest("image data URLs must be base64 with a media type", param="messages")
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise InvalidRequest("image_url must be a data: or http(s) URL", param="messages")


def tool_use_block(call: Body) -> Body:
    """An OpenAI assistant tool call as an Anthropic tool_use block (arguments parsed to an object)."""
    function = call.get("function") or {}
    arguments = function.get("arguments") or "{}"
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) else arguments
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest("tool call arguments are not valid JSON", param="messages") from exc
    if not isinstance(parsed, dict):
        raise InvalidRequest("tool call arguments must be a JSON object", param="messages")
    return {"type": "tool_use", "id": call.get("id"), "name": function.get("name"), "input": parsed}


def tool_result_block(message: Body) -> Body:
    """An OpenAI `tool` message as an Anthropic tool_result block."""
    content = message.get("content")
    block: Body = {"type": "tool_result", "tool_use_id": message.get("tool_call_id")}
    if isinstance(content, list):
        block["content"] = _content_blocks(content)
    elif content:
        block["content"] = str(content)
    return block


def convert_tools(tools: list[Body]) -> list[Body]:
    """OpenAI function tools as Anthropic tools with an `input_schema`."""
    out: list[Body] = []
    for tool in tools:
        if tool.get("type") != "function" or not isinstance(tool.get("function"), dict):
            raise InvalidRequest("only function tools are supported", param="tools")
        function = tool["function"]
        converted: Body = {
            "name": function.get("name"),
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if function.get("description"):
            converted["description"] = function["description"]
        if "cache_control" in tool:
            converted["cache_control"] = tool["cache_control"]
        out.append(converted)
    return out


def convert_tool_choice(choice: str | Body | None, parallel: bool | None) -> Body | None:
    """OpenAI `tool_choice` (+ `parallel_tool_calls`) as Anthropic `tool_choice`; None means default."""
    if choice == "none":
        return {"type": "none"}
    if choice is None or choice == "auto":
        converted: Body = {"type": "auto"}
    elif choice == "required":
        converted = {"type": "any"}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        converted = {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    else:
        raise InvalidRequest(f"unsupported tool_choice {choice!r}", param="tool_choice")
    if parallel is False:
        converted["disable_parallel_tool_use"] = True
    return None if converted == {"type": "auto"} and choice is None else converted


# ── response: Anthropic → OpenAI ─────────────────────────────────────────────────────────────────


def finish_reason(stop_reason: str | None) -> str:
    return FINISH_REASONS.get(stop_reason or "", "stop")


def usage_from_anthropic(usage: Body | None) -> Usage:
    """Anthropic usage as thrifty Usage: input counts every prompt token, cached or not."""
    usage = usage or {}
    reads = int(usage.get("cache_read_input_tokens") or 0)
    writes = int(usage.get("cache_creation_input_tokens") or 0)
    return Usage(
        input_tokens=int(usage.get("input_tokens") or 0) + reads + writes,
        cached_input_tokens=reads,
        cache_write_tokens=writes,
        output_tokens=int(usage.get("output_tokens") or 0),
    )


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
    texts = [str(b.get("text") or "") for b in content if b.get("type") == "text"]
    calls = [_tool_call(b) for b in content if b.get("type") == "tool_use"]
    message: Body = {"role": "assistant", "content": "".join(texts) if texts else None, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": data.get("id"),
        "object": "chat.completion",
        "created": created,
        "model": data.get("model"),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason(data.get("stop_reason")),
                "logprobs": None,
            }
        ],
        "usage": openai_usage(usage_from_anthropic(data.get("usage"))),
    }


def _tool_call(block: Body) -> Body:
    return {
        "id": block.get("id"),
        "type": "function",
        "function": {"name": block.get("name"), "arguments": orjson.dumps(block.get("input") or {}).decode()},
    }


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

    def feed(self, event: str | None, data: Body) -> list[Body]:
        """Chunks for one event; raises UpstreamError on an `error` event."""
        kind = data.get("type") or event
        if kind == "message_start":
            return self._message_start(data.get("message") or {})
        if kind == "content_block_start":
            return self._block_start(int(data.get("index") or 0), data.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(int(data.get("index") or 0), data.get("delta") or {})
        if kind == "message_delta":
            self._message_delta(data)
            return []
        if kind == "message_stop":
            return self._message_stop()
        if kind == "error":
            raise stream_error(data)
        return []  # ping, content_block_stop and event types added later carry nothing to forward

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
        self.usage = dict(message.get("usage") or {})
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, index: int, block: Body) -> list[Body]:
        if block.get("type") == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        if block.get("type") != "tool_use":
            return []
        tool_index = self._tool_index[index] = len(self._tool_index)
        arguments = orjson.dumps(block["input"]).decode() if block.get("input") else ""
        call = {
            "index": tool_index,
            "id": block.get("id"),
            "type": "function",
            "function": {"name": block.get("name"), "arguments": arguments},
        }
        return [self._chunk({"tool_calls": [call]})]

    def _block_delta(self, index: int, delta: Body) -> list[Body]:
        kind = delta.get("type")
        if kind == "text_delta" and delta.get("text"):
            return [self._chunk({"content": delta["text"]})]
        if kind == "input_json_delta" and delta.get("partial_json") and index in self._tool_index:
            call = {"index": self._tool_index[index], "function": {"arguments": delta["partial_json"]}}
            return [self._chunk({"tool_calls": [call]})]
        return []  # thinking, signature and citation deltas are not surfaced

    def _message_delta(self, data: Body) -> None:
        stop_reason = (data.get("delta") or {}).get("stop_reason")
        if stop_reason:
            self.stop_reason = stop_reason
        self.usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})

    def _message_stop(self) -> list[Body]:
        self.finished = True
        usage_chunk = {**self._chunk({}), "choices": [], "usage": openai_usage(self.final_usage())}
        return [self._chunk({}, finish_reason(self.stop_reason)), usage_chunk]

    def final_usage(self) -> Usage:
        return usage_from_anthropic(self.usage)


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
