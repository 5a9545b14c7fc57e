"""Cache keys: a canonical form of everything that changes the answer, scoped by tenant and namespace.

Canonicalisation removes only what cannot change the answer: key order (orjson OPT_SORT_KEYS) and
runs of spaces inside message prose (collapsed to one space; tabs, line breaks, leading indentation,
the text's ends and code — fenced blocks, inline `code` — are kept, since they can change the
answer: two tabs in a row of a TSV table are one empty cell, four are three). Every other request
field is part of the key unless it is known not to affect the answer (streaming and bookkeeping
fields).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import orjson

from thrifty.types import Body

KEY_VERSION = "v2"
"""v2: tabs are kept (v1 collapsed them with spaces, so a v1 key may stand for a text with tab runs)."""

IGNORED_FIELDS = frozenset(
    {"stream", "stream_options", "user", "metadata", "store", "thrifty", "service_tier", "safety_identifier"}
)
"""Request fields that do not change the answer."""

_INLINE_SPACE = re.compile(r"(?<=\S) {2,}(?=\S)")
_TRAILING_SPACE = re.compile(r" +(?=\n)")
_CODE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]+`", re.DOTALL)
"""A fenced code block (to its closing fence, or the end of an unclosed one) or an inline code span."""


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose cache: the tenant and the namespace inside it."""

    tenant: str
    namespace: str = "default"


def normalize_text(text: str) -> str:
    """Collapse runs of spaces between words to one space and drop spaces before line breaks, outside
    code: fenced blocks and inline `code` spans are kept byte for byte (in `print('a  b')` the two
    spaces are the answer). Tabs are kept everywhere: they separate cells, and empty cells count."""
    text = text.replace("\r\n", "\n")
    out: list[str] = []
    prose_from = 0
    for code in _CODE.finditer(text):
        out.append(_normalize_prose(text[prose_from : code.start()]))
        out.append(code.group())
        prose_from = code.end()
    out.append(_normalize_prose(text[prose_from:]))
    return "".join(out)


def _normalize_prose(text: str) -> str:
    return _INLINE_SPACE.sub(" ", _TRAILING_SPACE.sub("", text))


def _normalize_content(content: Any) -> Any:
    if isinstance(content, str):
        return normalize_text(content)
    if isinstance(content, list):
        return [
            {**part, "text": normalize_text(part["text"])}
            if isinstance(part, dict) and isinstance(part.get("text"), str)
            else part
            for part in content
        ]
    return content


def _normalize_message(message: dict[str, Any]) -> dict[str, Any]:
    if "content" not in message:
        return message
    return {**message, "content": _normalize_content(message["content"])}


CACHE_CONTROL_FIELDS = frozenset({"cache", "max_age", "namespace"})


def _thrifty_hints(body: Body) -> dict[str, Any]:
    """Thrifty-only fields that can change the answer (routing hints), minus the cache control."""
    field = body.get("thrifty")
    hints = (
        {k: v for k, v in field.items() if k not in CACHE_CONTROL_FIELDS} if isinstance(field, dict) else {}
    )
    compress = hints.pop("compress", None)  # validated already: off | lossless | on, any case
    if isinstance(compress, str) and compress.strip().lower() != "on":  # "on" is the default
        hints["compress"] = compress.strip().lower()
    metadata = body.get("metadata")
    if isinstance(metadata, dict):
        hints.update({k: v for k, v in metadata.items() if isinstance(k, str) and k.startswith("thrifty_")})
    return hints


def canonical_request(body: Body, requested_model: str) -> dict[str, Any]:
    """The answer-changing part of a request: the requested model, normalised messages, every
    sampling/tool/format parameter, and routing hints."""
    out = {k: v for k, v in body.items() if k not in IGNORED_FIELDS and v is not None}
    hints = _thrifty_hints(body)
    if hints:
        out["thrifty"] = hints
    out["model"] = requested_model
    out["messages"] = [
        _normalize_message(m) if isinstance(m, dict) else m for m in body.get("messages") or ()
    ]
    return out


def digest(value: Any) -> str:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def exact_key(scope: Scope, body: Body, requested_model: str) -> str:
    """sha256 of the canonical request, the tenant and the namespace."""
    return digest(
        [KEY_VERSION, "exact", scope.tenant, scope.namespace, canonical_request(body, requested_model)]
    )


def last_user_text(body: Body) -> str | None:
    """Text of the final message when it is a plain-text user turn (what the semantic cache embeds)."""
    messages = body.get("messages") or ()
    if not messages or not isinstance(messages[-1], dict) or messages[-1].get("role") != "user":
        return None
    content = messages[-1].get("content")
    if isinstance(content, str):
        return content.strip() or None
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        return " ".join(p["text"] for p in content).strip() or None
    return None  # images, audio, files: exact matching only


def semantic_scope(scope: Scope, body: Body, requested_model: str) -> str:
    """Exact hash of everything but the last user turn's text: tenant, namespace, model, system prompt,
    earlier turns, tools and parameters. Only requests with the same context are ever compared, so a
    follow-up like "how old is he?" cannot match one asked after a different conversation."""
    canonical = canonical_request(body, requested_model)
    last = dict(canonical["messages"][-1])
    last.pop("content", None)
    canonical["messages"] = [*canonical["messages"][:-1], last]
    return digest([KEY_VERSION, "semantic", scope.tenant, scope.namespace, canonical])


def nondeterministic(body: Body) -> bool:
    """The client asked for a fresh sample: an explicit temperature above zero."""
    temperature = body.get("temperature")
    return isinstance(temperature, int | float) and temperature > 0
