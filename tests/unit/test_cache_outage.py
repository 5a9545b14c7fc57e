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


async def test_with_redis_down_identical_requests_in_flight_share_one_upstream_call(fake, tmp_path: Path):
    redis = f"redis://127.0.0.1:{closed_port()}/0"
    async with gateway(fake, tmp_path, backend="redis", redis_url=redis) as gw:
        await gw.chat(ask("trip the guard"), ALICE)
        assert not stage_of(gw).exact_guard.up
        fake.set_default(latency_ms=1000)

        async def timed() -> tuple[str, float]:
            started = time.monotonic()
            result = await gw.chat(ask("same question"), ALICE)
            assert result.body["choices"][0]["message"]["content"] == "echo: same question"
            return result.headers["x-thrifty-cache"], time.monotonic() - started

        results = await asyncio.gather(*(timed() for _ in range(6)))
    # the leader's answer is handed to the others in memory: before, each waited for the one before it
    # and went upstream in turn (1, 2, ... 6 s, six calls)
    assert sorted(outcome for outcome, _ in results) == ["hit-exact"] * 5 + ["miss"]
    assert max(elapsed for _, elapsed in results) < 1.9
    assert upstream_calls(fake) == 2


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

    assert guard.health == "ok"
    assert await guard.run(fails, "fallback") == "fallback" and not guard.up
    assert guard.health == "exact store down for 0s (ConnectionError)"
    assert await guard.run(works, "fallback") == "fallback"  # resting: not even called
    await asyncio.sleep(0.35)
    assert await guard.run(works, "fallback") == "ok"
    assert guard.health == "ok"
    started = time.monotonic()
    assert await guard.run(hangs, "fallback") == "fallback"
    assert time.monotonic() - started < 1 and not guard.up
    assert guard.health == "exact store down for 0s (TimeoutError)"
    assert calls == ["fails", "works", "hangs"]


async def test_the_stage_reports_each_stores_health(fake, tmp_path: Path):
    redis = f"redis://127.0.0.1:{closed_port()}/0"
    async with gateway(fake, tmp_path, backend="redis", redis_url=redis, semantic=True) as gw:
        stage = stage_of(gw)
        assert stage.health == "ok" and stage.stores_up() == {"exact": True, "semantic": True}
        await gw.chat(ask("a question"), ALICE)
        assert stage.health.startswith("exact store down for ") and stage.health.endswith("(ConnectionError)")
        assert stage.stores_up() == {"exact": False, "semantic": True}
        metrics = gw.metrics.render().decode()
        assert 'thrifty_cache_store_up{store="exact"} 0.0' in metrics
        assert 'thrifty_cache_store_up{store="semantic"} 1.0' in metrics


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


async def test_with_redis_down_twins_of_a_streamed_leader_get_its_answer(fake, tmp_path: Path):
    redis = f"redis://127.0.0.1:{closed_port()}/0"
    async with gateway(fake, tmp_path, backend="redis", redis_url=redis) as gw:
        await gw.chat(ask("trip the guard"), ALICE)
        fake.set_default(chunk_delay_ms=40)

        async def streamed() -> str:
            stream = await gw.chat_stream(ask("stream once", stream=True), ALICE)
            chunks = [c async for c in stream if c["choices"]]
            await stream.aclose()
            return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)

        leader = asyncio.create_task(streamed())
        await asyncio.sleep(0.05)
        twins = await asyncio.gather(*(gw.chat(ask("stream once"), ALICE) for _ in range(3)))
        assert [t.headers["x-thrifty-cache"] for t in twins] == ["hit-exact"] * 3
        assert {t.body["choices"][0]["message"]["content"] for t in twins} == {await leader}
        assert twins[0].body["choices"] is not twins[1].body["choices"]  # each its own copy
    assert upstream_calls(fake) == 2
