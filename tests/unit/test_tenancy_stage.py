"""The limits stage in library mode: a real Gateway in front of the fake provider, no HTTP server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import base_config
from thrifty import config as config_mod
from thrifty.errors import AuthenticationError, RateLimited, UpstreamError
from thrifty.gateway import Gateway
from thrifty.tenancy.budgets import windows
from thrifty.tenancy.errors import BudgetExceeded
from thrifty.tenancy.keys import Budgets, RateLimits
from thrifty.tenancy.runtime import Tenancy, tenancy_of
from thrifty.types import Tenant


def _gateway(fake: Any, tmp_path: Path, **tenancy: Any) -> Gateway:
    data = base_config(fake)
    data["ledger"] = {"path": str(tmp_path / "ledger.db")}
    data["tenancy"] = {"enabled": True, **tenancy}
    return Gateway(config_mod.parse(data, env={}))


def _body(i: int = 0, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "max_tokens": 50, "messages": [{"role": "user", "content": f"q{i}"}], **extra}


async def _key(gw: Gateway, **fields: Any) -> tuple[Tenancy, Tenant]:
    tenancy = tenancy_of(gw)
    assert tenancy is not None
    _, key = await tenancy.directory.create("team", **fields)
    return tenancy, Tenant(id="team", key_id=key.id)


def test_no_stage_when_tenancy_is_off(fake, tmp_path):
    data = base_config(fake)
    data["ledger"] = {"path": str(tmp_path / "ledger.db")}
    gw = Gateway(config_mod.parse(data, env={}))
    from thrifty.tenancy.stage import LimitsStage

    assert not any(isinstance(s, LimitsStage) for s in gw.stages) and tenancy_of(gw) is None


async def test_budget_holds_under_100_concurrent_requests(fake, tmp_path):
    fake.set_default(latency_ms=150)
    async with _gateway(fake, tmp_path) as gw:
        tenancy, tenant = await _key(gw, budgets=Budgets(total_usd=0.01))
        from thrifty.pipeline import Call

        worst = tenancy.stage.estimate(Call(body=_body(), original=_body(), tenant=tenant, request_id="x",
                                            stream=False)).worst_usd  # fmt: skip
        wins = windows(Budgets(total_usd=0.01))
        seed = 0.01 - 3.5 * worst  # nearly spent: room for three worst cases
        await tenancy.budgets.settle(tenant.key_id, wins, "seed", seed)

        async def one(i: int):
            try:
                return await gw.chat(_body(i), tenant)
            except BudgetExceeded as exc:
                return exc

        results = await asyncio.gather(*(one(i) for i in range(100)))
        served = [r for r in results if not isinstance(r, BudgetExceeded)]
        refused = [r for r in results if isinstance(r, BudgetExceeded)]
        assert len(served) == 3 and len(refused) == 97
        assert refused[0].status == 429 and refused[0].type == "insufficient_quota"
        assert "total budget is $0.0100" in refused[0].message
        usage = await tenancy.budgets.usage(tenant.key_id, wins)
        assert usage["reserved"] == 0
        assert usage["total"] == pytest.approx(seed + sum(r.cost_usd for r in served))
        assert usage["total"] - 0.01 <= worst  # the bound; here it is not even reached
        assert usage["total"] <= 0.01


async def test_over_budget_status_402_by_config(fake, tmp_path):
    async with _gateway(fake, tmp_path, budgets={"over_budget_status": 402}) as gw:
        _, tenant = await _key(gw, budgets=Budgets(daily_usd=0.0000001))
        with pytest.raises(BudgetExceeded) as exc:
            await gw.chat(_body(), tenant)
        assert exc.value.status == 402 and "daily budget" in exc.value.message


async def test_failed_request_releases_and_stream_settles(fake, tmp_path):
    async with _gateway(fake, tmp_path) as gw:
        tenancy, tenant = await _key(gw, budgets=Budgets(monthly_usd=1.0))
        wins = windows(Budgets(monthly_usd=1.0))
        fake.script({"status": 400})
        with pytest.raises(UpstreamError):
            await gw.chat(_body(), tenant)
        assert await tenancy.budgets.usage(tenant.key_id, wins) == {"monthly": 0.0, "reserved": 0.0}

        stream = await gw.chat_stream(_body(stream=True), tenant)
        assert (await tenancy.budgets.usage(tenant.key_id, wins))["reserved"] > 0
        chunks = [c async for c in stream]
        assert chunks and stream.cost_usd > 0
        usage = await tenancy.budgets.usage(tenant.key_id, wins)
        assert usage == {"monthly": pytest.approx(stream.cost_usd), "reserved": 0.0}

        cut = await gw.chat_stream(_body(1, stream=True), tenant)
        await cut.__anext__()
        await cut.aclose()  # client went away: charged what the ledger books for the part it used
        after = await tenancy.budgets.usage(tenant.key_id, wins)
        gw.ledger.flush()
        (booked,) = [r for r in gw.ledger.rows() if r["request_id"] == cut.request_id]
        assert booked["status"] == "error" and booked["http_status"] == 499 and booked["cost_usd"] > 0
        assert after["reserved"] == 0
        assert after["monthly"] == pytest.approx(usage["monthly"] + booked["cost_usd"])


async def test_rate_limit_headers_and_refusal(fake, tmp_path):
    async with _gateway(fake, tmp_path) as gw:
        _, tenant = await _key(gw, rate_limits=RateLimits(rpm=2, tpm=10_000))
        first = await gw.chat(_body(), tenant)
        assert first.headers["x-ratelimit-limit-requests"] == "2"
        assert first.headers["x-ratelimit-remaining-requests"] == "1"
        assert int(first.headers["x-ratelimit-remaining-tokens"]) > 9_900  # unused tokens refunded later
        await gw.chat(_body(), tenant)
        with pytest.raises(RateLimited) as exc:
            await gw.chat(_body(), tenant)
        assert int(exc.value.headers["retry-after"]) >= 1
        assert exc.value.headers["x-ratelimit-remaining-requests"] == "0"

        _, small = await _key(gw, rate_limits=RateLimits(tpm=20))
        with pytest.raises(RateLimited) as too_big:
            await gw.chat(_body(), small)
        assert too_big.value.code == "tokens_exceed_rate_limit"


async def test_revoked_key_is_refused_in_library_mode(fake, tmp_path):
    async with _gateway(fake, tmp_path, keys={"cache_ttl_s": 0}) as gw:
        tenancy, tenant = await _key(gw, budgets=Budgets(total_usd=1))
        await gw.chat(_body(), tenant)
        await tenancy.directory.revoke(tenant.key_id)
        with pytest.raises(AuthenticationError):
            await gw.chat(_body(), tenant)
        # the master key and callers without a key are not limited by the stage
        assert (await gw.chat(_body(), Tenant())).body["choices"]


async def test_in_process_budgets_survive_a_restart_through_the_ledger(fake, tmp_path):
    async with _gateway(fake, tmp_path) as gw:
        tenancy, tenant = await _key(gw, budgets=Budgets(daily_usd=1.0, total_usd=2.0))
        paid = [(await gw.chat(_body(i), tenant)).cost_usd for i in range(3)]
        gw.ledger.flush()
    async with _gateway(fake, tmp_path) as again:
        tenancy = tenancy_of(again)
        await tenancy.start()
        usage = await tenancy.budgets.usage(tenant.key_id, windows(Budgets(daily_usd=1.0, total_usd=2.0)))
        assert usage["daily"] == pytest.approx(sum(paid)) and usage["total"] == pytest.approx(sum(paid))
        assert sum(paid) > 0


async def test_worst_case_of_a_model_without_price_uses_the_dearest_served_model(fake, tmp_path):
    from thrifty.pipeline import Call

    async with _gateway(fake, tmp_path) as gw:
        stage = tenancy_of(gw).stage

        def worst(model: str) -> float:
            body = {**_body(), "model": model}
            return stage.estimate(Call(body=body, original=body, tenant=Tenant(), request_id="r",
                                       stream=False)).worst_usd  # fmt: skip

        served = [gw.table.price(m) for m in gw.table.names()]
        assert worst("virtual-auto") >= max(worst(m) for m in gw.table.names()) > 0
        assert worst("gpt-4o-mini") < worst("gpt-4o") and all(p is not None for p in served)
        # a model with fallbacks reserves for its dearest fallback: flaky (priced as gpt-4o) → claude
        assert worst("flaky") == pytest.approx(max(worst("gpt-4o"), worst("claude-sonnet-4-5")))


async def test_a_client_leaving_mid_stream_is_charged_what_the_ledger_books(fake, tmp_path):
    """The server cancels a stream waiting for its next chunk when the client leaves; the budget must
    then settle with the 499 row's cost, not the worst case it reserved (~500x more here)."""
    async with _gateway(fake, tmp_path) as gw:
        tenancy, tenant = await _key(gw, budgets=Budgets(daily_usd=1.0))
        wins = windows(Budgets(daily_usd=1.0))
        fake.script({"content": "a b c d e f g h i j k l", "chunk_delay_ms": 300})
        stream = await gw.chat_stream(_body(stream=True), tenant)
        await stream.__anext__()
        waiting = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0.05)
        waiting.cancel()  # what the server does when the client disconnects
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await stream.aclose()
        gw.ledger.flush()
        (row,) = [r for r in gw.ledger.rows() if r["request_id"] == stream.request_id]
        usage = await tenancy.budgets.usage(tenant.key_id, wins)
        assert row["http_status"] == 499 and row["cost_usd"] > 0
        assert usage == {"daily": pytest.approx(row["cost_usd"]), "reserved": 0.0}
