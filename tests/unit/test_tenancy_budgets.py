"""Budget reservations: windows, and atomic reserve/settle/release in memory and in Redis."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime

import pytest

from thrifty.tenancy.budgets import MemoryBudgets, windows
from thrifty.tenancy.budgets_redis import RedisBudgets
from thrifty.tenancy.keys import Budgets
from thrifty.tenancy.redis_state import RedisState


def test_windows_name_the_current_day_and_month():
    now = datetime(2026, 11, 29, 23, 30, tzinfo=UTC).timestamp()
    wins = windows(Budgets(daily_usd=1, monthly_usd=10, total_usd=100), now)
    assert [(w.name, w.bucket, w.limit) for w in wins] == [
        ("daily", "2026-11-29", 1), ("monthly", "2026-11", 10), ("total", "all", 100),
    ]  # fmt: skip
    assert wins[0].expire_at > now and wins[2].expire_at is None
    assert (
        windows(Budgets(monthly_usd=5), datetime(2026, 12, 31, tzinfo=UTC).timestamp())[0].bucket == "2026-12"
    )
    assert windows(Budgets()) == []


async def _race(backends, budget: float, spent: float, worst: float, n: int = 100):
    """n concurrent reservations spread over `backends` against a budget with `spent` already gone."""
    wins = windows(Budgets(total_usd=budget))
    await backends[0].settle("key", wins, "seed", spent)

    async def one(i: int):
        backend = backends[i % len(backends)]
        refusal = await backend.reserve("key", wins, f"r{i}", worst, 60)
        return refusal is None

    granted = await asyncio.gather(*(one(i) for i in range(n)))
    return wins, granted


@pytest.mark.parametrize("actual_fraction", [1.0, 0.25])
async def test_memory_budget_concurrent_reservations_never_overspend(actual_fraction):
    backend = MemoryBudgets()
    budget, spent, worst = 1.0, 0.9, 0.03
    wins, granted = await _race([backend], budget, spent, worst)
    assert sum(granted) == math.floor((budget - spent) / worst + 1e-9) == 3
    for i, ok in enumerate(granted):
        if ok:
            await backend.settle("key", wins, f"r{i}", worst * actual_fraction)
    usage = await backend.usage("key", wins)
    assert usage["reserved"] == 0
    assert usage["total"] <= budget
    assert usage["total"] == pytest.approx(spent + 3 * worst * actual_fraction)


async def test_release_and_expiry_free_the_reservation():
    backend = MemoryBudgets()
    wins = windows(Budgets(daily_usd=1.0))
    assert await backend.reserve("k", wins, "a", 0.8, 60) is None
    refusal = await backend.reserve("k", wins, "b", 0.3, 60)
    assert refusal is not None and refusal.window.name == "daily" and refusal.reserved == pytest.approx(0.8)
    await backend.release("k", "a")
    assert await backend.reserve("k", wins, "b", 0.3, 0.05) is None
    assert await backend.reserve("k", wins, "c", 0.8, 60) is not None
    await asyncio.sleep(0.1)  # "b" was never settled: its reservation lapses
    assert await backend.reserve("k", wins, "c", 0.8, 60) is None


async def test_every_window_is_checked():
    backend = MemoryBudgets()
    wins = windows(Budgets(daily_usd=10, total_usd=1))
    await backend.settle("k", wins, "x", 0.95)
    refusal = await backend.reserve("k", wins, "y", 0.1, 60)
    assert refusal is not None and refusal.window.name == "total" and refusal.spent == pytest.approx(0.95)


async def test_redis_budget_holds_across_two_replicas(redis_url):
    states = [RedisState(redis_url), RedisState(redis_url)]
    backends = [RedisBudgets(s) for s in states]
    try:
        budget, spent, worst = 1.0, 0.9, 0.03
        wins, granted = await _race(backends, budget, spent, worst)
        assert sum(granted) == 3
        usage = await backends[1].usage("key", wins)
        assert usage["reserved"] == pytest.approx(3 * worst)
        for i, ok in enumerate(granted):
            if ok:
                await backends[(i + 1) % 2].settle("key", wins, f"r{i}", worst / 2)
        usage = await backends[0].usage("key", wins)
        assert usage["reserved"] == 0
        assert usage["total"] == pytest.approx(spent + 3 * worst / 2)
        # settled below the worst case: room for one more reservation now
        assert await backends[1].reserve("key", wins, "late", worst, 60) is None
        assert await backends[0].reserve("key", wins, "later", worst, 60) is not None
    finally:
        for s in states:
            await s.aclose()


async def test_redis_reservation_expires_and_release_works(redis_url):
    state = RedisState(redis_url)
    backend = RedisBudgets(state)
    try:
        wins = windows(Budgets(total_usd=1.0, daily_usd=1.0))
        assert await backend.reserve("k", wins, "a", 0.7, 0.2) is None
        refusal = await backend.reserve("k", wins, "b", 0.7, 60)
        assert refusal is not None and refusal.window.name == "daily"
        await asyncio.sleep(0.3)
        assert await backend.reserve("k", wins, "b", 0.7, 60) is None
        await backend.release("k", "b")
        assert (await backend.usage("k", wins))["reserved"] == 0
    finally:
        await state.aclose()


async def test_unreachable_redis_raises_state_error():
    from tests.support.servers import free_port
    from thrifty.tenancy.errors import StateError

    state = RedisState(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.5)
    backend = RedisBudgets(state)
    with pytest.raises(StateError):
        await backend.reserve("k", windows(Budgets(total_usd=1)), "a", 0.1, 60)
    with pytest.raises(StateError):
        await backend.ping()
    await state.aclose()
