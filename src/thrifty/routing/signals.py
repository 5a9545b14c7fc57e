"""Cheap signals of a chat request, read once per request: the text to route on and its shape."""

from __future__ import annotations

from dataclasses import dataclass

from thrifty.types import Body

MAX_CHARS = 6000
"""Routing looks at most at this many characters of the last user turn (keeps decisions sub-ms)."""


def content_text(content: object) -> str:
    """The text of a message's `content`: a string as is, the text parts of a list of parts joined by
    newlines (images and other parts carry no text), anything else empty."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(p.get("text") or "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def last_user_text(messages: object) -> str:
    """The text of the last user message (whether its content is a string or parts); "" if none."""
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


@dataclass(slots=True, frozen=True)
class Signals:
    """What a router may look at: no provider call, no tokenizer, just string scans."""

    text: str
    """The last user turn (truncated to MAX_CHARS)."""
    system: str
    depth: int
    """Number of user turns in the conversation."""
    total_chars: int
    response_format: str | None
    """`json_object`, `json_schema`, `text` or None."""
    has_tools: bool

    @classmethod
    def of_prompt(cls, prompt: str) -> Signals:
        return cls(prompt[:MAX_CHARS], "", 1, len(prompt), None, False)

    @classmethod
    def of_body(cls, body: Body) -> Signals:
        messages = body.get("messages") or []
        last_user = ""
        system_parts: list[str] = []
        depth = 0
        total = 0
        for message in messages:
            text = content_text(message.get("content"))
            total += len(text)
            role = message.get("role")
            if role == "user":
                depth += 1
                last_user = text
            elif role in ("system", "developer"):
                system_parts.append(text)
        fmt = body.get("response_format")
        return cls(
            text=last_user[:MAX_CHARS],
            system="\n".join(system_parts)[:MAX_CHARS],
            depth=depth,
            total_chars=total,
            response_format=fmt.get("type") if isinstance(fmt, dict) else None,
            has_tools=bool(body.get("tools") or body.get("functions")),
        )
