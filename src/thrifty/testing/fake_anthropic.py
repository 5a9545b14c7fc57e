"""Anthropic Messages wire format for the fake provider: messages, stream events and errors."""

from __future__ import annotations

import math

import orjson

from thrifty.testing.fake_wire import JSON, MAX_STREAM_CHUNKS, Answer, Tokenizer, new_id

ANTHROPIC_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
TO_ANTHROPIC_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def anthropic_error(status: int, message: str) -> JSON:
    err_type = ANTHROPIC_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": err_type, "message": message}, "request_id": new_id("req_")}


def _anthropic_stop(ans: Answer) -> str:
    return TO_ANTHROPIC_STOP.get(ans.finish_reason, ans.finish_reason)


def anthropic_usage(ans: Answer, *, output_tokens: int | None = None) -> JSON:
    if ans.extra.get("usage_overridden"):
        input_tokens = ans.prompt_tokens
    else:
        input_tokens = max(ans.prompt_tokens - ans.cached_tokens - ans.cache_write_tokens, 0)
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": ans.cache_write_tokens,
        "cache_read_input_tokens": ans.cached_tokens,
        "output_tokens": ans.completion_tokens if output_tokens is None else output_tokens,
        "service_tier": "standard",
    }


def _tool_use_blocks(ans: Answer) -> list[JSON]:
    blocks = []
    for call in ans.tool_calls:
        try:
            args = orjson.loads(call["function"]["arguments"] or "{}")
        except orjson.JSONDecodeError:
            args = {}
        tid = call["id"] if call["id"].startswith("toolu_") else "toolu_" + call["id"].removeprefix("call_")
        blocks.append({"type": "tool_use", "id": tid, "name": call["function"]["name"], "input": args})
    return blocks


def anthropic_message(body: JSON, ans: Answer, *, omit_usage: bool) -> JSON:
    content: list[JSON] = [{"type": "text", "text": ans.content}] if ans.content else []
    content += _tool_use_blocks(ans)
    out: JSON = {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": body.get("model", ""),
        "content": content,
        "stop_reason": _anthropic_stop(ans),
        "stop_sequence": None,
    }
    if not omit_usage:
        out["usage"] = anthropic_usage(ans)
    return out


def sse_event(name: str, data: JSON) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def anthropic_stream_events(
    body: JSON, ans: Answer, tok: Tokenizer, *, omit_usage: bool, scripted: list[JSON] | None = None
) -> list[bytes]:
    """The SSE events of a streamed message, in the real order, ending with ``message_stop``; or, given
    ``scripted`` (the ``anthropic_events`` behaviour), exactly those events."""
    if scripted is not None:
        return [sse_event(event["type"], event) for event in scripted]
    start = anthropic_message(body, ans, omit_usage=True)
    start.update(content=[], stop_reason=None)
    if not omit_usage:
        start["usage"] = anthropic_usage(ans, output_tokens=1)
    events = [sse_event("message_start", {"type": "message_start", "message": start})]
    index = 0
    if ans.content:
        events.append(
            sse_event(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            )
        )
        events.append(sse_event("ping", {"type": "ping"}))
        pieces = tok.pieces(ans.tokens)
        size = max(1, math.ceil(len(ans.tokens) / MAX_STREAM_CHUNKS))
        for s in range(0, len(ans.tokens), size):
            delta = {"type": "text_delta", "text": "".join(pieces[s : s + size])}
            events.append(
                sse_event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
            )
        events.append(sse_event("content_block_stop", {"type": "content_block_stop", "index": 0}))
        index = 1
    for block in _tool_use_blocks(ans):
        head = {**block, "input": {}}
        events.append(
            sse_event(
                "content_block_start", {"type": "content_block_start", "index": index, "content_block": head}
            )
        )
        if index == 0:
            events.append(sse_event("ping", {"type": "ping"}))
        for partial in ("", orjson.dumps(block["input"]).decode()):
            delta = {"type": "input_json_delta", "partial_json": partial}
            events.append(
                sse_event(
                    "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
                )
            )
        events.append(sse_event("content_block_stop", {"type": "content_block_stop", "index": index}))
        index += 1
    message_delta: JSON = {
        "type": "message_delta",
        "delta": {"stop_reason": _anthropic_stop(ans), "stop_sequence": None},
    }
    if not omit_usage:
        message_delta["usage"] = {"output_tokens": ans.completion_tokens}
    events.append(sse_event("message_delta", message_delta))
    events.append(sse_event("message_stop", {"type": "message_stop"}))
    return events
