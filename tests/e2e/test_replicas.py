"""Two `thrifty serve` replicas sharing one Postgres (keys, ledger) and one Redis (budgets, rate limits)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.conftest import base_config
from tests.e2e.test_keys_limits import (
    ADMIN,
    MASTER,
    MAX_TOKENS,
    check_budget_race,
    fire,
    messages,
    spend_until_nearly_gone,
    worst_case,
)
from thrifty.config import LedgerConfig
from thrifty.ledger.open import open_ledger

pytestmark = pytest.mark.e2e
CACHE_TTL = 0.5


def chat(url: str, key: str, i: int = 0) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                      json={"model": "gpt-4o", "max_tokens": MAX_TOKENS, "messages": messages(i)},
                      timeout=30)  # fmt: skip


@pytest.fixture
def replicas(gateway_factory, fake, tmp_path, redis_url, postgres_dsn):
    def config(name: str) -> dict:
        data = base_config(fake)
        data["server"] = {"master_key": MASTER}
        data["ledger"] = {"backend": "postgres", "dsn": postgres_dsn}
        data["tenancy"] = {
            "state": {"redis_url": redis_url, "postgres_dsn": postgres_dsn},
            "keys": {"cache_ttl_s": CACHE_TTL},
        }
        return data

    return gateway_factory(config("a")), gateway_factory(config("b"))


def test_keys_limits_and_revocation_are_shared(replicas):
    a, b = replicas
    for gw in (a, b):
        checks = httpx.get(gw.url + "/readyz").json()["checks"]
        assert checks["keys"] == checks["budgets(redis)"] == checks["rate_limits(redis)"] == "ok"

    made = httpx.post(a.url + "/admin/keys", headers=ADMIN,
                      json={"tenant": "shared", "rate_limits": {"rpm": 4}, "models": ["gpt-4o"]})  # fmt: skip
    assert made.status_code == 201
    key = made.json()
    # created on A, usable on B, listed by B
    assert chat(b.url, key["key"]).status_code == 200
    listed = httpx.get(b.url + "/admin/keys", headers=ADMIN).json()["data"]
    assert [k["id"] for k in listed] == [key["id"]]

    # one rate limit across both: 4 per minute, 1 used above on B
    answers = [chat(url, key["key"], i) for i, url in enumerate([a.url, b.url, a.url, b.url, a.url])]
    assert [r.status_code for r in answers] == [200, 200, 200, 429, 429]
    assert [r.headers["x-ratelimit-remaining-requests"] for r in answers[:3]] == ["2", "1", "0"]
    assert int(answers[3].headers["retry-after"]) >= 1

    # an update on B reaches A once A's cache entry ages out
    patched = httpx.patch(
        f"{b.url}/admin/keys/{key['id']}", headers=ADMIN, json={"rate_limits": {"rpm": 1000}}
    )
    assert patched.status_code == 200
    time.sleep(CACHE_TTL + 0.2)
    assert chat(a.url, key["key"]).status_code == 200

    # revoked on B: refused by both within the cache TTL
    assert httpx.delete(f"{b.url}/admin/keys/{key['id']}", headers=ADMIN).status_code == 200
    assert chat(b.url, key["key"]).status_code == 401  # B dropped its own cache entry at once
    deadline = time.monotonic() + CACHE_TTL + 2
    while chat(a.url, key["key"]).status_code != 401:
        assert time.monotonic() < deadline, "replica A still accepts a revoked key"
        time.sleep(0.1)


def test_budget_holds_across_two_replicas(replicas, fake, postgres_dsn):
    a, b = replicas
    fake.set_default(latency_ms=300, usage={"completion_tokens": MAX_TOKENS})
    budget, worst = 0.004, worst_case()
    key = httpx.post(a.url + "/admin/keys", headers=ADMIN,
                     json={"tenant": "t", "budgets": {"total_usd": budget}}).json()  # fmt: skip
    sequential = spend_until_nearly_gone(b.url, key["key"], budget, worst)
    responses = asyncio.run(fire([a.url, b.url], key["key"], 100))
    served_by = {r.url.port for r in responses if r.status_code == 200}
    answered = sequential + sum(r.status_code == 200 for r in responses)
    rows = shared_rows(postgres_dsn, key["id"], answered)
    assert sum(r["final"] for r in rows) == answered  # both replicas' rows in the one ledger
    check_budget_race(responses, sum(r["cost_usd"] for r in rows), budget, worst)
    refusals = {r.url.port for r in responses if r.status_code == 429}
    assert refusals == {a.port, b.port}  # both replicas refused: they saw the same budget
    assert served_by <= {a.port, b.port} and served_by
    usage = [httpx.get(f"{gw.url}/admin/keys/{key['id']}", headers=ADMIN).json()["usage"] for gw in (a, b)]
    assert usage[0] == usage[1]
    assert usage[0]["reserved"] == 0
    assert usage[0]["total"] == pytest.approx(sum(r["cost_usd"] for r in rows))


def shared_rows(dsn: str, key_id: str, expect: int, timeout: float = 10.0) -> list[dict]:
    """This key's rows in the shared Postgres ledger, waiting for at least `expect` final ones."""
    reader = open_ledger(LedgerConfig(backend="postgres", dsn=dsn))
    deadline = time.monotonic() + timeout
    while True:
        rows = [r for r in reader.rows() if r["key_id"] == key_id]
        if sum(r["final"] for r in rows) >= expect or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_ledger_rows_of_both_replicas_land_in_one_ledger(replicas, postgres_dsn):
    a, b = replicas
    key = httpx.post(a.url + "/admin/keys", headers=ADMIN, json={"tenant": "ledger-team"}).json()
    ids = {chat(gw.url, key["key"], i).headers["x-request-id"] for i, gw in enumerate((a, b, a, b))}
    rows = shared_rows(postgres_dsn, key["id"], 4)
    assert {r["request_id"] for r in rows if r["final"]} == ids
    assert {r["tenant_id"] for r in rows} == {"ledger-team"}
