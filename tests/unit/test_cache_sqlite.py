"""The SQLite stores: TTL, the size bound, concurrent writers, persistence and the rebuilt index."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from thrifty.cache.backends.sqlite_exact import SqliteExactStore
from thrifty.cache.backends.sqlite_semantic import SqliteSemanticStore
from thrifty.cache.entry import Entry
from thrifty.types import Usage


def entry(text: str, query: str | None = None) -> Entry:
    body = {"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": {"content": text}}]}
    return Entry(body, Usage(input_tokens=10, output_tokens=5), "gpt-4o", "fakeai", query=query)


def text_of(e: Entry | None) -> str | None:
    return None if e is None else e.body["choices"][0]["message"]["content"]


def unit(seed: int, dim: int = 8) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def test_entries_expire_after_their_ttl(tmp_path: Path):
    store = SqliteExactStore(str(tmp_path / "c.db"), 100)
    store.put_sync("short", entry("a"), ttl_s=0.3)
    store.put_sync("long", entry("b"), ttl_s=60)
    assert text_of(store.get_sync("short")) == "a"
    time.sleep(0.4)
    assert store.get_sync("short") is None
    assert text_of(store.get_sync("long")) == "b"


def test_size_bound_evicts_least_recently_used(tmp_path: Path):
    store = SqliteExactStore(str(tmp_path / "c.db"), max_entries=10)
    for i in range(10):
        store.put_sync(f"k{i}", entry(str(i)), ttl_s=60)
    time.sleep(1.1)  # last-use times have a 1 s resolution
    assert store.get_sync("k0") is not None  # k0 becomes the most recently used
    for i in range(10, 15):
        store.put_sync(f"k{i}", entry(str(i)), ttl_s=60)
    assert len(store) <= 10
    conn = sqlite3.connect(tmp_path / "c.db")
    assert conn.execute("SELECT count(*) FROM cache_exact").fetchone()[0] == len(store)
    assert store.get_sync("k0") is not None and store.get_sync("k14") is not None
    assert store.get_sync("k1") is None  # least recently used went first


def test_rewriting_a_key_keeps_one_row(tmp_path: Path):
    store = SqliteExactStore(str(tmp_path / "c.db"), 10)
    for i in range(5):
        store.put_sync("same", entry(str(i)), ttl_s=60)
    assert len(store) == 1 and text_of(store.get_sync("same")) == "4"


def test_concurrent_writer_threads(tmp_path: Path):
    store = SqliteExactStore(str(tmp_path / "c.db"), 10_000)
    errors: list[BaseException] = []

    def write(t: int) -> None:
        try:
            for i in range(100):
                store.put_sync(f"t{t}-{i}", entry(f"{t}:{i}"), ttl_s=60)
                store.get_sync(f"t{t}-{i // 2}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(store) == 800
    assert all(text_of(store.get_sync(f"t{t}-99")) == f"{t}:99" for t in range(8))


def _process_writer(path: str, worker: int, count: int) -> None:
    store = SqliteExactStore(path, 100_000)
    for i in range(count):
        store.put_sync(f"p{worker}-{i}", entry(f"{worker}:{i}"), ttl_s=60)
        store.put_sync("shared", entry(f"{worker}:{i}"), ttl_s=60)


def test_concurrent_writer_processes_share_one_file(tmp_path: Path):
    path = str(tmp_path / "c.db")
    SqliteExactStore(path, 100_000)  # create the schema once, like a server start
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_process_writer, args=(path, w, 150)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    store = SqliteExactStore(path, 100_000)
    assert len(store) == 4 * 150 + 1  # the count kept by triggers matches every committed row
    assert sqlite3.connect(path).execute("SELECT count(*) FROM cache_exact").fetchone()[0] == 601
    assert text_of(store.get_sync("p3-149")) == "3:149"


def test_exact_entries_survive_a_restart(tmp_path: Path):
    path = str(tmp_path / "c.db")
    first = SqliteExactStore(path, 100)
    first.put_sync("k", entry("kept"), ttl_s=60)
    asyncio.run(first.close())
    assert text_of(SqliteExactStore(path, 100).get_sync("k")) == "kept"


async def test_semantic_index_is_rebuilt_on_start_and_sees_other_writers(tmp_path: Path):
    path = str(tmp_path / "c.db")
    one = SqliteSemanticStore(path, dim=8, max_entries=100)
    await one.add("scope-a", unit(1), entry("answer 1", "q1"), ttl_s=60)
    await one.add("scope-b", unit(2), entry("answer 2", "q2"), ttl_s=60)
    await one.close()

    two = SqliteSemanticStore(path, dim=8, max_entries=100)  # a restart: index rebuilt from the file
    found = await two.search("scope-a", unit(1), k=4, min_cosine=0.5)
    assert [(text_of(n.entry), n.entry.query) for n in found] == [("answer 1", "q1")]
    assert found[0].cosine == pytest.approx(1.0, abs=1e-5)
    assert await two.search("scope-c", unit(1), k=4, min_cosine=-1) == []  # other scopes never match

    three = SqliteSemanticStore(path, dim=8, max_entries=100)  # another process on the same file
    await three.add("scope-a", unit(3), entry("answer 3", "q3"), ttl_s=60)
    found = await two.search("scope-a", unit(3), k=1, min_cosine=0.5)
    assert [text_of(n.entry) for n in found] == ["answer 3"]


async def test_semantic_entries_expire_and_respect_min_cosine(tmp_path: Path):
    store = SqliteSemanticStore(str(tmp_path / "c.db"), dim=8, max_entries=100)
    await store.add("s", unit(1), entry("gone", "q"), ttl_s=0.2)
    far = -unit(1)
    assert await store.search("s", far, k=4, min_cosine=0.0) == []
    time.sleep(0.3)
    assert await store.search("s", unit(1), k=4, min_cosine=0.0) == []


async def test_semantic_store_keeps_its_size_bound(tmp_path: Path):
    store = SqliteSemanticStore(str(tmp_path / "c.db"), dim=8, max_entries=20)
    for i in range(50):
        await store.add("s", unit(i), entry(f"answer {i}", f"q{i}"), ttl_s=60)
    assert len(store) <= 20
    assert (
        sqlite3.connect(tmp_path / "c.db").execute("SELECT count(*) FROM cache_semantic").fetchone()[0] <= 20
    )
    newest = await store.search("s", unit(49), k=1, min_cosine=0.5)
    assert [text_of(n.entry) for n in newest] == ["answer 49"]
    assert await store.search("s", unit(0), k=1, min_cosine=0.99) == []  # evicted: never served


async def test_the_index_forgets_evicted_and_expired_rows(tmp_path: Path):
    store = SqliteSemanticStore(str(tmp_path / "c.db"), dim=8, max_entries=20)
    for i in range(200):
        await store.add(f"scope-{i % 3}", unit(i), entry(f"answer {i}", f"q{i}"), ttl_s=60)
    assert len(store.index) == len(store) <= 20  # memory follows the size bound, not every row ever added
    await store.add("short", unit(500), entry("brief", "q"), ttl_s=0.2)
    time.sleep(0.3)
    await store.add("s", unit(501), entry("later", "q"), ttl_s=60)  # any write purges expired rows
    assert "short" not in store.index.scopes
    assert len(store.index) == len(store)


async def test_every_process_forgets_rows_another_one_evicted(tmp_path: Path):
    path = str(tmp_path / "c.db")
    reader = SqliteSemanticStore(path, dim=8, max_entries=30)
    for i in range(30):
        await reader.add("s", unit(i), entry(f"answer {i}", f"q{i}"), ttl_s=60)
    writer = SqliteSemanticStore(path, dim=8, max_entries=30)
    for i in range(30, 90):
        await writer.add("s", unit(i), entry(f"answer {i}", f"q{i}"), ttl_s=60)
    assert await reader.search("s", unit(0), k=1, min_cosine=0.99) == []  # evicted by the writer
    found = await reader.search("s", unit(89), k=1, min_cosine=0.99)
    assert [text_of(n.entry) for n in found] == ["answer 89"]
    assert len(reader.index) == len(writer.index) == len(reader)


async def test_a_served_entry_outlives_older_unused_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from thrifty.cache.backends import sqlite_semantic

    monkeypatch.setattr(sqlite_semantic, "USED_RESOLUTION_S", 0.0)
    store = SqliteSemanticStore(str(tmp_path / "c.db"), dim=8, max_entries=20)
    for i in range(20):
        await store.add("s", unit(i), entry(f"answer {i}", f"q{i}"), ttl_s=60)
    (first,) = await store.search("s", unit(0), k=1, min_cosine=0.99)
    await store.touch(first)
    await store.add("s", unit(20), entry("answer 20", "q20"), ttl_s=60)  # over the bound: evicts the LRU
    assert [text_of(n.entry) for n in await store.search("s", unit(0), k=1, min_cosine=0.99)] == ["answer 0"]
    assert await store.search("s", unit(1), k=1, min_cosine=0.99) == []


async def test_a_process_idle_past_the_journal_rebuilds_its_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from thrifty.cache.backends import sqlite_semantic

    path = str(tmp_path / "c.db")
    idle = SqliteSemanticStore(path, dim=8, max_entries=10)
    await idle.add("s", unit(0), entry("answer 0", "q0"), ttl_s=60)
    busy = SqliteSemanticStore(path, dim=8, max_entries=10)
    monkeypatch.setattr(sqlite_semantic, "GONE_KEEP_S", 0.0)  # the journal is trimmed on every write
    for i in range(1, 30):
        await busy.add("s", unit(i), entry(f"answer {i}", f"q{i}"), ttl_s=60)
    assert await idle.search("s", unit(0), k=1, min_cosine=0.99) == []
    assert len(idle.index) == len(idle)


async def test_a_process_idle_within_the_journal_just_replays_it(tmp_path: Path):
    path = str(tmp_path / "c.db")
    idle = SqliteSemanticStore(path, dim=8, max_entries=10)
    await idle.add("s", unit(0), entry("answer 0", "q0"), ttl_s=60)
    busy = SqliteSemanticStore(path, dim=8, max_entries=10)
    for i in range(1, 30):
        await busy.add("s", unit(i), entry(f"answer {i}", f"q{i}"), ttl_s=60)
    idle.looked -= 10 * 3600  # long idle, but the journal still holds every deletion since
    index = idle.index
    assert await idle.search("s", unit(0), k=1, min_cosine=0.99) == []
    assert idle.index is index and len(index) == len(idle)  # replayed, not rebuilt
