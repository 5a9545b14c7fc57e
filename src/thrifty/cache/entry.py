"""A stored answer and its wire form (orjson bytes)."""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from thrifty.streaming import replayable
from thrifty.types import Body, Usage


@dataclass(slots=True)
class Entry:
    """A complete chat.completion body plus what a hit needs to book its saving."""

    body: Body
    usage: Usage
    served_model: str
    provider: str | None = None
    created: float = field(default_factory=time.time)
    query: str | None = None
    """The last user turn it answered (semantic entries; shown to the verifier)."""
    original_input_tokens: int | None = None
    """Input tokens of the client's prompt before compression (None: it was sent as written), on the
    provider's scale: a hit's baseline is the uncompressed prompt's price."""

    def age(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.created

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "body": self.body,
                "usage": asdict(self.usage),
                "served_model": self.served_model,
                "provider": self.provider,
                "created": self.created,
                "query": self.query,
                "original_input_tokens": self.original_input_tokens,
            }
        )

    @classmethod
    def from_bytes(cls, raw: bytes | str) -> Entry:
        data: dict[str, Any] = orjson.loads(raw)
        return cls(
            body=data["body"],
            usage=Usage(**data["usage"]),
            served_model=data["served_model"],
            provider=data.get("provider"),
            created=float(data["created"]),
            query=data.get("query"),
            original_input_tokens=data.get("original_input_tokens"),
        )

    def fresh_body(self) -> Body:
        """The stored answer as a new completion: new id and timestamp, the model that answered."""
        return {
            **self.body,
            "id": "chatcmpl-" + uuid.uuid4().hex[:24],
            "created": int(time.time()),
            "model": self.served_model,
        }

    def servable(self, stream: bool) -> bool:
        """Whether a hit may answer with it: a complete answer (entries stored before that rule was
        enforced may not be) that, for a streaming client, a replay streams back as it is."""
        return unstorable(self.body) is None and (not stream or replayable(self.body))


def unstorable(body: Body) -> str | None:
    """Why the cache must not keep this answer, or None: it keeps only complete answers (at least
    one choice, every one finished), never one cut by the content filter (it may be a passing
    refusal) and never an audio answer (its id and expiry are the provider's state)."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        return "no choices"
    for choice in choices:
        if not isinstance(choice, dict) or not choice.get("finish_reason"):
            return "unfinished"
        if choice["finish_reason"] == "content_filter":
            return "content filter"
        message = choice.get("message")
        if isinstance(message, dict) and message.get("audio") is not None:
            return "audio"
    return None
