"""Budgets of work that is paid beside or outside the chat answer, in library mode (a real Gateway in
front of the fake provider): embeddings reserve their cost before the call; a prompt summary's cost is
settled with the request; holds of long-running work renew, settle part by part and release, in memory
and in Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import base_config
from thrifty import config as config_mod
from thrifty.errors import UpstreamError
from thrifty.gateway import Gateway
from thrifty.tenancy.budgets import BudgetBackend, MemoryBudgets, windows
from thrifty.tenancy.budgets_redis import RedisBudgets
from thrifty.tenancy.errors import BudgetExceeded
from thrifty.tenancy.keys import Budgets
from thrifty.tenancy.redis_state import RedisState
from thrifty.tenancy.runtime import Tenancy, tenancy_of
from thrifty.types import Tenant

TOTAL = windows(Budgets(total_usd=1.0))
EMBED = "text-embedding-3-small"


def _gateway(fake: Any, tmp_path: Path, **sections: Any) -> Gateway:
    data = base_config(fake)
    data["ledger"] = {"path": str(tmp_path / "ledger.db")}
    data["tenancy"] = {"enabled": True}
    data.update(sections)
    return Gateway(config_mod.parse(data, env={}))


async def _key(gw: Gateway, **fields: Any) -> tuple[Tenancy, Tenant]:
    tenancy = tenancy_of(gw)
    assert tenancy is not None
    _, key = await tenancy.directory.create("team", **fields)
    return tenancy, Tenant(id="team", key_id=key.id)


async def _usage(tenancy: Tenancy, tenant: Tenant) -> dict[str, float]:
    assert tenant.key_id is not None
    return await tenancy.budgets.usage(tenant.key_id, TOTAL)


def _booked(gw: Gateway, key_id: str | None) -> float:
    gw.ledger.flush()
    return sum(r["cost_usd"] for r in gw.ledger.rows() if r["key_id"] == key_id)


# ---------------------------------------------------------------- embeddings


async def test_concurrent_embeddings_never_pass_the_budget(fake, tmp_path):
    fake.set_default(latency_ms=100)
    text = " ".join(f"word{i}" for i in range(3000))
    async with _gateway(fake, tmp_path) as gw:
        price = gw.table.price(EMBED)
        one = gw.tokens.count_text(f"0 {text}") * price.input / 1e6
        budget = 4.5 * one  # room for four calls, not five
        tenancy, tenant = await _key(gw, budgets=Budgets(total_usd=budget))

        async def call(i: int) -> Any:
            try:
                return await gw.embeddings({"model": EMBED, "input": f"{i} {text}"}, tenant)
            except BudgetExceeded as exc:
                return exc

        results = await asyncio.gather(*(call(i) for i in range(20)))
        served = [r for r in results if not isinstance(r, BudgetExceeded)]
        refused = [r for r in results if isinstance(r, BudgetExceeded)]
        assert len(served) == 4 and len(refused) == 16
        assert "may cost up to" in refused[0].message and "held by requests in flight" in refused[0].message
        assert served[0].cost_usd == pytest.approx(one, rel=0.01)  # the estimate is the price
        usage = await _usage(tenancy, tenant)
        assert usage["reserved"] == 0
        assert usage["total"] == pytest.approx(sum(r.cost_usd for r in served)) and usage["total"] <= budget
        assert usage["total"] == pytest.approx(_booked(gw, tenant.key_id))
        assert len(fake.requests("/v1/embeddings")) == 4


async def test_a_failed_embeddings_call_holds_and_charges_nothing(fake, tmp_path):
    async with _gateway(fake, tmp_path, retry={"max_retries": 0}) as gw:
        tenancy, tenant = await _key(gw, budgets=Budgets(total_usd=1.0))
        fake.script({"status": 400})
        with pytest.raises(UpstreamError):
            await gw.embeddings({"model": EMBED, "input": "hello"}, tenant)
        assert await _usage(tenancy, tenant) == {"total": 0.0, "reserved": 0.0}


async def test_token_array_inputs_are_counted_for_the_reservation(fake, tmp_path):
    async with _gateway(fake, tmp_path) as gw:
        assert gw._count_inputs({"input": [1, 2, 3]}) == 3
        assert gw._count_inputs({"input": [[1, 2], [3, 4, 5], "hello world"]}) == 7


# ---------------------------------------------------------------- prompt summaries (compression)

SUMMARY = {"summarize": {"enabled": True, "model": "gpt-4o", "min_tokens": 300, "target_tokens": 100}}


def _summarised(i: int, **extra: Any) -> dict[str, Any]:
    rules = " ".join(f"Rule {j}: always answer politely about topic {i}-{j}." for j in range(120))
    system = f"Policy variant {i}. {rules}"
    return {
        "model": "gpt-4o-mini",
        "max_tokens": 5,
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": "hi"}],
        **extra,
    }


async def test_a_prompt_summary_is_settled_in_the_budget_with_the_answer(fake, tmp_path):
    async with _gateway(fake, tmp_path, compression=SUMMARY) as gw:
        tenancy, tenant = await _key(gw, budgets=Budgets(total_usd=1.0))
        result = await gw.chat(_summarised(0), tenant)
        gw.ledger.flush()
        rows = [r for r in gw.ledger.rows() if r["request_id"] == result.request_id]
        assert sorted(r["kind"] for r in rows) == ["chat", "compression"]
        summary = next(r["cost_usd"] for r in rows if r["kind"] == "compression")
        assert summary > 0 and result.cost_usd == pytest.approx(sum(r["cost_usd"] for r in rows))
        usage = await _usage(tenancy, tenant)
        assert usage == {"total": pytest.approx(result.cost_usd), "reserved": 0.0}

        stream = await gw.chat_stream(_summarised(1, stream=True), tenant)
        assert [c async for c in stream]
        usage = await _usage(tenancy, tenant)
        assert stream.cost_usd > summary  # a new summary, and the answer
        assert usage == {"total": pytest.approx(result.cost_usd + stream.cost_usd), "reserved": 0.0}
        assert usage["total"] == pytest.approx(_booked(gw, tenant.key_id))


async def test_a_summary_paid_for_a_request_that_then_failed_is_charged(fake, tmp_path):
    async with _gateway(fake, tmp_path, compression=SUMMARY, retry={"max_retries": 0}) as gw:
        tenancy, tenant = await _key(gw, budgets=Budgets(total_usd=1.0))
        fake.script({}, {"status": 400})  # the summary is written, then the request itself fails
        with pytest.raises(UpstreamError):
            await gw.chat(_summarised(2), tenant)
        booked = _booked(gw, tenant.key_id)
        assert booked > 0
        assert await _usage(tenancy, tenant) == {"total": pytest.approx(booked), "reserved": 0.0}


async def test_summaries_stop_a_key_at_its_budget(fake, tmp_path):
    """The QA case: each request pays a new summary; before, nothing was refused."""
    async with _gateway(fake, tmp_path, compression=SUMMARY) as gw:
        tenancy, tenant = await _key(gw, budgets=Budgets(total_usd=0.01))
        served, refused = [], 0
        for i in range(12):
            try:
                served.append(await gw.chat(_summarised(10 + i), tenant))
            except BudgetExceeded:
                refused += 1
        assert refused >= 9 and len(served) <= 3
        usage = await _usage(tenancy, tenant)
        assert usage["total"] == pytest.approx(sum(r.cost_usd for r in served))
        assert usage["total"] == pytest.approx(_booked(gw, tenant.key_id))


# ---------------------------------------------------------------- holds (backends)


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        yield MemoryBudgets()
        return
    state = RedisState(request.getfixturevalue("redis_url"))
    yield RedisBudgets(state)
    await state.aclose()


async def test_work_admitted_on_budget_left_holds_its_estimate(backend: BudgetBackend):
    wins = windows(Budgets(total_usd=1.0))
    await backend.settle("k", wins, "seed", 0.4)
    # a batch estimated above what is left is admitted (need 0) and holds all of its estimate
    assert await backend.reserve("k", wins, "batch:a", 2.0, 60, need=0.0) is None
    refusal = await backend.reserve("k", wins, "batch:b", 0.1, 60, need=0.0)
    assert refusal is not None and refusal.reserved == pytest.approx(2.0)
    assert await backend.reserve("k", wins, "chat", 0.01, 60) is not None


async def test_partial_settles_move_the_hold_into_spend_and_release_drops_the_rest(backend: BudgetBackend):
    wins = windows(Budgets(total_usd=10.0))
    assert await backend.reserve("k", wins, "batch:a", 1.0, 60, need=0.0) is None
    await backend.settle_part("k", wins, "batch:a", 0.3)
    assert await backend.usage("k", wins) == {"total": pytest.approx(0.3), "reserved": pytest.approx(0.7)}
    await backend.settle_part("k", wins, "batch:a", 0.9)  # more than held: the hold is empty, not negative
    assert await backend.usage("k", wins) == {"total": pytest.approx(1.2), "reserved": 0.0}
    await backend.hold("k", "batch:a", 0.5, 60)
    await backend.release("k", "batch:a")
    assert await backend.usage("k", wins) == {"total": pytest.approx(1.2), "reserved": 0.0}
    await backend.settle_part("k", wins, "gone", 0.1)  # no hold left: still counted
    assert (await backend.usage("k", wins))["total"] == pytest.approx(1.3)


async def test_a_renewed_hold_outlives_its_ttl_and_lapses_once_no_longer_renewed(backend: BudgetBackend):
    wins = windows(Budgets(total_usd=1.0))
    assert await backend.reserve("k", wins, "batch:a", 0.6, 0.5, need=0.0) is None
    for _ in range(8):  # 0.8 s in all: past the ttl
        await asyncio.sleep(0.1)
        await backend.hold("k", "batch:a", 0.6, 0.5)
        assert (await backend.usage("k", wins))["reserved"] == pytest.approx(0.6)
    await asyncio.sleep(0.7)  # its runner is gone: the hold lapses
    assert (await backend.usage("k", wins))["reserved"] == 0
    assert await backend.reserve("k", wins, "chat", 0.9, 60) is None
