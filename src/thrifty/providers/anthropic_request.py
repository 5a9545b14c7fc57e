"""Pure translation of an OpenAI chat request into an Anthropic Messages API request
(`to_anthropic_request`); the way back is `anthropic_response`.

- system/developer messages, wherever they appear, become the top-level `system` (a string when there
  is one plain text, else a list of text blocks that keeps any `cache_control`);
- user/assistant/tool messages become Anthropic turns; consecutive turns of the same role are merged,
  since Anthropic requires the roles to alternate (tool results become user turns);
- `response_format` json_schema / json_object is emulated with one tool, `RESPONSE_FORMAT_TOOL`, whose
  `input_schema` is the schema (`{"type": "object"}` for json_object), forced by `tool_choice`;
  `anthropic_response` turns its tool_use back into plain JSON `content`. It cannot be combined with
  the client's own `tools` (400, `param: response_format`), and `strict` is not enforced upstream;
- fields Anthropic has no counterpart for are dropped silently: `frequency_penalty`,
  `presence_penalty`, `logit_bias`, `logprobs` / `top_logprobs` (the answer carries `logprobs: null`;
  the cascade's logprob gate asks every tier for them and passes an answer without), `seed`,
  `stream_options`, `reasoning_effort`, `store`, `service_tier`, … and a message's `name` (Anthropic
  turns have no author name);
- refused with a 400 naming the parameter, because dropping them would silently change the answer:
  `n > 1` (its shape), the legacy `functions` / `function_call` (the model could never call the
  function: send `tools` / `tool_choice`; an assistant message carrying a legacy `function_call` too),
  audio output (`modalities` containing "audio", or `audio`), and content parts other than text and
  images (`input_audio`, `file`);
- `temperature` is clamped to Anthropic's range [0, 1] (OpenAI allows up to 2).
"""

from __future__ import annotations

import orjson

from thrifty.errors import InvalidRequest
from thrifty.types import Body

DEFAULT_MAX_TOKENS = 4096
RESPONSE_FORMAT_TOOL = "thrifty_json_response"
"""The one tool that carries a `response_format` answer (reserved: a client tool may not use the name)."""


# ── request: OpenAI → Anthropic ──────────────────────────────────────────────────────────────────


def to_anthropic_request(
    body: Body, model: str, *, stream: bool = False, default_max_tokens: int = DEFAULT_MAX_TOKENS
) -> Body:
    """Translate an OpenAI chat request body into an Anthropic Messages request body
    (`default_max_tokens`: sent when the client sets no output cap; the API requires one)."""
    refuse_unsupported(body)
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise InvalidRequest("messages must be a list", param="messages")
    out: Body = {"model": model, "max_tokens": _max_tokens(body, default_max_tokens)}
    system = system_prompt(messages)
    if system is not None:
        out["system"] = system
    out["messages"] = convert_messages(messages)
    if not out["messages"]:  # OpenAI answers a system prompt alone; Anthropic's API refuses it
        raise InvalidRequest(
            "this provider needs at least one user or assistant message besides the system prompt",
            param="messages",
        )
    out.update(_sampling(body))
    tools = body.get("tools")
    answer_tool = response_format_tool(body.get("response_format"))
    if answer_tool is not None:
        if tools:
            raise InvalidRequest(
                "response_format cannot be combined with tools for this provider (it is emulated with a "
                "tool); send one or the other",
                param="response_format",
            )
        out["tools"] = [answer_tool]
        out["tool_choice"] = {"type": "tool", "name": RESPONSE_FORMAT_TOOL, "disable_parallel_tool_use": True}
    elif tools:
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


def refuse_unsupported(body: Body) -> None:
    """A 400 for request fields this provider cannot honour and that would change the answer if dropped."""
    if int(body.get("n") or 1) > 1:
        raise InvalidRequest("this provider returns one choice per request; n must be 1", param="n")
    for name in ("functions", "function_call"):
        if body.get(name):
            raise InvalidRequest(
                f"this provider does not support the legacy {name!r} parameter; "
                "send 'tools' (and 'tool_choice') instead",
                param=name,
            )
    modalities = body.get("modalities")
    if isinstance(modalities, list | tuple | str) and "audio" in modalities:
        raise InvalidRequest(
            "this provider answers in text only; 'modalities' may not ask for audio", param="modalities"
        )
    if body.get("audio") is not None:
        raise InvalidRequest(
            "this provider answers in text only; 'audio' output is not supported", param="audio"
        )


def response_format_tool(response_format: Body | None) -> Body | None:
    """The forced tool that emulates a json_schema / json_object `response_format`; None for text."""
    if response_format is None or (
        isinstance(response_format, dict) and response_format.get("type") == "text"
    ):
        return None
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    spec = response_format.get("json_schema") if kind == "json_schema" else {}
    if kind not in ("json_object", "json_schema") or not isinstance(spec, dict):
        raise InvalidRequest(
            "response_format must be text, json_object, or json_schema with a json_schema object",
            param="response_format",
        )
    schema = spec.get("schema") or {}
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        raise InvalidRequest(
            "this provider needs a response_format schema that is an object with root type object",
            param="response_format",
        )
    what = f"in the {spec['name']} format" if spec.get("name") else "as a JSON object"
    description = f"Give your answer {what}: call this tool with the answer as its input."
    if spec.get("description"):
        description += f" {spec['description']}"
    return {
        "name": RESPONSE_FORMAT_TOOL,
        "description": description,
        "input_schema": {"type": "object", **schema},
    }


def _max_tokens(body: Body, default: int) -> int:
    value = body.get("max_completion_tokens")
    if value is None:
        value = body.get("max_tokens")
    return default if value is None else int(value)


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
        if message.get("function_call") is not None:
            raise InvalidRequest(
                "this provider does not support the legacy assistant 'function_call'; use 'tool_calls'",
                param="messages",
            )
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
        if function.get("name") == RESPONSE_FORMAT_TOOL:
            raise InvalidRequest(f"the tool name {RESPONSE_FORMAT_TOOL!r} is reserved", param="tools")
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
