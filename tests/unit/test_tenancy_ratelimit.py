"""GCRA rate limits: the pure step, the in-process limiter and the Redis one shared by two replicas."""

from __future__ import annotations

import pytest

from thrifty.tenancy.ratelimit import Limit, MemoryRateLimiter, RedisRateLimiter, gcra
from thrifty.tenancy.redis_state import RedisState
from thrifty.tenancy.stage import format_reset, rate_headers


def test_gcra_allows_the_burst_then_says_when_to_retry():
    lim = Limit("requests", 3, 1)
    tat, now = 0.0, 1000.0
    remaining = []
    for _ in range(3):
        tat, state = gcra(tat, now, lim)
        assert state.retry_after_s == 0
        remaining.append(state.remaining)
    assert remaining == [2, 1, 0]
    same, denied = gcra(tat, now, lim)
    assert same == tat  # nothing booked
    assert denied.retry_after_s == pytest.approx(20.0)
    assert denied.reset_s == pytest.approx(60.0)
    # 20 s later one request fits again
    _, later = gcra(tat, now + 20.0, lim)
    assert later.retry_after_s == 0 and later.remaining == 0


def test_gcra_cost_larger_than_what_is_left_is_denied():
    lim = Limit("tokens", 1000, 600)
    tat, first = gcra(0.0, 50.0, lim)
    assert first.retry_after_s == 0 and first.remaining == 400
    _, second = gcra(tat, 50.0, lim)
    assert second.retry_after_s == pytest.approx(12.0)  # 200 tokens short at 1000/60 s


async def test_memory_limiter_books_all_limits_or_none():
    limiter = MemoryRateLimiter()
    limits = [Limit("requests", 10, 1), Limit("tokens", 100, 60)]
    first = await limiter.acquire("k", limits)
    assert all(s.retry_after_s == 0 for s in first)
    denied = await limiter.acquire("k", limits)  # tokens: 60 more do not fit
    assert [s.kind for s in denied if s.retry_after_s > 0] == ["tokens"]
    # the refused call did not use a request: 9 are left, shown by a request-only acquire
    only_requests = await limiter.acquire("k", [Limit("requests", 10, 1)])
    assert only_requests[0].remaining == 8
    await limiter.refund("k", Limit("tokens", 100, 60))
    assert all(s.retry_after_s == 0 for s in await limiter.acquire("k", limits))


async def test_keys_are_independent():
    limiter = MemoryRateLimiter()
    one = [Limit("requests", 1, 1)]
    assert (await limiter.acquire("a", one))[0].retry_after_s == 0
    assert (await limiter.acquire("a", one))[0].retry_after_s > 0
    assert (await limiter.acquire("b", one))[0].retry_after_s == 0


async def test_redis_limiter_is_shared_by_two_replicas(redis_url):
    a_state, b_state = RedisState(redis_url), RedisState(redis_url)
    a, b = RedisRateLimiter(a_state), RedisRateLimiter(b_state)
    limit = [Limit("requests", 4, 1)]
    try:
        results = []
        for limiter in (a, b, a, b, a, b):
            results.append((await limiter.acquire("key_1", limit))[0])
        assert [r.retry_after_s == 0 for r in results] == [True, True, True, True, False, False]
        assert [r.remaining for r in results[:4]] == [3, 2, 1, 0]
        assert 14.0 < results[4].retry_after_s <= 15.0
        await b.refund("key_1", Limit("requests", 4, 1))
        assert (await a.acquire("key_1", limit))[0].retry_after_s == 0
    finally:
        await a_state.aclose()
        await b_state.aclose()


async def test_redis_limiter_all_or_nothing(redis_url):
    state = RedisState(redis_url)
    limiter = RedisRateLimiter(state)
    try:
        limits = [Limit("requests", 10, 1), Limit("tokens", 100, 70)]
        assert all(s.retry_after_s == 0 for s in await limiter.acquire("k", limits))
        denied = await limiter.acquire("k", limits)
        assert [s.kind for s in denied if s.retry_after_s > 0] == ["tokens"]
        assert (await limiter.acquire("k", [Limit("requests", 10, 1)]))[0].remaining == 8
    finally:
        await state.aclose()


def test_headers_in_openai_style():
    assert format_reset(0.12) == "120ms"
    assert format_reset(1.5) == "1.5s"
    assert format_reset(360) == "6m0s"
    _, state = gcra(0.0, 0.0, Limit("requests", 60, 1))
    headers = rate_headers([state])
    assert headers == {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "1s",
    }
