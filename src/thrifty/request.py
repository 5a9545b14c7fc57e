"""Validation of client requests: clear 400s naming the bad parameter, in the OpenAI style."""

from __future__ import annotations

from typing import Any

from thrifty.errors import InvalidRequest
from thrifty.types import Body

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
MAX_N = 16
MAX_TOKENS_CAP = 1_000_000

# parameter → (accepted types, lower bound, upper bound); bools are rejected where numbers are expected.
_NUMERIC: dict[str, tuple[tuple[type, ...], float | None, float | None]] = {
    "temperature": ((int, float), 0, 2),
    "top_p": ((int, float), 0, 1),
    "presence_penalty": ((int, float), -2, 2),
    "frequency_penalty": ((int, float), -2, 2),
    "n": ((int,), 1, MAX_N),
    "max_tokens": ((int,), 1, MAX_TOKENS_CAP),
    "max_completion_tokens": ((int,), 1, MAX_TOKENS_CAP),
    "top_logprobs": ((int,), 0, 20),
    "seed": ((int,), None, None),
}
_BOOL = ("stream", "logprobs", "parallel_tool_calls")
THRIFTY_FIELDS = frozenset({"cache", "max_age", "namespace", "task", "quality_target", "compress"})
"""The keys of a request's `thrifty` object: cache control (`cache.control`), routing hints
(`routing.hints`) and the compression mode (`compress.control`), whose modules validate their values."""


def _fail(message: str, param: str) -> InvalidRequest:
    return InvalidRequest(message, param=param, code="invalid_value")


def _check_numeric(body: Body) -> None:
    for name, (types, low, high) in _NUMERIC.items():
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, types):
            kind = "an integer" if types == (int,) else "a number"
            raise _fail(f"'{name}' must be {kind}, got {type(value).__name__}", name)
        if (low is not None and value < low) or (high is not None and value > high):
            raise _fail(f"'{name}' must be between {low} and {high}, got {value}", name)


def _check_thrifty(body: Body) -> None:
    """The `thrifty` object: a misspelt key or a bad value is a 400, whether or not the stage that
    reads it (cache, router, compressor) is configured."""
    value = body.get("thrifty")
    if value is None:
        return
    if not isinstance(value, dict):
        raise _fail("'thrifty' must be an object", "thrifty")
    unknown = sorted(str(k) for k in value if k not in THRIFTY_FIELDS)
    if unknown:
        param = f"thrifty.{unknown[0]}"
        raise _fail(f"unknown field '{param}'; expected one of {', '.join(sorted(THRIFTY_FIELDS))}", param)
    from thrifty.cache.control import parse_control
    from thrifty.compress.control import read_mode
    from thrifty.routing.hints import read_hints

    parse_control(value)
    read_hints(body)
    read_mode(body)


def _check_function(value: Any, param: str) -> None:
    """A `function` object: at least a string `name`."""
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise _fail(f"{param} must be an object with a string 'name'", param)


def _check_tool(tool: Any, param: str) -> None:
    if not isinstance(tool, dict):
        raise _fail(f"{param} must be an object", param)
    if tool.get("type", "function") == "function":
        _check_function(tool.get("function"), f"{param}.function")


def _check_tool_choice(choice: Any, tools: Any) -> None:
    if choice is None:
        return
    if not isinstance(choice, (str, dict)):
        raise _fail("'tool_choice' must be a string or an object", "tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function":
        _check_function(choice.get("function"), "tool_choice.function")
    if not tools:  # as OpenAI: a choice among no tools is a mistake, not something to drop quietly
        raise _fail("'tool_choice' is only allowed when 'tools' are specified", "tool_choice")


def _check_tool_calls(calls: Any, param: str) -> None:
    """An assistant message's `tool_calls`: an array of {id, type, function: {name, arguments}}."""
    if calls is None:
        return
    if not isinstance(calls, list):
        raise _fail(f"{param} must be an array", param)
    for k, call in enumerate(calls):
        if not isinstance(call, dict):
            raise _fail(f"{param}[{k}] must be an object", f"{param}[{k}]")
        _check_function(call.get("function"), f"{param}[{k}].function")
        arguments = call["function"].get("arguments")
        if arguments is not None and not isinstance(arguments, str):
            raise _fail(
                f"{param}[{k}].function.arguments must be a string", f"{param}[{k}].function.arguments"
            )


def _check_message(i: int, message: Any) -> None:
    param = f"messages[{i}]"
    if not isinstance(message, dict):
        raise _fail(f"{param} must be an object", param)
    role = message.get("role")
    if role not in ROLES:
        raise _fail(f"{param}.role must be one of {sorted(ROLES)}, got {role!r}", f"{param}.role")
    _check_tool_calls(message.get("tool_calls"), f"{param}.tool_calls")
    content = message.get("content")
    if content is None:
        if role in ("user", "system", "developer"):
            raise _fail(f"{param}.content is required for role {role!r}", f"{param}.content")
        return
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _fail(f"{param}.content must be a string or an array of parts", f"{param}.content")
    for j, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise _fail(f"{param}.content[{j}] must be an object with a 'type'", f"{param}.content[{j}]")
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            raise _fail(f"{param}.content[{j}].text must be a string", f"{param}.content[{j}].text")


def validate_chat(body: Any) -> Body:
    """Check the shape of a chat.completions request; return it unchanged."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _fail("'model' is required and must be a non-empty string", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _fail("'messages' is required and must be a non-empty array", "messages")
    for i, message in enumerate(messages):
        _check_message(i, message)
    _check_numeric(body)
    for name in _BOOL:
        if name in body and body[name] is not None and not isinstance(body[name], bool):
            raise _fail(f"'{name}' must be a boolean", name)
    stop = body.get("stop")
    if (
        stop is not None
        and not isinstance(stop, str)
        and not (isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) for s in stop))
    ):
        raise _fail("'stop' must be a string or an array of up to 4 strings", "stop")
    if body.get("top_logprobs") is not None and body.get("logprobs") is not True:
        raise _fail("'top_logprobs' needs 'logprobs': true", "top_logprobs")
    _check_thrifty(body)
    for name in ("tools", "functions"):
        if name in body and body[name] is not None and not isinstance(body[name], list):
            raise _fail(f"'{name}' must be an array", name)
    for j, tool in enumerate(body.get("tools") or ()):
        _check_tool(tool, f"tools[{j}]")
    _check_tool_choice(body.get("tool_choice"), body.get("tools"))
    for name in ("response_format", "stream_options", "metadata", "logit_bias"):
        if name in body and body[name] is not None and not isinstance(body[name], dict):
            raise _fail(f"'{name}' must be an object", name)
    return body


def validate_embeddings(body: Any) -> Body:
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise _fail("'model' is required and must be a non-empty string", "model")
    inp = body.get("input")
    ok = isinstance(inp, str) or (
        isinstance(inp, list) and inp and all(isinstance(x, (str, int, list)) for x in inp)
    )
    if not ok:
        raise _fail("'input' must be a string or a non-empty array", "input")
    if body.get("encoding_format") not in (None, "float", "base64"):
        raise _fail("'encoding_format' must be 'float' or 'base64'", "encoding_format")
    dims = body.get("dimensions")
    if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or dims < 1):
        raise _fail("'dimensions' must be a positive integer", "dimensions")
    return body
