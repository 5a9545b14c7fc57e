"""Per-namespace cache counters: namespaces come from clients, so their number of series is bounded."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from thrifty.cache.metrics import MAX_NAMESPACES, OTHER, CacheMetrics


def test_namespaces_past_the_bound_are_counted_together():
    registry = CollectorRegistry()
    metrics = CacheMetrics(registry)
    for i in range(MAX_NAMESPACES + 50):
        metrics.lookup(f"ns-{i}", "miss", 1.0)
    metrics.lookup("ns-0", "hit-exact", 0.5, saved_usd=0.01)  # a namespace seen early keeps its own
    metrics.stored(f"ns-{MAX_NAMESPACES + 7}")
    snapshot = metrics.snapshot()
    assert len(snapshot) == MAX_NAMESPACES + 1 and snapshot[OTHER]["miss"] == 50
    assert snapshot[OTHER]["stores"] == 1 and snapshot["ns-0"]["hit_exact"] == 1
    labels = {
        s.labels["namespace"]
        for family in registry.collect()
        for s in family.samples
        if "namespace" in s.labels
    }
    assert len(labels) == MAX_NAMESPACES + 1 and OTHER in labels
