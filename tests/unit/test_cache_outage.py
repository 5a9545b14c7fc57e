"""A cache store that is down or hung costs a request little and fails none; the other store serves on.

Real parts: the Gateway in front of the fake provider, SQLite files; the failing stores are a Redis URL
nothing listens on (refused at once) and a "Postgres" that accepts connections and never answers.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_cache_stage import ALICE, ask, gateway, stage_of, upstream_calls
from thrifty.cache.guard import StoreGuard
from thrifty.cache.semantic import CosineVerifier


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A TCP server that accepts every connection and never says a word (a hung database)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def paraphrases() -> tuple[dict[str, Any], dict[str, Any]]:
    return ask("How do I reset my router password?"), ask("how can I reset the password of my router")


async def test_with_redis_down_the_semantic_store_still_serves(fake, tmp_path: Path):
    redis = f"redis://127.0.0.1:{closed_port()}/0"
    async with gateway(fake, tmp_path, backend="redis", redis_url=redis, semantic=True) as gw:
        stage_of(gw).semantic.verifier = CosineVerifier(0.8)
        first, paraphrase = paraphrases()
        assert (await gw.chat(first, ALICE)).headers["x-thrifty-cache"] == "miss"
        hit = await gw.chat(paraphrase, ALICE)
        assert hit.headers["x-thrifty-cache"] == "hit-semantic"  # stored and found without Redis
        assert not stage_of(gw).exact_guard.up and stage_of(gw).semantic_guard.up
    assert upstream_calls(fake) == 1


async def test_with_redis_down_identical_requests_in_flight_are_all_answered(fake, tmp_path: Path):
    fake.set_default(latency_ms=200)
    redis = f"redis://127.0.0.1:{closed_port()}/0"
    async with gateway(fake, tmp_path, backend="redis", redis_url=redis) as gw:
        results = await asyncio.gather(*(gw.chat(ask("same question"), ALICE) for _ in range(6)))
    assert [r.headers["x-thrifty-cache"] for r in results] == ["miss"] * 6
    assert all(r.body["choices"][0]["message"]["content"] == "echo: same question" for r in results)


async def test_a_hung_semantic_store_costs_one_timeout_then_is_skipped(fake, tmp_path: Path, black_hole: int):
    dsn = f"postgresql://thrifty@127.0.0.1:{black_hole}/thrifty"
    async with gateway(
        fake, tmp_path, semantic=True, postgres_dsn=dsn, semantic_backend="postgres", store_timeout_s=0.5
    ) as gw:
        first, paraphrase = paraphrases()
        started = time.monotonic()
        assert (await gw.chat(first, ALICE)).headers["x-thrifty-cache"] == "miss"
        assert time.monotonic() - started < 3  # one bounded wait, not a hang
        assert not stage_of(gw).semantic_guard.up
        started = time.monotonic()
        again = await gw.chat(first, ALICE)  # the exact store (SQLite) is healthy and has it
        assert again.headers["x-thrifty-cache"] == "hit-exact"
        assert (await gw.chat(paraphrase, ALICE)).headers["x-thrifty-cache"] == "miss"
        assert time.monotonic() - started < 1  # the resting store is skipped at once
    assert upstream_calls(fake) == 2


async def test_a_guard_retries_its_store_after_the_cooldown():
    guard = StoreGuard("exact", timeout_s=0.2, cooldown_s=0.3)
    calls: list[str] = []

    async def fails() -> str:
        calls.append("fails")
        raise ConnectionError("refused")

    async def hangs() -> str:
        calls.append("hangs")
        await asyncio.sleep(10)
        return "late"

    async def works() -> str:
        calls.append("works")
        return "ok"

    assert await guard.run(fails, "fallback") == "fallback" and not guard.up
    assert await guard.run(works, "fallback") == "fallback"  # resting: not even called
    await asyncio.sleep(0.35)
    assert await guard.run(works, "fallback") == "ok"
    started = time.monotonic()
    assert await guard.run(hangs, "fallback") == "fallback"
    assert time.monotonic() - started < 1 and not guard.up
    assert calls == ["fails", "works", "hangs"]


async def test_a_resting_store_is_probed_by_one_call_at_a_time():
    guard = StoreGuard("exact", timeout_s=0.3, cooldown_s=0.1)
    entered: list[float] = []

    async def hangs() -> str:
        entered.append(time.monotonic())
        await asyncio.sleep(10)
        return "late"

    async def timed() -> float:
        started = time.monotonic()
        assert await guard.run(hangs, "fallback") == "fallback"
        return time.monotonic() - started

    assert await guard.run(hangs, "fallback") == "fallback"  # goes down
    await asyncio.sleep(0.15)  # the cooldown is over: the next call probes
    waits = sorted(await asyncio.gather(*(timed() for _ in range(6))))
    assert len(entered) == 2  # the first failure and one probe, not six
    assert waits[-1] >= 0.25 and waits[-2] < 0.1  # only the probe waited for the timeout
    assert not guard.up
