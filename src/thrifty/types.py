"""Plain data passed between pipeline stages.

Requests and responses stay in the OpenAI wire shape (dicts) so that fields thrifty does not know
about pass through untouched; these dataclasses carry what thrifty adds around them.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

Body = dict[str, Any]


def new_request_id() -> str:
    return "req_" + uuid.uuid4().hex[:24]


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_long_tokens: int = 0
    """Of the cache writes, those kept longer at a dearer rate (Anthropic's 1-hour cache)."""
    output_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False

    @classmethod
    def from_openai(cls, usage: Any) -> Usage | None:
        """An OpenAI `usage` object; None when there is none or it cannot be read (a count that is not
        a non-negative integer): the caller then counts locally, as for a provider that sent none."""
        if not usage or not isinstance(usage, dict):
            return None
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        if not isinstance(prompt_details, dict) or not isinstance(completion_details, dict):
            return None
        counts = (
            usage.get("prompt_tokens"),
            prompt_details.get("cached_tokens"),
            prompt_details.get("cache_write_tokens"),
            usage.get("completion_tokens"),
            completion_details.get("reasoning_tokens"),
        )
        if not all(c is None or _is_count(c) for c in counts):
            return None
        inp, cached, written, out, reasoning = (int(c or 0) for c in counts)
        return cls(
            input_tokens=inp,
            cached_input_tokens=cached,
            cache_write_tokens=written,
            output_tokens=out,
            reasoning_tokens=reasoning,
        )

    def to_openai(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "prompt_tokens": self.input_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
        }
        if self.cached_input_tokens or self.cache_write_tokens:
            out["prompt_tokens_details"] = {"cached_tokens": self.cached_input_tokens}
            if self.cache_write_tokens:
                out["prompt_tokens_details"]["cache_write_tokens"] = self.cache_write_tokens
        if self.reasoning_tokens:
            out["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        return out


@dataclass(slots=True, frozen=True)
class ReportedUsage:
    """What an upstream has reported exactly of a stream's usage so far: a provider stream's
    `reported_usage()` (see `thrifty.streaming`). `usage`'s input side is final; its output count is
    final only once `output_final` (Anthropic reports a stream's input in its first event and the
    output count at its end: a stream cut before then has its output counted locally)."""

    usage: Usage
    output_final: bool


MASTER_TENANT = "default"
"""The tenant of the master key, of every caller of a gateway without keys, and of library callers that
name none; no virtual key may have it."""


@dataclass(slots=True)
class Tenant:
    """Who is calling: resolved from the virtual key by the server, or given by a library caller."""

    id: str = MASTER_TENANT
    key_id: str | None = None
    allowed_models: tuple[str, ...] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Savings:
    """What each lever saved on one request, in USD. Sums to baseline − actual on the final row."""

    routing: float = 0.0
    cascade: float = 0.0
    cache_exact: float = 0.0
    cache_semantic: float = 0.0
    compression: float = 0.0
    prompt_cache: float = 0.0
    batching: float = 0.0

    def total(self) -> float:
        return (
            self.routing
            + self.cascade
            + self.cache_exact
            + self.cache_semantic
            + self.compression
            + self.prompt_cache
            + self.batching
        )


DEGRADED = "cascade_degraded"
"""`meta` key of a cascade's final row serving a rejected tier's answer because the final tier failed
(routing/degraded.py): which tier answered, why it was rejected, what failed. That row is no upstream
call of its own (the answer's call is its `rejected` row)."""


@dataclass(slots=True)
class Attempt:
    """One call to one deployment (or one cache answer): one ledger row."""

    request_id: str
    attempt: int
    tenant_id: str
    key_id: str | None
    requested_model: str
    served_model: str | None
    provider: str | None
    deployment: str | None
    status: str  # ok | error | cache_hit | rejected
    http_status: int | None = None
    error: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    baseline_cost_usd: float = 0.0
    savings: Savings = field(default_factory=Savings)
    latency_ms: float = 0.0
    stream: bool = False
    kind: str = "chat"
    final: bool = False
    route: str | None = None
    ts: float = field(default_factory=time.time)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ChatResult:
    """A completed chat answer in the OpenAI shape plus what thrifty knows about it."""

    body: Body
    request_id: str
    served_model: str
    provider: str
    cost_usd: float
    usage: Usage
    cached: bool = False
    attempts: int = 1
    headers: dict[str, str] = field(default_factory=dict)
    stream: Any = None
    """For streaming calls: the `ChatStream` the client reads (body is then empty)."""
    deployment: Any = None
    """The `Deployment` that answered (None for cache hits)."""
    storable: bool = True
    """False: the cache must not keep this answer (a cascade tier its gate rejected, served because the
    final tier failed)."""


def _is_count(value: Any) -> bool:
    """A token count: a non-negative integer (12.0 too, as some OpenAI-compatible servers send it)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return value >= 0 and float(value).is_integer()
