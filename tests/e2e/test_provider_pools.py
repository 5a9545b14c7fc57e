"""Each provider has its own connection pool (`providers.<name>.max_connections`), through the real
server: one provider's long calls never hold the connections another needs, and a call that finds its
provider's pool full waits `timeouts.connect`, then fails over, booked against that provider, without
charging its circuit breaker.

Before, every provider shared one hard-coded pool of 512 connections and `max_connections` was ignored:
a provider with `max_connections: 2` got as many concurrent connections as it had calls."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.conftest import base_config, ledger_rows
from thrifty.testing.fake_provider import FakeProvider

pytestmark = pytest.mark.e2e

SLOW_MS = 2500
CONNECT_S = 1.0


def pools_config(fake: FakeProvider) -> dict[str, Any]:
    config = base_config(fake)
    fakeai = config["providers"]["fakeai"]
    config["providers"]["narrow"] = {
        **fakeai,
        "max_connections": 2,
        "timeouts": {"connect": CONNECT_S, "first_byte": 30, "total": 60},
    }
    config["models"]["slow"] = {
        "price": "gpt-4o-mini",
        "deployments": [{"provider": "narrow", "model": "slow-up"}],
    }
    config["models"]["spill"] = {
        "price": "gpt-4o-mini",
        "deployments": [
            {"provider": "narrow", "model": "slow-up", "priority": 0},
            {"provider": "fakeai", "model": "spill-up", "priority": 1},
        ],
    }
    return config


def chat(gw, model: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}]}
    return httpx.post(gw.url + "/v1/chat/completions", json=body, timeout=60)


def arrivals(fake: FakeProvider, model: str) -> list[float]:
    return sorted(r["ts"] for r in fake.requests() if (r.get("body") or {}).get("model") == model)


def test_a_full_pool_holds_only_its_own_provider(gateway_factory, fake):
    fake.script(*[{"latency_ms": SLOW_MS}] * 8, model="slow-up")
    gw = gateway_factory(pools_config(fake))
    with ThreadPoolExecutor(6) as pool:
        slow = [pool.submit(chat, gw, "slow") for _ in range(6)]
        time.sleep(0.3)
        started = time.monotonic()
        other = chat(gw, "gpt-4o-mini")  # another provider: never waits for the narrow one
        other_s = time.monotonic() - started
        replies = [f.result() for f in slow]
    assert other.status_code == 200 and other_s < CONNECT_S
    seen = arrivals(fake, "slow-up")
    assert len(seen) == 2, "max_connections: 2 means two calls in flight, not six"
    statuses = sorted(r.status_code for r in replies)
    assert statuses == [200, 200, 503, 503, 503, 503]
    for r in replies:
        if r.status_code == 503:
            err = r.json()["error"]
            assert err["code"] == "provider_saturated" and "'narrow'" in err["message"]
    rows = [r for r in ledger_rows(gw.ledger_path, expect=7) if r["requested_model"] == "slow"]
    failed = [r for r in rows if r["status"] == "error"]
    assert len(failed) == 4 and {r["provider"] for r in failed} == {"narrow"}  # booked where it waited
    assert all(r["http_status"] == 503 and "saturated" in r["error"] for r in failed)
    # four saturated calls (the breaker opens after 3 failures) are no verdict on the provider
    assert chat(gw, "slow").status_code == 200
    breakers = httpx.get(gw.url + "/readyz", timeout=10).json()["checks"].get("breakers") or {}
    assert all(state == "closed" for state in breakers.values()), breakers


def test_a_saturated_deployment_spills_over_to_the_next_one(gateway_factory, fake):
    fake.script(*[{"latency_ms": SLOW_MS}] * 2, model="slow-up")
    gw = gateway_factory(pools_config(fake))
    with ThreadPoolExecutor(2) as pool:
        busy = [pool.submit(chat, gw, "slow") for _ in range(2)]
        time.sleep(0.3)
        started = time.monotonic()
        spilled = chat(gw, "spill")
        waited = time.monotonic() - started
        assert all(f.result().status_code == 200 for f in busy)
    assert spilled.status_code == 200 and spilled.headers["x-thrifty-attempts"] == "2"
    assert CONNECT_S * 0.9 <= waited < SLOW_MS / 1000  # waited for a slot, then fell over
    rows = ledger_rows(gw.ledger_path, expect=2, request_id=spilled.headers["x-request-id"])
    assert [(r["provider"], r["status"]) for r in rows] == [("narrow", "error"), ("fakeai", "ok")]
    assert len(arrivals(fake, "slow-up")) == 2
