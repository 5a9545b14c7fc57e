"""The `compression:` config section: per-lever settings, overridable per requested model or route.

```yaml
compression:
  normalize: {enabled: true}                 # lossless, on by default
  extractive: {enabled: false, ratio: 0.5, budget_tokens: null, min_context_tokens: 300,
               max_message_chars: 300000}
  summarize: {enabled: false, min_tokens: 1000, target_tokens: 400, model: null, timeout_s: 60}
  cpu: {threads: 2, inline_chars: 8000, budget_s: 2.0}   # top level only: where the CPU work runs
  routes:                                    # keyed by the model name the client asks for
    rag-assistant: {extractive: {enabled: true, ratio: 0.4}}
```

A route entry only lists what differs; it is laid over the top-level settings (`cpu` is process-wide
and cannot be set per route).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from thrifty.config import Section


class NormalizeSettings(Section):
    enabled: bool = True
    dedupe: bool = False
    """Drop a block repeated inside one user message (not lossless: repetition can carry meaning)."""
    dedupe_min_chars: int = Field(64, ge=8)
    """Blocks shorter than this are never dropped as duplicates."""


class ExtractiveSettings(Section):
    enabled: bool = False
    ratio: float | None = Field(0.5, gt=0, le=1)
    """Share of context tokens kept (0.5 = half); with `budget_tokens` too, the smaller target wins."""
    budget_tokens: int | None = Field(None, ge=1)
    """Absolute context token budget per user message."""
    min_context_tokens: int = Field(300, ge=0)
    """Contexts shorter than this are left alone."""
    embeddings: bool = False
    """Add local MiniLM relevance (memoised by content; costly on a cold context, see docs)."""
    max_message_chars: int = Field(300_000, ge=1)
    """A user message longer than this is not extracted (it is sent normalised only): extraction
    time grows with the message, and a message too big to cut within `cpu.budget_s` is not worth
    a slot. Per message, so a message's output still depends on that message alone (prefix rule)."""

    @model_validator(mode="after")
    def _needs_target(self) -> ExtractiveSettings:
        if self.enabled and self.ratio is None and self.budget_tokens is None:
            raise ValueError("extractive compression needs `ratio` or `budget_tokens`")
        return self


class SummarizeSettings(Section):
    enabled: bool = False
    model: str | None = None
    """Model that writes the summary; default: the cheapest configured chat model."""
    min_tokens: int = Field(1000, ge=1)
    """Only system/developer messages at least this long are summarised."""
    target_tokens: int = Field(400, ge=16)
    roles: list[Literal["system", "developer"]] = Field(default_factory=lambda: ["system", "developer"])
    store: str | None = None
    """SQLite file for the memo; default: `<ledger path stem>-compress.db` next to the ledger."""
    timeout_s: float = Field(60.0, gt=0)
    """Longest wait for the summary model; a request waits this long (once per source, as concurrent
    requests share the call) before going on uncompressed."""


class CpuSettings(Section):
    """Where normalisation and extraction run: they are CPU work, so off the event loop."""

    threads: int = Field(2, ge=1, le=16)
    """Compressions that may run at once per process (worker threads). Pure-Python work holds the GIL,
    so more threads add little throughput; two keep a medium prompt from queueing behind a large one."""
    inline_chars: int = Field(8_000, ge=0)
    """Requests with at most this much work compress on the event loop, in characters normalised (a
    user-message character that is extracted too counts 4): ~2.5 ms, little more than the hop to a
    thread (~70 µs) plus the wait for a free slot, and no reordering of concurrent small requests."""
    budget_s: float | None = Field(2.0, gt=0)
    """Longest a request waits for its compression, a free slot included; past it the request goes on
    uncompressed (the running work finishes in the background, keeping its slot). None: no limit."""


class CompressionSettings(Section):
    normalize: NormalizeSettings = Field(default_factory=NormalizeSettings)
    extractive: ExtractiveSettings = Field(default_factory=ExtractiveSettings)
    summarize: SummarizeSettings = Field(default_factory=SummarizeSettings)

    @property
    def any_enabled(self) -> bool:
        return self.normalize.enabled or self.extractive.enabled or self.summarize.enabled


class CompressionConfig(CompressionSettings):
    routes: dict[str, CompressionSettings] = Field(default_factory=dict)
    cpu: CpuSettings = Field(default_factory=CpuSettings)

    @model_validator(mode="after")
    def _routes_merge(self) -> CompressionConfig:
        for name in self.routes:
            self.for_route(name)  # a route whose merged settings are invalid fails at load time
        return self

    def for_route(self, model: str) -> CompressionSettings:
        """Settings for a request to `model`: the route's entry laid over the top level."""
        override = self.routes.get(model)
        base = CompressionSettings.model_validate(self.model_dump(exclude={"routes", "cpu"}))
        if override is None:
            return base
        merged = _deep_merge(base.model_dump(), override.model_dump(exclude_unset=True))
        return CompressionSettings.model_validate(merged)

    @property
    def any_route_enabled(self) -> bool:
        return self.any_enabled or any(self.for_route(name).any_enabled for name in self.routes)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = (
            _deep_merge(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else value
        )
    return out
