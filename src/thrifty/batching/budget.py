"""A key's budget and access for batch jobs, through the tenancy limits stage (the same checks as live chat).

A batch is admitted when it is created, with an estimate of the whole job (each line's prompt, counted
locally, plus its output cap — `max_completion_tokens`, `max_tokens`, else
`tenancy.budgets.default_max_tokens` — times `n`, at batch price when it will be forwarded), held against
the key's budgets under the batch's own id (`batch:<id>`) so that the next batch or live request sees
what this one may spend. A job forwarded to the provider's batch API spends out of sight until it
ends, so, like a live request, it is refused (429 `budget_exceeded`, or 402 by config) unless its whole
estimate fits what the budget has left — lower the lines' `max_tokens` to fit (a line without one is
sent upstream with the cap its estimate assumed: `capped`); a job run through the
gateway is refused only when the budget is already spent or held, since each of its lines is then
admitted on its own. A forwarded job renews that hold at every poll (for another
`reservation_ttl_s`: a job whose gateway stopped or died stops holding after that, and holds again
when a gateway resumes it) and settles it part by part as its answers are booked; what is left is
released when the job ends, however it ends. A job run through the gateway releases the hold when it
starts: each line then goes through the limits stage like a live request (reserve, settle).

Access is checked against the key as it is now: each line run through the gateway is sent with the
key's current model list (403 once the model is taken away, 401 once the key is revoked or expired),
and a forwarded job whose key can no longer run it is cancelled upstream at its next poll.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from thrifty.errors import AuthenticationError, PermissionDenied, ThriftyError
from thrifty.pipeline import Call
from thrifty.tenancy.runtime import tenancy_of
from thrifty.tenancy.stage import LimitsStage
from thrifty.types import Body, Tenant

if TYPE_CHECKING:
    from thrifty.batching.lines import Line
    from thrifty.gateway import Gateway

log = logging.getLogger("thrifty.batching")


def _stage(gateway: Gateway, tenant: Tenant) -> LimitsStage | None:
    """The limits stage when `tenant` is a virtual key's (None: no key, the master key, tenancy off)."""
    if tenant.key_id is None or tenant.key_id == "master":
        return None
    tenancy = tenancy_of(gateway)
    return None if tenancy is None else tenancy.stage


def hold_id(batch_id: str) -> str:
    return "batch:" + batch_id


def job_cost(stage: LimitsStage, lines: Iterable[Line], batch_price: float) -> float:
    """The most the lines may cost: each one's worst case (as the limits stage reserves for a live
    request) times the batch price multiplier."""
    total = 0.0
    for line in lines:
        call = Call(body=line.body, original=line.body, tenant=Tenant(), request_id="", stream=False)
        total += stage.estimate(call).worst_usd
    return total * batch_price


def batch_multiplier(gateway: Gateway, model: str, forwarded: bool) -> float:
    price = gateway.table.price(model) if forwarded else None
    return 1.0 if price is None else price.batch


async def admit(
    gateway: Gateway, tenant: Tenant, batch_id: str, lines: list[Line], *, forwarded: bool
) -> None:
    """Hold the batch's estimate against the key's budgets, or refuse it: a forwarded job unless all of
    its estimate fits, one run through the gateway when the budget is already spent or held. No lines (a
    file that failed validation): only the refusal, nothing held."""
    stage = _stage(gateway, tenant)
    if stage is None:
        return
    key = await stage.key_of(tenant)
    usd = 0.0
    if key is not None and key.budgets.any() and lines:
        multiplier = batch_multiplier(gateway, lines[0].body["model"], forwarded)
        usd = await asyncio.to_thread(job_cost, stage, lines, multiplier)
    admission = await stage.admit(tenant, usd=usd, whole=forwarded, hold_id=hold_id(batch_id))
    if usd == 0:
        await stage.release(admission)


async def capped(gateway: Gateway, tenant: Tenant, bodies: list[Body]) -> list[Body]:
    """The lines of a forwarded job as they go upstream: a key with budgets sends each line that sets
    no output cap with the cap its hold assumed (`tenancy.budgets.default_max_tokens`), as a live
    request is sent; otherwise an uncapped answer could spend past what the job holds."""
    stage = _stage(gateway, tenant)
    if stage is None:
        return bodies
    key = await stage.key_of(tenant)
    if key is None or not key.budgets.any():
        return bodies
    return [stage.capped(body) for body in bodies]


async def current(gateway: Gateway, tenant: Tenant) -> Tenant:
    """The tenant as its key is now (its current model list); raises AuthenticationError (401) when the
    key is revoked, expired or gone."""
    stage = _stage(gateway, tenant)
    if stage is None:
        return tenant
    key = await stage.key_of(tenant)
    if key is None:
        raise AuthenticationError("The key this batch was created with no longer exists.")
    return Tenant(id=tenant.id, key_id=key.id, allowed_models=key.models, metadata=key.metadata)


class JobHold:
    """What one forwarded batch job holds against its key's budget while it runs, and the key's say
    over it. `todo` loads the lines still to be booked (read only if the key has a budget)."""

    def __init__(
        self, gateway: Gateway, tenant: Tenant, batch_id: str, todo: Callable[[], Awaitable[list[Line]]]
    ) -> None:
        self.gateway = gateway
        self.tenant = tenant
        self.id = hold_id(batch_id)
        self.stage = _stage(gateway, tenant)
        self.todo = todo
        self.usd: float | None = None
        """The estimate of what is still to be booked (computed once a key with a budget needs it)."""

    async def renew(self, model: str) -> ThriftyError | None:
        """Hold the estimate of what is still to be booked for another `reservation_ttl_s`; return why
        the key may no longer run the job (revoked, expired, gone, or no longer allowed `model`), else
        None. A key store that cannot be reached says nothing: the job keeps running, holding."""
        if self.stage is None:
            return None
        try:
            key = await self.stage.key_of(self.tenant)
        except AuthenticationError as exc:
            return exc
        except ThriftyError as exc:
            log.warning("batch hold %s: key not checked (%s)", self.id, exc.message)
            if self.usd is not None:  # it held before: keep holding
                await self._hold(self.tenant.key_id)
            return None
        if key is None:
            return AuthenticationError("The key this batch was created with no longer exists.")
        if key.models is not None and model not in key.models:
            return PermissionDenied(f"This key may no longer use model {model!r}.", code="model_not_allowed")
        if key.budgets.any():
            await self._hold(key.id)
        return None

    @property
    def renew_every_s(self) -> float:
        """Often enough that the hold never lapses while the job runs."""
        return self.stage.settings.budgets.reservation_ttl_s / 3 if self.stage is not None else float("inf")

    async def _hold(self, key_id: str | None) -> None:
        assert self.stage is not None and key_id is not None
        if self.usd is None:
            lines = await self.todo()
            multiplier = batch_multiplier(self.gateway, lines[0].body["model"], True) if lines else 1.0
            self.usd = await asyncio.to_thread(job_cost, self.stage, lines, multiplier)
        await self.stage.hold(key_id, self.id, self.usd, self.stage.settings.budgets.reservation_ttl_s)

    async def charge(self, usd: float) -> None:
        """Count `usd` booked for the job in the key's budget windows, taking it off the hold."""
        if self.stage is None or self.tenant.key_id is None or usd <= 0:
            return
        await self.stage.settle_part(self.tenant.key_id, self.id, usd)
        if self.usd is not None:
            self.usd = max(0.0, self.usd - usd)


async def release(gateway: Gateway, tenant: Tenant, batch_id: str) -> None:
    """Drop what is left of the batch's hold (it ended, or runs its lines through the gateway)."""
    stage = _stage(gateway, tenant)
    if stage is not None and tenant.key_id is not None:
        await stage.release_hold(tenant.key_id, hold_id(batch_id))
