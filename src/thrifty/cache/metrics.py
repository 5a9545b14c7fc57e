"""Cache counters per namespace: lookups by outcome, savings, and lookup latency."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

OUTCOMES = ("hit-exact", "hit-semantic", "miss", "bypass")
MAX_NAMESPACES = 100
"""Namespaces are named by clients: past this many, new ones are counted together under OTHER, so a
client cannot grow the metric series without bound."""
OTHER = "(other)"  # not a valid namespace name, so it never collides with one
LATENCY_BUCKETS_MS = (0.5, 1, 2, 5, 10, 20, 50, 100, 250, 1000)


@dataclass(slots=True)
class NamespaceStats:
    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    stores: int = 0
    saved_usd: float = 0.0
    lookup_ms_sum: float = 0.0
    lookup_ms_buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))

    @property
    def lookups(self) -> int:
        return sum(v for k, v in self.outcomes.items() if k != "bypass")

    def hit_rate(self) -> float:
        hits = self.outcomes["hit-exact"] + self.outcomes["hit-semantic"]
        return hits / self.lookups if self.lookups else 0.0


class CacheMetrics:
    """Thread-safe counters (`snapshot()`), mirrored into the Gateway's Prometheus registry when given:
    `thrifty_cache_namespace_lookups{namespace,result}`, `thrifty_cache_namespace_saved_usd{namespace}`,
    `thrifty_cache_lookup_seconds{namespace}`."""

    def __init__(self, registry: Any = None) -> None:
        self.lock = threading.Lock()
        self.namespaces: dict[str, NamespaceStats] = {}
        self.prometheus = _Prometheus(registry) if registry is not None else None

    def _stats(self, namespace: str) -> tuple[str, NamespaceStats]:
        """The namespace's label (itself, or OTHER past MAX_NAMESPACES) and its counters; under the lock."""
        if namespace not in self.namespaces and len(self.namespaces) >= MAX_NAMESPACES:
            namespace = OTHER
        stats = self.namespaces.get(namespace)
        if stats is None:
            stats = self.namespaces[namespace] = NamespaceStats()
        return namespace, stats

    def lookup(self, namespace: str, outcome: str, latency_ms: float, saved_usd: float = 0.0) -> None:
        with self.lock:
            label, stats = self._stats(namespace)
            stats.outcomes[outcome] += 1
            stats.saved_usd += saved_usd
            if outcome != "bypass":
                stats.lookup_ms_sum += latency_ms
                bucket = next(
                    (i for i, b in enumerate(LATENCY_BUCKETS_MS) if latency_ms <= b), len(LATENCY_BUCKETS_MS)
                )
                stats.lookup_ms_buckets[bucket] += 1
        if self.prometheus is not None:
            self.prometheus.lookup(label, outcome, latency_ms, saved_usd)

    def stored(self, namespace: str) -> None:
        with self.lock:
            self._stats(namespace)[1].stores += 1

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return {
                name: {
                    **{k.replace("-", "_"): v for k, v in s.outcomes.items()},
                    "lookups": s.lookups,
                    "hit_rate": s.hit_rate(),
                    "stores": s.stores,
                    "saved_usd": s.saved_usd,
                    "lookup_ms_sum": s.lookup_ms_sum,
                    "lookup_ms_buckets": dict(
                        zip([*map(str, LATENCY_BUCKETS_MS), "+Inf"], s.lookup_ms_buckets, strict=True)
                    ),
                }
                for name, s in self.namespaces.items()
            }


class _Prometheus:
    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter, Histogram

        self.lookups = Counter(
            "thrifty_cache_namespace_lookups", "Cache lookups by namespace and outcome.",
            ["namespace", "result"], registry=registry,
        )  # fmt: skip
        self.saved = Counter(
            "thrifty_cache_namespace_saved_usd", "USD saved by cache hits, by namespace.", ["namespace"],
            registry=registry,
        )  # fmt: skip
        self.latency = Histogram(
            "thrifty_cache_lookup_seconds", "Cache lookup latency (exact + embed + search + verify).",
            ["namespace"], buckets=[b / 1000 for b in LATENCY_BUCKETS_MS], registry=registry,
        )  # fmt: skip

    def lookup(self, namespace: str, outcome: str, latency_ms: float, saved_usd: float) -> None:
        self.lookups.labels(namespace, outcome.replace("-", "_")).inc()
        if saved_usd > 0:
            self.saved.labels(namespace).inc(saved_usd)
        if outcome != "bypass":
            self.latency.labels(namespace).observe(latency_ms / 1000)
