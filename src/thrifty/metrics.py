"""Prometheus metrics, fed by every ledger row the Bookkeeper writes.

One `Metrics` object per Gateway, with its own registry (no process-global state). Counters are
per process: with several workers, set `PROMETHEUS_MULTIPROC_DIR` to an empty directory before the
server starts (`thrifty serve --workers N` does it for you) and `/metrics` then aggregates every worker.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from thrifty.types import DEGRADED, Attempt

LEVERS: tuple[str, ...] = (
    "routing", "cascade", "cache_exact", "cache_semantic", "compression", "prompt_cache", "batching",
)  # fmt: skip
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
BREAKER_VALUES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _LiveState(Collector):
    """Read at scrape time: circuit breaker state per deployment and ledger rows dropped."""

    def __init__(self, breakers: Callable[[], dict[str, str]], dropped: Callable[[], int]) -> None:
        self._breakers = breakers
        self._dropped = dropped

    def collect(self) -> Iterator[GaugeMetricFamily]:
        states = GaugeMetricFamily(
            "thrifty_breaker_state",
            "Circuit breaker per deployment: 0 closed, 1 half-open, 2 open.",
            labels=["deployment"],
        )
        for key, state in sorted(self._breakers().items()):
            states.add_metric([key], BREAKER_VALUES.get(state, -1.0))
        yield states
        yield GaugeMetricFamily(
            "thrifty_ledger_dropped_rows", "Ledger rows dropped (write queue full).", value=self._dropped()
        )


class _CacheStores(Collector):
    """Read at scrape time: whether each cache store is up (a store bypassed after a failure is down)."""

    def __init__(self, stores: Callable[[], dict[str, bool]]) -> None:
        self._stores = stores

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            "thrifty_cache_store_up",
            "Cache store health: 1 up, 0 down (bypassed after a failure; requests go on as misses).",
            labels=["store"],
        )
        for store, ok in sorted(self._stores().items()):
            up.add_metric([store], 1.0 if ok else 0.0)
        yield up


class Metrics:
    """Counters and histograms for requests, tokens, money, cache and upstream health."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._live: list[Collector] = []
        r = self.registry
        self.requests = Counter(
            "thrifty_requests", "Answered requests (final ledger rows).", ["model", "status"], registry=r
        )
        self.attempts = Counter(
            "thrifty_attempts", "Upstream calls by outcome (ok, error, rejected).", ["deployment", "status"],
            registry=r,
        )  # fmt: skip
        self.upstream_errors = Counter(
            "thrifty_upstream_errors", "Failed upstream calls.", ["deployment", "http_status"], registry=r
        )
        self.tokens = Counter("thrifty_tokens", "Tokens billed by providers.", ["model", "type"], registry=r)
        self.cost = Counter("thrifty_cost_usd", "Actual spend in USD (every attempt).", ["model"], registry=r)
        self.baseline = Counter(
            "thrifty_baseline_cost_usd", "What the answers would have cost without thrifty.", registry=r
        )
        self.savings = Counter("thrifty_savings_usd", "USD saved, by lever.", ["lever"], registry=r)
        self.overspend = Counter(
            "thrifty_lever_overspend_usd", "USD a lever cost instead of saving (a negative saving).",
            ["lever"], registry=r,
        )  # fmt: skip
        self.cache = Counter(
            "thrifty_cache_lookups", "Chat answers by cache outcome (hit_exact, hit_semantic, miss, bypass).",
            ["result"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "thrifty_request_latency_seconds", "End-to-end latency of answered requests.",
            ["model", "status"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.upstream_latency = Histogram(
            "thrifty_upstream_latency_seconds", "Latency of upstream calls.", ["deployment"],
            buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip

    def watch(self, breakers: Callable[[], dict[str, str]], dropped: Callable[[], int]) -> None:
        """Report live state (breakers, dropped ledger rows) at scrape time."""
        self._scraped(_LiveState(breakers, dropped))

    def watch_cache_stores(self, stores: Callable[[], dict[str, bool]]) -> None:
        """Report each cache store's health at scrape time (`thrifty_cache_store_up{store}`)."""
        self._scraped(_CacheStores(stores))

    def _scraped(self, collector: Collector) -> None:
        self._live.append(collector)
        self.registry.register(collector)

    def observe(self, a: Attempt) -> None:
        """Count one ledger row."""
        model = a.served_model or a.requested_model
        if a.status != "cache_hit" and DEGRADED not in a.meta:  # a degraded answer's row: no call
            self._upstream(a, model)
        self.cost.labels(model).inc(a.cost_usd)
        if not a.final:
            return
        self.requests.labels(model, a.status).inc()
        self.latency.labels(model, a.status).observe(a.latency_ms / 1000)
        self.baseline.inc(a.baseline_cost_usd)
        for lever in LEVERS:
            saved = getattr(a.savings, lever)
            if saved > 0:
                self.savings.labels(lever).inc(saved)
            elif saved < 0:
                self.overspend.labels(lever).inc(-saved)
        if a.kind == "chat":
            self.cache.labels(_cache_result(a)).inc()

    def _upstream(self, a: Attempt, model: str) -> None:
        deployment = a.deployment or "-"
        self.attempts.labels(deployment, a.status).inc()
        self.upstream_latency.labels(deployment).observe(a.latency_ms / 1000)
        if a.status == "error":
            self.upstream_errors.labels(deployment, str(a.http_status or "none")).inc()
        u = a.usage
        for kind, n in (
            ("input", u.input_tokens),
            ("cached_input", u.cached_input_tokens),
            ("output", u.output_tokens),
            ("reasoning", u.reasoning_tokens),
        ):
            if n:
                self.tokens.labels(model, kind).inc(n)

    def render(self) -> bytes:
        """The exposition text; across all workers when `PROMETHEUS_MULTIPROC_DIR` is set."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)
            for collector in self._live:
                merged.register(collector)
            return generate_latest(merged)
        return generate_latest(self.registry)


_CACHE_RESULTS = {"hit-exact": "hit_exact", "hit-semantic": "hit_semantic", "miss": "miss"}


def _cache_result(a: Attempt) -> str:
    """hit_exact | hit_semantic | miss (looked up, not found) | bypass (the cache was not consulted:
    off for the model or the request, a sampling request, write_only, or no cache configured)."""
    return _CACHE_RESULTS.get(str(a.meta.get("cache")), "bypass")
