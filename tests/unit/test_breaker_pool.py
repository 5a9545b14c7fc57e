from __future__ import annotations

import random
from collections import Counter

from thrifty.config import Config, ProviderConfig, RetryConfig
from thrifty.errors import InvalidRequest, UpstreamError
from thrifty.providers.breaker import CLOSED, HALF_OPEN, OPEN, Breaker
from thrifty.providers.pool import ProviderPool
from thrifty.providers.table import Deployment


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_threshold_and_lets_one_probe_through():
    clock = Clock()
    b = Breaker(threshold=3, cooldown=10, clock=clock)
    for _ in range(2):
        b.failure("d")
    assert b.state("d") == CLOSED and b.allow("d")
    b.failure("d")
    assert b.state("d") == OPEN and not b.allow("d")
    clock.now = 10
    assert b.state("d") == HALF_OPEN
    assert b.allow("d") and not b.allow("d")  # one probe only
    b.failure("d")  # the probe failed: open again for a full cooldown
    assert b.state("d") == OPEN
    clock.now = 20
    assert b.allow("d")
    b.success("d")
    assert b.state("d") == CLOSED and b.allow("d")


def test_a_released_probe_lets_the_next_one_through():
    clock = Clock()
    b = Breaker(threshold=1, cooldown=10, clock=clock)
    b.failure("d")
    clock.now = 10
    assert b.allow("d") and not b.allow("d")
    b.release("d")  # the probe ended with no verdict (a bad request): neither healed nor failed
    assert b.state("d") == HALF_OPEN and b.allow("d")


def test_success_resets_consecutive_failures():
    b = Breaker(threshold=2, cooldown=1, clock=Clock())
    b.failure("d")
    b.success("d")
    b.failure("d")
    assert b.state("d") == CLOSED


class _Table:
    def __init__(self, deps):
        self.deps = deps

    def deployments(self, model):
        return self.deps

    def fallbacks(self, model):
        return []


class _P:
    def __init__(self, name):
        self.name = name


def test_pool_orders_by_priority_then_weight():
    deps = [
        Deployment(_P("a"), "m", None, weight=3, priority=1),
        Deployment(_P("b"), "m", None, weight=1, priority=1),
        Deployment(_P("z"), "m", None, weight=1, priority=0),
    ]
    pool = ProviderPool(_Table(deps), Breaker(3, 1), RetryConfig(), rng=random.Random(1))
    firsts = Counter()
    for _ in range(4000):
        order = [d.provider.name for _, d in pool.candidates("m")]
        assert order[0] == "z"
        firsts[order[1]] += 1
    assert 0.70 < firsts["a"] / 4000 < 0.80  # weight 3 vs 1 → 75 %


def test_backoff_honours_retry_after_and_gives_up_past_the_cap():
    pool = ProviderPool(
        _Table([]),
        Breaker(3, 1),
        RetryConfig(max_retries=2, backoff_base_s=0.1, backoff_max_s=1, retry_after_max_s=5),
    )
    assert pool._backoff(0, UpstreamError("x", retry_after=2.0)) == 2.0
    assert pool._backoff(0, UpstreamError("x", retry_after=60.0)) is None
    assert pool._backoff(2, UpstreamError("x")) is None  # retries exhausted
    assert pool._backoff(0, UpstreamError("x", retryable=False)) is None
    assert 0 <= pool._backoff(1, UpstreamError("x")) <= 0.2


def test_config_model_default_is_not_shared_between_instances():
    a, b = Config(), Config()
    a.providers["x"] = ProviderConfig()
    assert "x" not in b.providers


class _Garbling:
    """A provider whose answer its own translation cannot read (a field of an unexpected type)."""

    def __init__(self, name: str, fails: bool) -> None:
        self.name = name
        self.fails = fails

    async def chat(self, body, model):
        if self.fails:
            return int("abc")  # what a translator does with `"input_tokens": "abc"`
        return "answer"


async def test_an_answer_the_provider_layer_cannot_read_is_an_upstream_error_failed_over():
    bad = Deployment(_Garbling("garbled", True), "m", None, priority=0)
    good = Deployment(_Garbling("fine", False), "m", None, priority=1)
    pool = ProviderPool(_Table([bad, good]), Breaker(3, 1), RetryConfig(max_retries=0))
    failures = []
    reply, served = await pool.chat("m", {}, lambda name, dep, err, ms: failures.append((dep, err)))
    assert reply == "answer" and served.deployment is good and served.attempts == 2
    ((dep, error),) = failures
    assert dep is bad and isinstance(error, UpstreamError) and error.status == 502
    assert "could not read" in error.message and "ValueError" in error.message


class _Refusing(_Garbling):
    """A provider that cannot express the request (as Anthropic refuses n > 1): nothing is sent."""

    async def chat(self, body, model):
        raise InvalidRequest("this provider returns one choice per request; n must be 1", param="n")


async def test_a_deployment_that_cannot_express_the_request_is_not_counted_as_an_attempt():
    refusing = Deployment(_Refusing("claude", False), "m", None, priority=0)
    good = Deployment(_Garbling("fine", False), "m", None, priority=1)
    pool = ProviderPool(_Table([refusing, good]), Breaker(3, 1), RetryConfig(max_retries=0))
    failures = []
    reply, served = await pool.chat("m", {"n": 2}, lambda name, dep, err, ms: failures.append(err))
    assert reply == "answer" and served.deployment is good
    assert served.attempts == 1 and failures == []  # x-thrifty-attempts: one upstream call was made
