"""The Postgres semantic store against a real Postgres with pgvector (pgserver): search and LRU by use."""

from __future__ import annotations

import pytest

from tests.unit.test_cache_sqlite import entry, text_of, unit
from thrifty.cache.backends import postgres
from thrifty.cache.backends.postgres import PostgresSemanticStore


async def test_a_served_entry_outlives_older_unused_ones(postgres_dsn: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(postgres, "USED_RESOLUTION_S", 0.0)
    store = PostgresSemanticStore(postgres_dsn, dim=8, max_entries=20)
    try:
        for i in range(20):
            await store.add("s", unit(i), entry(f"answer {i}", f"q{i}"), ttl_s=60)
        (first,) = await store.search("s", unit(0), k=1, min_cosine=0.99)
        assert first.key is not None and first.cosine == pytest.approx(1.0, abs=1e-5)
        await store.touch(first)
        await store.add("s", unit(20), entry("answer 20", "q20"), ttl_s=60)  # over the bound: evicts the LRU
        served = await store.search("s", unit(0), k=1, min_cosine=0.99)
        assert [text_of(n.entry) for n in served] == ["answer 0"]
        assert await store.search("s", unit(1), k=1, min_cosine=0.99) == []
    finally:
        await store.close()
