"""Batch jobs under load, cancels, budgets and deleted inputs, through `thrifty serve` and the openai
SDK (the fake provider's batch API answers forwarded jobs)."""

from __future__ import annotations

import threading
import time

import httpx
import openai
import orjson
import pytest

from tests.conftest import ledger_rows
from tests.e2e.test_batch_api import config, jsonl, output, sdk, wait_done
from thrifty.pricing.catalog import Catalog
from thrifty.testing.fake_provider import FakeProvider

pytestmark = pytest.mark.e2e
MASTER = "mk-batch-master-0123456789"
ADMIN = {"authorization": f"Bearer {MASTER}"}


def create(client: openai.OpenAI, data: bytes) -> openai.types.Batch:
    uploaded = client.files.create(file=("in.jsonl", data), purpose="batch")
    return client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )


def with_plain(data: dict, plain: FakeProvider) -> dict:
    """`plain-mini`: a model whose provider has no batch API, so its jobs run through the gateway."""
    data["providers"]["plain"] = {"type": "openai", "base_url": plain.openai_base_url, "api_key": "k"}
    data["models"]["plain-mini"] = {"price": "gpt-4o-mini", "deployments": [{"provider": "plain"}]}
    return data


# ---------------------------------------------------------------- 1. budgets


def test_a_forwarded_batch_counts_against_the_key_budget_and_one_that_may_not_fit_cannot_start(
    gateway_factory, fake
):
    data = config(fake)
    data["server"] = {"master_key": MASTER}
    gw = gateway_factory(data)
    r = httpx.post(
        gw.url + "/admin/keys", json={"tenant": "jobs", "budgets": {"total_usd": 0.03}}, headers=ADMIN
    )
    assert r.status_code == 201, r.text
    key = r.json()
    client = openai.OpenAI(base_url=gw.base_url, api_key=key["key"], max_retries=0)
    # each line may cost up to ~$0.0012 (4,096 output tokens at batch price): 20 lines fit the budget
    batch = create(client, jsonl("gpt-4o-mini", [f"question {i}" for i in range(20)]))
    done, _ = wait_done(client, batch.id)
    assert done.status == "completed" and done.request_counts.completed == 20
    rows = ledger_rows(gw.ledger_path, expect=20)
    assert len(rows) == 20 and {r["key_id"] for r in rows} == {key["id"]}
    spent = sum(r["cost_usd"] for r in rows)
    usage = httpx.get(f"{gw.url}/admin/keys/{key['id']}", headers=ADMIN).json()["usage"]
    assert usage["total"] == pytest.approx(spent, rel=1e-6) and usage["reserved"] == 0 and spent > 0
    # 30 lines may cost more than what is left: refused like a live request whose worst case does not fit
    with pytest.raises(openai.RateLimitError) as refused:
        create(client, jsonl("gpt-4o-mini", [f"one more {i}" for i in range(30)]))
    error = refused.value.body
    assert error["code"] == "budget_exceeded" and error["type"] == "insufficient_quota"
    assert "total budget" in error["message"] and "may cost up to" in error["message"]
    assert len(fake.requests("/v1/batches")) == 1


# ---------------------------------------------------------------- 2. the event loop


def fast_failing(n: int) -> bytes:
    return jsonl("nope-model", [f"q{i}" for i in range(n)])


def test_a_batch_of_fast_failing_lines_does_not_stall_other_traffic(gateway_factory, fake):
    gw = gateway_factory(config(fake, forward=False, concurrency=2))
    client = sdk(gw)
    batch = create(client, fast_failing(5000))
    worst, done = 0.0, None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        started = time.monotonic()
        assert httpx.get(gw.url + "/healthz", timeout=30).status_code == 200
        worst = max(worst, time.monotonic() - started)
        done = client.batches.retrieve(batch.id)
        if done.status in ("completed", "failed", "cancelled"):
            break
        time.sleep(0.02)
    assert done is not None and done.status == "completed", done
    assert done.request_counts.failed == 5000 and done.request_counts.total == 5000
    assert worst < 0.5, f"/healthz took {worst:.2f}s while the batch ran"
    errors = client.files.content(done.error_file_id).content.splitlines()
    assert len(errors) == 5000
    assert orjson.loads(errors[0])["custom_id"] == "q-0"


def test_cancelling_a_large_fast_failing_batch_is_prompt_and_keeps_what_ran(gateway_factory, fake):
    gw = gateway_factory(config(fake, forward=False, concurrency=2))
    client = sdk(gw)
    batch = create(client, fast_failing(20000))
    deadline = time.monotonic() + 30
    while client.batches.retrieve(batch.id).request_counts.failed == 0:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    started = time.monotonic()
    cancelling = client.batches.cancel(batch.id)
    assert time.monotonic() - started < 1.0
    assert cancelling.status == "cancelling" and cancelling.cancelling_at is not None
    done, _ = wait_done(client, batch.id, timeout=10)
    assert done.status == "cancelled" and done.cancelling_at == cancelling.cancelling_at
    assert 0 < done.request_counts.failed < 20000
    ran = client.files.content(done.error_file_id).content.splitlines()
    assert len(ran) == done.request_counts.failed


# ---------------------------------------------------------------- 3. partial upstream results


def test_partial_results_of_a_batch_that_expired_upstream_are_returned_and_booked(gateway_factory, fake):
    api = fake.batch_api
    api.create_delay_s = 1.0  # the provider holds its answer: meanwhile the batch expires with 1 answer
    gw = gateway_factory(config(fake))
    client = sdk(gw)
    batch = create(client, jsonl("gpt-4o-mini", ["answered", "expired", "lost"]))

    def expire() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            tagged = [b for b in list(api.batches.values()) if b["metadata"] == {"thrifty_batch": batch.id}]
            if tagged:
                break
            time.sleep(0.01)
        completion = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-4o-mini",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "echo: answered"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150},
        }
        out = {
            "id": "r",
            "custom_id": "r0",
            "response": {"status_code": 200, "body": completion},
            "error": None,
        }
        err = {
            "id": "e",
            "custom_id": "r1",
            "response": None,
            "error": {"code": "batch_expired", "message": "expired"},
        }
        out_file = api._store(orjson.dumps(out) + b"\n", "out.jsonl", "batch_output")
        err_file = api._store(orjson.dumps(err) + b"\n", "err.jsonl", "batch_output")
        counts = {"total": 3, "completed": 1, "failed": 1}
        tagged[0].update(
            status="expired",
            output_file_id=out_file["id"],
            error_file_id=err_file["id"],
            request_counts=counts,
        )

    thread = threading.Thread(target=expire)
    thread.start()
    try:
        done, _ = wait_done(client, batch.id)
    finally:
        thread.join()
        api.create_delay_s = 0.0
    assert done.status == "expired" and done.expired_at is not None
    answers = output(client, done.output_file_id)
    assert list(answers) == ["q-0"]
    assert answers["q-0"]["response"]["body"]["choices"][0]["message"]["content"] == "echo: answered"
    failed = output(client, done.error_file_id)
    assert sorted(failed) == ["q-1", "q-2"]
    assert done.request_counts.completed == 1 and done.request_counts.failed == 2
    (row,) = ledger_rows(gw.ledger_path, expect=1)
    price = Catalog.bundled().get("gpt-4o-mini")
    full = (100 * price.input + 50 * price.output) / 1e6
    assert row["cost_usd"] == pytest.approx(full * price.batch)
    assert orjson.loads(row["meta"])["batch_id"] == batch.id


# ---------------------------------------------------------------- 4. deleted input files


def test_deleting_the_input_file_of_a_running_local_batch_loses_nothing(gateway_factory, fake):
    with FakeProvider(batch_api=False) as plain:
        plain.set_default(latency_ms=150)
        gw = gateway_factory(with_plain(config(fake, concurrency=1), plain))
        client = sdk(gw)
        batch = create(client, jsonl("plain-mini", [f"line {i}" for i in range(4)]))
        deadline = time.monotonic() + 20
        while client.batches.retrieve(batch.id).request_counts.completed < 1:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert client.files.delete(batch.input_file_id).deleted
        with pytest.raises(openai.NotFoundError):
            client.files.retrieve(batch.input_file_id)
        done, _ = wait_done(client, batch.id)
    assert done.status == "completed" and done.request_counts.completed == 4
    assert done.request_counts.total == 4
    assert sorted(output(client, done.output_file_id)) == [f"q-{i}" for i in range(4)]


def test_deleting_the_input_file_of_a_forwarded_batch_loses_nothing(gateway_factory, fake):
    gw = gateway_factory(config(fake, poll_interval_s=0.5))
    client = sdk(gw)
    batch = create(client, jsonl("gpt-4o-mini", ["a", "b"]))
    assert client.files.delete(batch.input_file_id).deleted
    done, _ = wait_done(client, batch.id)
    assert done.status == "completed" and done.request_counts.completed == 2
    assert sorted(output(client, done.output_file_id)) == ["q-0", "q-1"]
    assert len(ledger_rows(gw.ledger_path, expect=2)) == 2


# ---------------------------------------------------------------- 5. cancelled local batches


def test_a_cancelled_local_batch_keeps_its_failed_lines(gateway_factory, fake):
    with FakeProvider(batch_api=False) as plain:
        plain.set_default(latency_ms=200)
        plain.script({"status": 400, "content": "bad"})
        gw = gateway_factory(with_plain(config(fake, concurrency=1), plain))
        client = sdk(gw)
        batch = create(client, jsonl("plain-mini", [f"line {i}" for i in range(10)]))
        deadline = time.monotonic() + 20
        while client.batches.retrieve(batch.id).request_counts.completed < 1:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        cancelling = client.batches.cancel(batch.id)
        assert cancelling.status == "cancelling"
        done, _ = wait_done(client, batch.id)
    assert done.status == "cancelled" and done.cancelling_at == cancelling.cancelling_at
    assert done.output_file_id is not None and done.error_file_id is not None
    assert list(output(client, done.error_file_id)) == ["q-0"]
    answered = output(client, done.output_file_id)
    assert "q-0" not in answered and len(answered) == done.request_counts.completed
    assert done.request_counts.failed == 1 and done.request_counts.completed < 9


# ---------------------------------------------------------------- 7. an accepted cancel stands


def test_an_accepted_cancel_is_never_undone(gateway_factory, fake):
    gw = gateway_factory(config(fake, forward=False, concurrency=2))
    client = sdk(gw)
    batch = create(client, fast_failing(3000))
    time.sleep(0.3)
    try:
        cancelling = client.batches.cancel(batch.id)
    except openai.BadRequestError:  # it had already answered every line: then it completes
        done, _ = wait_done(client, batch.id)
        assert done.status == "completed" and done.cancelling_at is None
        return
    assert cancelling.status == "cancelling" and cancelling.cancelling_at is not None
    done, _ = wait_done(client, batch.id, timeout=30)
    for _ in range(5):  # and it stays so
        assert done.status == "cancelled" and done.cancelling_at == cancelling.cancelling_at
        time.sleep(0.05)
        done = client.batches.retrieve(batch.id)
