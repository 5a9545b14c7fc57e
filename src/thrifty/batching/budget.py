"""A key's budget for batch jobs, through the tenancy limits stage (the same check as live chat).

A batch is checked when it is created: a key whose budget is already spent gets the live-chat
refusal (429 `budget_exceeded`, or 402 by config). Lines run through the gateway go through the
limits stage one by one like any request; lines answered by a provider's batch API are charged to
the key's budget counters as they are booked. So a batch admitted with budget left can overrun the
budget by at most its own cost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from thrifty.tenancy.runtime import tenancy_of
from thrifty.tenancy.stage import LimitsStage
from thrifty.types import Tenant

if TYPE_CHECKING:
    from thrifty.gateway import Gateway


def _stage(gateway: Gateway) -> LimitsStage | None:
    tenancy = tenancy_of(gateway)
    return None if tenancy is None else tenancy.stage


async def admit(gateway: Gateway, tenant: Tenant) -> None:
    """Raise the live-chat budget refusal when the tenant's key has no budget left at all."""
    stage = _stage(gateway)
    if stage is not None:
        await stage.admit(tenant)


async def charge(gateway: Gateway, tenant: Tenant, usd: float) -> None:
    """Count `usd` booked outside the pipeline (forwarded batch lines) in the key's budget windows."""
    stage = _stage(gateway)
    if stage is not None:
        await stage.charge(tenant, usd)
