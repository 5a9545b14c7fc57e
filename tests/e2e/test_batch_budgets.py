"""Batch jobs against a key's budget and its revocation, through `thrifty serve` and the openai SDK
(forwarded to the fake provider's batch API): what a batch may spend is held from its creation, so
the next one is refused; a forwarded batch whose key is revoked is cancelled upstream."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.conftest import ledger_rows
from tests.e2e.test_batch_api import config, wait_done
from tests.e2e.test_batch_robustness import create

pytestmark = pytest.mark.e2e
MASTER = "mk-batch-budget-0123456789"
ADMIN = {"authorization": f"Bearer {MASTER}"}


def lines(model: str, n: int, max_tokens: int) -> bytes:
    def line(i: int) -> bytes:
        body = {
            "model": model,
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": f"q{i} " + "lorem ipsum " * 100}],
        }
        item = {"custom_id": f"q-{i}", "method": "POST", "url": "/v1/chat/completions", "body": body}
        return orjson.dumps(item) + b"\n"

    return b"".join(line(i) for i in range(n))


def keyed(gateway_factory: Any, fake: Any, budgets: dict[str, float] | None = None) -> tuple[Any, dict]:
    data = config(fake, poll_interval_s=0.2)
    data["server"] = {"master_key": MASTER}
    gw = gateway_factory(data)
    body: dict[str, Any] = {"tenant": "jobs"}
    if budgets:
        body["budgets"] = budgets
    r = httpx.post(gw.url + "/admin/keys", json=body, headers=ADMIN)
    assert r.status_code == 201, r.text
    return gw, r.json()


def usage(gw: Any, key: dict) -> dict[str, float]:
    return httpx.get(f"{gw.url}/admin/keys/{key['id']}", headers=ADMIN).json()["usage"]


def test_back_to_back_batches_see_what_the_first_may_spend(gateway_factory, fake):
    gw, key = keyed(gateway_factory, fake, {"total_usd": 0.01})
    client = openai.OpenAI(base_url=gw.base_url, api_key=key["key"], max_retries=0)
    data = lines("gpt-4o", 5, max_tokens=200)  # ~$0.006 at batch price, at most: one fits the budget
    first = create(client, data)
    held = usage(gw, key)
    assert held["total"] == 0 and 0.004 < held["reserved"] < 0.01
    for _ in range(3):  # before: every one accepted, then all charged (13-18x the budget)
        with pytest.raises(openai.RateLimitError) as refused:
            create(client, data)
        assert refused.value.body["code"] == "budget_exceeded"
        assert "held by requests in flight" in refused.value.body["message"]
        assert "may cost up to" in refused.value.body["message"]
    done, _ = wait_done(client, first.id)
    assert done.status == "completed" and done.request_counts.completed == 5
    rows = ledger_rows(gw.ledger_path, expect=5)
    spent = sum(r["cost_usd"] for r in rows)
    after = usage(gw, key)
    assert after["reserved"] == 0 and after["total"] == pytest.approx(spent, rel=1e-6)
    assert spent < held["reserved"]  # the estimate bounds the batch: it overran by at most its own cost
    assert len(fake.requests("/v1/batches")) == 1
    second = create(client, data)  # the first's hold is gone and it cost less than it held: room again
    assert usage(gw, key)["reserved"] == pytest.approx(held["reserved"])
    assert wait_done(client, second.id)[0].status == "completed"


def test_cancelling_a_forwarded_batch_releases_what_it_held(gateway_factory, fake, monkeypatch):
    api = fake.batch_api
    monkeypatch.setattr(api, "_complete", lambda batch: None)  # upstream never finishes by itself
    gw, key = keyed(gateway_factory, fake, {"daily_usd": 5.0})
    client = openai.OpenAI(base_url=gw.base_url, api_key=key["key"], max_retries=0)
    batch = create(client, lines("gpt-4o-mini", 3, max_tokens=50))
    assert usage(gw, key)["reserved"] > 0
    wait_status(client, batch.id, "in_progress")
    client.batches.cancel(batch.id)
    done, _ = wait_done(client, batch.id)
    assert done.status == "cancelled"
    assert usage(gw, key) == {"daily": 0.0, "reserved": 0.0}


def test_a_revoked_keys_forwarded_batch_is_cancelled_upstream(gateway_factory, fake, monkeypatch):
    api = fake.batch_api
    answering: list[bool] = []
    complete = api._complete
    monkeypatch.setattr(api, "_complete", lambda batch: complete(batch) if answering else None)
    gw, key = keyed(gateway_factory, fake)
    client = openai.OpenAI(base_url=gw.base_url, api_key=key["key"], max_retries=0)
    batch = create(client, lines("gpt-4o-mini", 6, max_tokens=5))
    wait_status(client, batch.id, "in_progress")
    assert httpx.delete(f"{gw.url}/admin/keys/{key['id']}", headers=ADMIN).json()["revoked"]
    answering.append(True)  # the provider would now answer every line: the batch must be gone first
    master = openai.OpenAI(base_url=gw.base_url, api_key=MASTER, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.batches.retrieve(batch.id)
    done = wait_final(gw, batch.id)
    assert done["status"] == "cancelled" and done["request_counts"]["completed"] == 0
    assert done["errors"]["data"][0]["code"] == "invalid_api_key"
    mine = [b for b in list(api.batches.values()) if b["metadata"] == {"thrifty_batch": batch.id}]
    assert [b["status"] for b in mine] == ["cancelled"]
    assert ledger_rows(gw.ledger_path, expect=0) == []
    assert master.models.list().data  # the gateway is fine


def wait_status(client: openai.OpenAI, batch_id: str, status: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while client.batches.retrieve(batch_id).status != status:
        assert time.monotonic() < deadline, f"batch {batch_id} never {status}"
        time.sleep(0.02)


def wait_final(gw: Any, batch_id: str, timeout: float = 20.0) -> dict[str, Any]:
    """The batch as its store holds it (its key can no longer read it through the API)."""
    import sqlite3

    path = gw.ledger_path.with_name(f"{gw.ledger_path.stem}-batches.db")
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(path) as db:
            (raw,) = db.execute("SELECT body FROM batches WHERE id = ?", (batch_id,)).fetchone()
        body = orjson.loads(raw)
        if body["status"] in ("completed", "failed", "expired", "cancelled"):
            return body
        assert time.monotonic() < deadline, f"batch {batch_id} still {body['status']}"
        time.sleep(0.05)
