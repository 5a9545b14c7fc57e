"""The fake provider's model of provider prompt caching (opt-in: `FakeProvider(prompt_cache=True)`).

A usage model, not the providers' code; it follows their published rules closely enough to test
against:

- OpenAI style (`/v1/chat/completions`): automatic. Prompts of at least 1,024 tokens are cached in
  128-token steps; a later request to the same model reports as `cached_tokens` the longest step
  boundary whose whole token prefix (tools, then messages in order) it has seen before.
- Anthropic style (`/v1/messages`): only at `cache_control` breakpoints (tools → system → messages
  blocks). A breakpoint whose prefix reaches the minimum (1,024 tokens; 2,048 for Haiku models) is
  written (`cache_creation_input_tokens`); a later request reads (`cache_read_input_tokens`) the
  longest cached block boundary at most 20 blocks before its last breakpoint.

Each fake server has its own cache, like each deployment of a real provider.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import orjson

from thrifty.testing.fake_wire import Tokenizer

OPENAI_MIN = 1024
OPENAI_STEP = 128
ANTHROPIC_MIN = 1024
ANTHROPIC_MIN_HAIKU = 2048
LOOKBACK_BLOCKS = 20


def _texts(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(_texts(v) for v in value)
    if isinstance(value, dict):
        if isinstance(value.get("text"), str):
            return value["text"]
        return _texts(value.get("content"))
    return ""


def _without_cache_control(block: Any) -> Any:
    if isinstance(block, dict):
        return {k: v for k, v in block.items() if k != "cache_control"}
    return block


class PrefixCache:
    """Prefix hashes seen by one fake server; thread-safe."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tok = tokenizer
        self._seen: set[bytes] = set()
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._seen.clear()

    # ------------------------------------------------------------------ OpenAI: automatic

    def openai(self, body: dict[str, Any], prompt_tokens: int) -> int:
        """Cached tokens for this request; remembers its prefixes for the next ones."""
        tokens: list[int] = []
        tools = body.get("tools")
        if isinstance(tools, list) and tools:
            tokens += self.tok.encode(orjson.dumps(tools).decode())
        for message in body.get("messages") or ():
            if isinstance(message, dict):
                tokens += self.tok.encode(f"<{message.get('role')}>" + _texts(message.get("content")))
        if len(tokens) < OPENAI_MIN:
            return 0
        digest = hashlib.blake2b(str(body.get("model")).encode())
        keys: list[tuple[int, bytes]] = []
        done = 0
        for boundary in range(OPENAI_MIN, len(tokens) + 1, OPENAI_STEP):
            digest.update(orjson.dumps(tokens[done:boundary]))
            done = boundary
            keys.append((boundary, digest.copy().digest()))
        with self._lock:
            hit = max((b for b, k in keys if k in self._seen), default=0)
            self._seen.update(k for _, k in keys)
        return min(hit, prompt_tokens)

    # ------------------------------------------------------------------ Anthropic: breakpoints

    def anthropic(self, body: dict[str, Any], prompt_tokens: int) -> tuple[int, int]:
        """(cache read tokens, cache write tokens) for this request."""
        blocks = self._blocks(body)
        marks = [i for i, (_, marked, _) in enumerate(blocks) if marked]
        if not marks:
            return 0, 0
        minimum = ANTHROPIC_MIN_HAIKU if "haiku" in str(body.get("model")).lower() else ANTHROPIC_MIN
        digest = hashlib.blake2b(str(body.get("model")).encode())
        keys: list[bytes] = []
        cumulative: list[int] = []
        total = 0
        for raw, _, count in blocks:
            digest.update(raw)
            keys.append(digest.copy().digest())
            total += count
            cumulative.append(total)
        last = marks[-1]
        with self._lock:
            read = 0
            for j in range(last, max(-1, last - LOOKBACK_BLOCKS), -1):
                if keys[j] in self._seen:
                    read = cumulative[j]
                    break
            for i in marks:
                if cumulative[i] >= minimum:
                    self._seen.add(keys[i])
        write = cumulative[last] - read if cumulative[last] >= minimum else 0
        read = min(read, prompt_tokens)
        return read, min(write, prompt_tokens - read)

    def _blocks(self, body: dict[str, Any]) -> list[tuple[bytes, bool, int]]:
        """(canonical bytes, has breakpoint, tokens) per cacheable block, in cache order."""
        out: list[tuple[bytes, bool, int]] = []
        for tool in body.get("tools") or ():
            clean = _without_cache_control(tool)
            out.append(
                (orjson.dumps(clean), "cache_control" in tool, self.tok.count(orjson.dumps(clean).decode()))
            )
        system = body.get("system")
        system_blocks = [{"type": "text", "text": system}] if isinstance(system, str) else system or []
        for block in system_blocks:
            out.append(self._block(block))
        for turn in body.get("messages") or ():
            content = turn.get("content") if isinstance(turn, dict) else None
            content = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
            for block in content:
                out.append(self._block(block, role=str(turn.get("role"))))
        return out

    def _block(self, block: Any, role: str = "system") -> tuple[bytes, bool, int]:
        clean = _without_cache_control(block)
        raw = role.encode() + orjson.dumps(clean)
        marked = isinstance(block, dict) and "cache_control" in block
        return raw, marked, self.tok.count(_texts(clean) if isinstance(clean, dict) else "")
