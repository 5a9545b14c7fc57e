"""Batch jobs and the key that made them, in library mode (a real Gateway, its job runner and store, the
fake provider's batch API): the budget a job holds from creation to its end, and what the key may do
as it is now (models taken away, revoked)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import base_config
from thrifty import config as config_mod
from thrifty.batching import budget
from thrifty.batching.jobs import JobRunner, batch_object
from thrifty.batching.lines import parse_lines
from thrifty.batching.settings import JobSettings
from thrifty.batching.store import BatchStore
from thrifty.gateway import Gateway
from thrifty.tenancy.budgets import windows
from thrifty.tenancy.keys import Budgets
from thrifty.tenancy.runtime import Tenancy, tenancy_of
from thrifty.types import Tenant

TOTAL = windows(Budgets(total_usd=1.0))
ENDPOINT = "/v1/chat/completions"


def jsonl(model: str, n: int, max_tokens: int = 20) -> bytes:
    def line(i: int) -> bytes:
        body = {"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": f"q{i}"}]}
        return orjson.dumps({"custom_id": f"q-{i}", "method": "POST", "url": ENDPOINT, "body": body}) + b"\n"

    return b"".join(line(i) for i in range(n))


def _gateway(fake: Any, tmp_path: Path, ttl_s: float = 900.0) -> Gateway:
    data = base_config(fake)
    data["ledger"] = {"path": str(tmp_path / "ledger.db")}
    data["tenancy"] = {"enabled": True, "keys": {"cache_ttl_s": 0}, "budgets": {"reservation_ttl_s": ttl_s}}
    return Gateway(config_mod.parse(data, env={}))


def _runner(gw: Gateway, tmp_path: Path, **jobs: Any) -> JobRunner:
    settings = JobSettings(**{"poll_interval_s": 0.05, "concurrency": 1, **jobs})
    return JobRunner(gw, settings, BatchStore(tmp_path / "batches.db"))


async def _key(gw: Gateway, **fields: Any) -> tuple[Tenancy, Tenant]:
    tenancy = tenancy_of(gw)
    assert tenancy is not None
    _, key = await tenancy.directory.create("team", **fields)
    return tenancy, Tenant(id="team", key_id=key.id, allowed_models=key.models)


async def _create(gw: Gateway, runner: JobRunner, tenant: Tenant, data: bytes) -> str:
    """What `POST /v1/batches` does: validate, admit (hold the estimate), store."""
    file = runner.store.add_file(tenant.id, data, "in.jsonl", "batch")
    batch = batch_object(file["id"], ENDPOINT, "24h", None)
    lines, errors = parse_lines(data, ENDPOINT, tenant)
    assert not errors
    await budget.admit(gw, tenant, batch["id"], lines, forwarded=runner.forwards(lines))
    runner.store.add_batch(tenant.id, tenant.key_id, batch)
    return str(batch["id"])


async def _usage(tenancy: Tenancy, tenant: Tenant) -> dict[str, float]:
    assert tenant.key_id is not None
    return await tenancy.budgets.usage(tenant.key_id, TOTAL)


def _booked(gw: Gateway, key_id: str | None) -> list[dict[str, Any]]:
    gw.ledger.flush()
    return [r for r in gw.ledger.rows() if r["key_id"] == key_id]


def _lines_of(runner: JobRunner, file_id: str | None) -> dict[str, dict[str, Any]]:
    if file_id is None:
        return {}
    raw = runner.store.content("team", file_id) or b""
    return {x["custom_id"]: x for x in map(orjson.loads, raw.splitlines())}


async def _until(check: Callable[[], Any], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.fixture
def held_upstream(fake: Any, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """The fake provider's batches stay `in_progress` until the test appends to the returned list."""
    api = fake.batch_api
    complete = api._complete
    go: list[bool] = []
    monkeypatch.setattr(api, "_complete", lambda batch: complete(batch) if go else None)
    return go


# ---------------------------------------------------------------- access: the key as it is now


async def test_local_lines_stop_using_a_model_taken_from_the_key_while_the_batch_runs(fake, tmp_path):
    fake.set_default(latency_ms=200)
    async with _gateway(fake, tmp_path) as gw:
        tenancy, tenant = await _key(gw, models=("gpt-4o-mini", "gpt-4o"))
        runner = _runner(gw, tmp_path, forward=False)
        batch_id = await _create(gw, runner, tenant, jsonl("gpt-4o", 10))
        job = asyncio.create_task(runner._execute(batch_id))
        await _until(lambda: _answered(runner, batch_id, 2))
        await tenancy.directory.update(tenant.key_id, {"models": ("gpt-4o-mini",)})
        await job
        done = runner.store.batch(batch_id)
        failed = _lines_of(runner, done["error_file_id"])
        answered = _lines_of(runner, done["output_file_id"])
        assert len(answered) <= 3 and len(failed) == 10 - len(answered)  # at most the line in flight
        for line in failed.values():
            assert line["response"]["status_code"] == 403
            assert line["response"]["body"]["error"]["code"] == "model_not_allowed"
        assert len(_booked(gw, tenant.key_id)) == len(answered)


async def _answered(runner: JobRunner, batch_id: str, n: int) -> bool:
    progress = runner.progress.get(batch_id)
    return progress is not None and progress.completed >= n


@pytest.mark.parametrize("change", ["revoked", "model_taken"])
async def test_a_forwarded_batch_whose_key_can_no_longer_run_it_is_cancelled_upstream(
    fake, tmp_path, held_upstream, change
):
    async with _gateway(fake, tmp_path) as gw:
        tenancy, tenant = await _key(gw, models=("gpt-4o-mini", "gpt-4o"), budgets=Budgets(total_usd=1.0))
        runner = _runner(gw, tmp_path)
        batch_id = await _create(gw, runner, tenant, jsonl("gpt-4o-mini", 6))
        job = asyncio.create_task(runner._execute(batch_id))
        await _until(lambda: _status(runner, batch_id, "in_progress"))
        if change == "revoked":
            await tenancy.directory.revoke(tenant.key_id)
        else:
            await tenancy.directory.update(tenant.key_id, {"models": ("gpt-4o",)})
        await asyncio.wait_for(job, 10)
        done = runner.store.batch(batch_id)
        assert done["status"] == "cancelled" and done["cancelling_at"] is not None
        (error,) = done["errors"]["data"]
        expected = {"revoked": "invalid_api_key", "model_taken": "model_not_allowed"}[change]
        assert error["code"] == expected and error["message"].startswith("Cancelled: ")
        assert len(_cancels(fake)) == 1
        assert _booked(gw, tenant.key_id) == []  # nothing had been answered upstream
        assert await _usage(tenancy, tenant) == {"total": 0.0, "reserved": 0.0}


def _cancels(fake: Any) -> list[Any]:
    return [r for r in fake.requests() if r["path"].endswith("/cancel")]


async def _status(runner: JobRunner, batch_id: str, status: str) -> bool:
    found = runner.store.batch(batch_id)
    return found is not None and found["status"] == status


# ---------------------------------------------------------------- the budget a job holds


async def test_a_forwarded_batch_holds_its_estimate_beyond_the_reservation_ttl_until_it_ends(
    fake, tmp_path, held_upstream
):
    async with _gateway(fake, tmp_path, ttl_s=0.6) as gw:
        tenancy, tenant = await _key(gw, budgets=Budgets(total_usd=1.0))
        runner = _runner(gw, tmp_path, poll_interval_s=5)  # renewed every ttl / 3 all the same
        data = jsonl("gpt-4o-mini", 5, max_tokens=200)
        lines, _ = parse_lines(data, ENDPOINT, tenant)
        stage = tenancy_of(gw).stage
        estimate = budget.job_cost(stage, lines, gw.table.price("gpt-4o-mini").batch)
        batch_id = await _create(gw, runner, tenant, data)
        assert await _usage(tenancy, tenant) == {"total": 0.0, "reserved": pytest.approx(estimate)}
        job = asyncio.create_task(runner._execute(batch_id))
        for _ in range(4):  # 1.6 s: more than twice the ttl
            await asyncio.sleep(0.4)
            assert await _usage(tenancy, tenant) == {"total": 0.0, "reserved": pytest.approx(estimate)}
        held_upstream.append(True)
        await asyncio.wait_for(job, 15)
        rows = _booked(gw, tenant.key_id)
        assert runner.store.batch(batch_id)["status"] == "completed" and len(rows) == 5
        spent = sum(r["cost_usd"] for r in rows)
        assert 0 < spent < estimate
        assert await _usage(tenancy, tenant) == {"total": pytest.approx(spent), "reserved": 0.0}


async def test_a_restarted_gateway_holds_again_what_its_resumed_batch_may_spend(
    fake, tmp_path, held_upstream
):
    async with _gateway(fake, tmp_path) as first:
        tenancy, tenant = await _key(first, budgets=Budgets(total_usd=1.0))
        runner = _runner(first, tmp_path)
        batch_id = await _create(first, runner, tenant, jsonl("gpt-4o-mini", 4))
        held = (await _usage(tenancy, tenant))["reserved"]
        assert held > 0
        await runner.start()
        await _until(lambda: _status(runner, batch_id, "in_progress"))
        await runner.aclose()  # the gateway stops; the batch is left to the next one
    async with _gateway(fake, tmp_path) as again:  # in-process budgets: they start from the ledger
        tenancy = tenancy_of(again)
        await tenancy.start()
        assert await _usage(tenancy, tenant) == {"total": 0.0, "reserved": 0.0}
        runner = _runner(again, tmp_path)
        await runner.start()
        await _until(lambda: _reserved(tenancy, tenant, held))
        held_upstream.append(True)
        await _until(lambda: _status(runner, batch_id, "completed"))
        await runner.aclose()
        spent = sum(r["cost_usd"] for r in _booked(again, tenant.key_id))
        assert await _usage(tenancy, tenant) == {"total": pytest.approx(spent), "reserved": 0.0}
        assert len(fake.requests("/v1/batches")) == 1  # followed, not submitted again


async def _reserved(tenancy: Tenancy, tenant: Tenant, amount: float) -> bool:
    return (await _usage(tenancy, tenant))["reserved"] == pytest.approx(amount)


async def test_a_local_batch_releases_its_hold_as_its_lines_reserve_for_themselves(fake, tmp_path):
    async with _gateway(fake, tmp_path) as gw:
        tenancy, tenant = await _key(gw, budgets=Budgets(total_usd=1.0))
        runner = _runner(gw, tmp_path, forward=False)
        batch_id = await _create(gw, runner, tenant, jsonl("gpt-4o-mini", 3))
        assert (await _usage(tenancy, tenant))["reserved"] > 0
        await runner._execute(batch_id)
        spent = sum(r["cost_usd"] for r in _booked(gw, tenant.key_id))
        assert runner.store.batch(batch_id)["request_counts"]["completed"] == 3
        assert await _usage(tenancy, tenant) == {"total": pytest.approx(spent), "reserved": 0.0}


@pytest.mark.parametrize("end", ["cancelled", "failed"])
async def test_a_batch_that_ends_before_it_runs_releases_its_hold(fake, tmp_path, end):
    async with _gateway(fake, tmp_path) as gw:
        tenancy, tenant = await _key(gw, budgets=Budgets(total_usd=1.0))
        runner = _runner(gw, tmp_path)
        batch_id = await _create(gw, runner, tenant, jsonl("gpt-4o-mini", 3))
        assert (await _usage(tenancy, tenant))["reserved"] > 0
        if end == "cancelled":
            runner.store.cancel(batch_id, tenant.id)
        else:  # its input is gone behind the store's back: it cannot run
            file_id = runner.store.batch(batch_id)["input_file_id"]
            runner.store._run("DELETE FROM batch_files WHERE id = ?", (file_id,))
        await runner._execute(batch_id)
        assert runner.store.batch(batch_id)["status"] == end
        assert await _usage(tenancy, tenant) == {"total": 0.0, "reserved": 0.0}


async def test_a_second_batch_is_refused_while_the_first_holds_the_budget(fake, tmp_path):
    from thrifty.tenancy.errors import BudgetExceeded

    async with _gateway(fake, tmp_path) as gw:
        tenancy, tenant = await _key(gw, budgets=Budgets(total_usd=0.008))
        runner = _runner(gw, tmp_path)
        data = jsonl("gpt-4o", 5, max_tokens=200)  # at most ~$0.005 at batch price
        await _create(gw, runner, tenant, data)  # fits: admitted, its estimate held
        held = (await _usage(tenancy, tenant))["reserved"]
        assert 0.004 < held < 0.008
        with pytest.raises(BudgetExceeded) as refused:
            await _create(gw, runner, tenant, data)
        assert "may cost up to" in refused.value.message
        assert (await _usage(tenancy, tenant))["reserved"] == held


async def test_a_forwarded_batch_whose_estimate_does_not_fit_is_refused_like_a_live_request(fake, tmp_path):
    """It would spend out of sight until it ends: refused up front, with what it may cost."""
    from thrifty.tenancy.errors import BudgetExceeded

    async with _gateway(fake, tmp_path) as gw:
        tenancy, tenant = await _key(gw, budgets=Budgets(total_usd=0.001))
        runner = _runner(gw, tmp_path)
        with pytest.raises(BudgetExceeded) as refused:
            await _create(gw, runner, tenant, jsonl("gpt-4o", 5, max_tokens=200))
        assert "may cost up to" in refused.value.message
        assert await _usage(tenancy, tenant) == {"total": 0.0, "reserved": 0.0}
        await _create(gw, runner, tenant, jsonl("gpt-4o", 1, max_tokens=20))  # lower caps fit


async def test_a_forwarded_line_without_a_cap_is_sent_with_the_one_its_hold_assumed(fake, tmp_path):
    async with _gateway(fake, tmp_path) as gw:
        _, tenant = await _key(gw, budgets=Budgets(total_usd=1.0))
        runner = _runner(gw, tmp_path)
        capped = jsonl("gpt-4o-mini", 1, max_tokens=50)
        uncapped = orjson.loads(capped)
        del uncapped["body"]["max_tokens"]
        uncapped["custom_id"] = "q-open"
        data = capped + orjson.dumps(uncapped) + b"\n"
        batch_id = await _create(gw, runner, tenant, data)
        await asyncio.wait_for(runner._execute(batch_id), 15)
        assert runner.store.batch(batch_id)["status"] == "completed"
    inputs = [raw for meta, raw in fake.batch_api.files.values() if meta["purpose"] == "batch"]
    sent = [orjson.loads(line)["body"] for line in inputs[-1].splitlines()]
    default = gw.config.tenancy.budgets.default_max_tokens
    assert [b.get("max_tokens") for b in sent] == [50, default]  # as the hold assumed
