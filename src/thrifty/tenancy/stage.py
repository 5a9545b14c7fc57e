"""The limits stage (outermost): rate limits and budget reservations for requests made with a key."""

from __future__ import annotations

import logging
import math
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from thrifty.errors import AuthenticationError, RateLimited
from thrifty.pipeline import Call, Handler, with_side_costs
from thrifty.pricing.tokens import TokenCounter
from thrifty.providers.table import ModelTable
from thrifty.tenancy.budgets import BudgetBackend, Window, windows
from thrifty.tenancy.errors import BudgetExceeded, StateError, StateUnavailable
from thrifty.tenancy.keys import Budgets, VirtualKey
from thrifty.tenancy.metered import MeteredStream
from thrifty.tenancy.ratelimit import Limit, LimitState, RateLimiter
from thrifty.tenancy.settings import TenancyConfig
from thrifty.types import ChatResult, Tenant

if TYPE_CHECKING:
    from thrifty.tenancy.directory import KeyDirectory

log = logging.getLogger("thrifty.tenancy")

_PER = 1_000_000
_EVERY_WINDOW = Budgets(daily_usd=math.inf, monthly_usd=math.inf, total_usd=math.inf)
"""Every window a spend is counted in, whether or not the key has a limit there."""


@dataclass(frozen=True, slots=True)
class Estimate:
    tokens: int
    """Prompt tokens (counted locally) + the most output tokens the request may produce."""
    worst_usd: float


@dataclass(slots=True)
class Reservation:
    key_id: str
    id: str
    amount: float
    wins: list[Window]


@dataclass(slots=True)
class Admission:
    """Work admitted outside the pipeline (an embeddings call, a batch job): its rate-limit headers and
    what it holds against its key's budgets until `settle` (or `release`)."""

    headers: dict[str, str]
    reservation: Reservation | None
    """None: nothing to hold or count (no key, the master key, or budgets unreachable and fail_open)."""


def format_reset(seconds: float) -> str:
    """OpenAI's duration style: `120ms`, `1.5s`, `6m0s`."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60)
    rest_text = f"{rest:.3f}".rstrip("0").rstrip(".")
    return f"{int(minutes)}m{rest_text}s" if minutes else f"{rest_text}s"


def rate_headers(states: list[LimitState]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for s in states:
        headers[f"x-ratelimit-limit-{s.kind}"] = str(s.limit)
        headers[f"x-ratelimit-remaining-{s.kind}"] = str(s.remaining)
        headers[f"x-ratelimit-reset-{s.kind}"] = format_reset(s.reset_s)
    return headers


class LimitsStage:
    """Looks up the caller's key; checks its rate limits; reserves the worst-case cost against its
    budgets before the rest of the pipeline runs; settles the actual cost (or releases) after."""

    def __init__(
        self,
        settings: TenancyConfig,
        directory: KeyDirectory,
        budgets: BudgetBackend,
        limiter: RateLimiter,
        table: ModelTable,
        tokens: TokenCounter,
    ) -> None:
        self.settings = settings
        self.directory = directory
        self.budgets = budgets
        self.limiter = limiter
        self.table = table
        self.tokens = tokens
        self.owner: Any = None
        self._dearest_rates: tuple[float, float] | None = None
        """The `Tenancy` that built this stage (the server finds keys and health through it)."""

    async def handle(self, call: Call, next: Handler) -> ChatResult:
        key = await self.key_of(call.tenant)
        if key is None:
            return await next(call)
        if self.owner is not None:
            await self.owner.start()  # library mode: nobody else starts it (no-op once done)
        if key.budgets.any():
            call.body = self.capped(call.body)
        limited = key.budgets.any() or key.rate_limits.any()
        estimate = self.estimate(call) if limited else Estimate(tokens=0, worst_usd=0.0)
        states = await self._rate_limit(key, estimate)
        headers = rate_headers(states)
        reservation = await self._reserve(key, estimate)
        result = await self._answer(call, next, reservation, headers)
        if result.stream is None:
            await self._refund_tokens(key, estimate, result)
        return result

    async def _answer(
        self, call: Call, next: Handler, reservation: Reservation | None, headers: dict[str, str]
    ) -> ChatResult:
        """The rest of the pipeline; its actual cost settles the reservation (a stream's, when it ends)."""
        try:
            result = await next(call)
        except BaseException:
            await self._unwind(reservation, call)
            raise
        result = with_side_costs(call, result)  # a prompt summary paid for it: the cost the client is told
        if result.stream is not None:

            async def on_end(cost: float | None) -> None:
                await self._settle(reservation, cost)

            result.stream = MeteredStream(result.stream, on_end, headers)
        else:
            await self._settle(reservation, result.cost_usd)
        result.headers.update(headers)
        return result

    async def _unwind(self, reservation: Reservation | None, call: Call) -> None:
        """No answer: nothing is charged, but what was paid on the request's behalf before it failed (a
        prompt summary, booked in the ledger) is."""
        if call.side_cost_usd > 0:
            await self._settle(reservation, call.side_cost_usd)
        else:
            await self._release(reservation)

    async def key_of(self, tenant: Tenant) -> VirtualKey | None:
        """The tenant's key as it is now (None: no key, or the master key); raises AuthenticationError
        when it is revoked or expired."""
        key_id = tenant.key_id
        if key_id is None or key_id == "master":
            return None
        key = await self.directory.by_id(key_id)
        if key is None:
            return None
        reason = key.unusable_reason()
        if reason is not None:
            raise AuthenticationError(reason)
        return key

    # ---- work the pipeline does not carry (embeddings, batch jobs): admitted with a hold, settled after

    async def admit(
        self,
        tenant: Tenant,
        tokens: int = 0,
        usd: float = 0.0,
        *,
        whole: bool = True,
        hold_id: str | None = None,
    ) -> Admission:
        """Count one request of `tokens` against the key's rate limits and hold `usd` (the work's
        estimated cost) against its budgets until `settle`. `whole`: refused unless all of `usd` fits,
        like a chat request; else refused only when the budget is already spent or held (a batch job,
        whose estimate is a loose upper bound: it may then overrun by at most its own cost)."""
        key = await self.key_of(tenant)
        if key is None:
            return Admission({}, None)
        if self.owner is not None:
            await self.owner.start()
        estimate = Estimate(tokens=tokens, worst_usd=usd)
        states = await self._rate_limit(key, estimate) if key.rate_limits.any() else []
        reservation = await self._reserve(key, estimate, need=None if whole else 0.0, reservation_id=hold_id)
        return Admission(rate_headers(states), reservation)

    async def settle(self, admission: Admission, usd: float) -> None:
        """Replace what the admitted work held by what it cost (counted in every window)."""
        await self._settle(admission.reservation, usd)

    async def release(self, admission: Admission) -> None:
        """The admitted work spent nothing: drop its hold."""
        await self._release(admission.reservation)

    def input_cost(self, model: str, tokens: int) -> float:
        """`tokens` of input priced at the dearest of `model` and its fallbacks (an embeddings call)."""
        rates = [self._rates(m) for m in [model, *self.table.fallbacks(model)]]
        known = [r for r in rates if r is not None] or [self._dearest()]
        return tokens * max(rate_in for rate_in, _ in known) / _PER

    # ---- holds of long-running admitted work (batch jobs), by the id they were admitted with

    async def hold(self, key_id: str, hold_id: str, usd: float, ttl_s: float) -> None:
        """Renew a hold for another `ttl_s` at `usd` (unchecked: the work was admitted)."""
        if self.owner is not None:
            await self.owner.start()
        try:
            await self.budgets.hold(key_id, hold_id, usd, ttl_s)
        except StateError as exc:
            log.warning("could not renew hold %s of key %s: %s", hold_id, key_id, exc)

    async def settle_part(self, key_id: str, hold_id: str, usd: float) -> None:
        """Count `usd` booked for held work in every window of the key, taking it off the hold."""
        if usd <= 0:
            return
        if self.owner is not None:
            await self.owner.start()
        try:
            await self.budgets.settle_part(key_id, windows(_EVERY_WINDOW), hold_id, usd)
        except StateError as exc:
            log.error("could not charge $%.6f to key %s (%s)", usd, key_id, exc)

    async def release_hold(self, key_id: str, hold_id: str) -> None:
        await self._release(Reservation(key_id, hold_id, 0.0, []))

    # ---- estimates

    def capped(self, body: dict[str, Any]) -> dict[str, Any]:
        """The request with an output cap: the reservation assumes `default_max_tokens` when the client
        set none, so that cap is sent upstream too; otherwise one uncapped answer could spend past it,
        and every uncapped request in flight at once."""
        if body.get("max_completion_tokens") or body.get("max_tokens"):
            return body
        return {**body, "max_tokens": self.settings.budgets.default_max_tokens}

    def estimate(self, call: Call) -> Estimate:
        body = call.body
        messages = body.get("messages") or []
        # one token of slack per message: providers frame messages slightly differently
        prompt = self.tokens.count_messages(messages) + len(messages)
        if body.get("tools"):
            prompt += self.tokens.count_text(str(body["tools"]))
        cap = body.get("max_completion_tokens") or body.get("max_tokens")
        output = cap if isinstance(cap, int) and cap > 0 else self.settings.budgets.default_max_tokens
        choices = body.get("n")
        if isinstance(choices, int) and choices > 1:
            output *= choices
        rates = [self._rates(m) for m in [call.model, *self.table.fallbacks(call.model)]]
        known = [r for r in rates if r is not None]
        if not known:  # a virtual model (router, cascade): any served model may answer
            known = [self._dearest()]
        worst = max((prompt * rate_in + output * rate_out) / _PER for rate_in, rate_out in known)
        return Estimate(tokens=prompt + output, worst_usd=worst)

    def _rates(self, model: str) -> tuple[float, float] | None:
        price = self.table.price(model)
        return None if price is None else (price.input, max(price.output, price.reasoning_rate))

    def _dearest(self) -> tuple[float, float]:
        """The highest input and output rates of every model this gateway serves."""
        if self._dearest_rates is None:
            rates = [r for r in map(self._rates, self.table.names()) if r is not None]
            self._dearest_rates = (
                max((r[0] for r in rates), default=0.0),
                max((r[1] for r in rates), default=0.0),
            )
        return self._dearest_rates

    # ---- rate limits

    async def _rate_limit(self, key: VirtualKey, estimate: Estimate) -> list[LimitState]:
        limits = []
        if key.rate_limits.rpm is not None:
            limits.append(Limit("requests", key.rate_limits.rpm, 1))
        if key.rate_limits.tpm is not None:
            if estimate.tokens > key.rate_limits.tpm:
                raise RateLimited(
                    f"This request may use up to {estimate.tokens} tokens, more than the key's limit of "
                    f"{key.rate_limits.tpm} tokens per minute; lower max_tokens or shorten the prompt.",
                    code="tokens_exceed_rate_limit",
                )
            limits.append(Limit("tokens", key.rate_limits.tpm, estimate.tokens))
        if not limits:
            return []
        try:
            states = await self.limiter.acquire(key.id, limits)
        except StateError as exc:
            self._state_failure("rate limits", exc, self.settings.rate_limits.on_state_error)
            return []
        denied = [s for s in states if s.retry_after_s > 0]
        if denied:
            worst = max(denied, key=lambda s: s.retry_after_s)
            headers = rate_headers(states)
            headers["retry-after"] = str(max(1, int(worst.retry_after_s + 0.999)))
            raise RateLimited(
                f"Rate limit reached for this key: {worst.limit} {worst.kind} per minute. "
                f"Try again in {format_reset(worst.retry_after_s)}.",
                headers=headers,
            )
        return states

    async def _refund_tokens(self, key: VirtualKey, estimate: Estimate, result: ChatResult) -> None:
        if key.rate_limits.tpm is None:
            return
        unused = estimate.tokens - (result.usage.input_tokens + result.usage.output_tokens)
        if unused <= 0:
            return
        try:
            await self.limiter.refund(key.id, Limit("tokens", key.rate_limits.tpm, unused))
        except StateError as exc:
            log.warning("could not refund unused tokens of key %s: %s", key.id, exc)

    # ---- budgets

    async def _reserve(
        self,
        key: VirtualKey,
        estimate: Estimate,
        *,
        need: float | None = None,
        reservation_id: str | None = None,
    ) -> Reservation | None:
        """Hold the worst case against the key's budgets (refused unless `need`, default the worst case,
        fits). The actual cost settles into every window, budgeted or not, so a budget given to the key
        later starts from what it already spent."""
        counted = windows(_EVERY_WINDOW)
        limited = windows(key.budgets)
        if not limited:
            return Reservation(key.id, "t" + secrets.token_hex(8), 0.0, counted)  # nothing to hold
        rid = reservation_id or "r" + secrets.token_hex(8)
        reservation = Reservation(key.id, rid, estimate.worst_usd, counted)
        ttl = self.settings.budgets.reservation_ttl_s
        try:
            refusal = await self.budgets.reserve(key.id, limited, rid, estimate.worst_usd, ttl, need)
        except StateError as exc:
            self._state_failure("budgets", exc, self.settings.budgets.on_state_error)
            return None
        if refusal is not None:
            win = refusal.window
            raise BudgetExceeded(
                f"Budget exceeded for key {key.id}: its {win.name} budget is ${win.limit:.4f}, "
                f"${refusal.spent:.4f} is spent and ${refusal.reserved:.4f} is held by requests in "
                f"flight; {_may_cost(estimate, need)}"
                "Lower max_tokens, wait for the budget to reset, or ask an admin to raise it.",
                status=self.settings.budgets.over_budget_status,
            )
        return reservation

    async def _settle(self, reservation: Reservation | None, cost: float | None) -> None:
        if reservation is None:
            return
        actual = reservation.amount if cost is None else cost
        try:
            await self.budgets.settle(reservation.key_id, reservation.wins, reservation.id, actual)
        except StateError as exc:
            log.error(
                "could not settle $%.6f for key %s (%s); its reservation expires on its own",
                actual,
                reservation.key_id,
                exc,
            )

    async def _release(self, reservation: Reservation | None) -> None:
        if reservation is None:
            return
        try:
            await self.budgets.release(reservation.key_id, reservation.id)
        except StateError as exc:
            log.warning("could not release reservation of key %s: %s", reservation.key_id, exc)

    def _state_failure(self, what: str, exc: StateError, mode: str) -> None:
        if mode == "fail_open":
            log.warning("%s state unreachable (%s): request let through (fail_open)", what, exc)
            return
        log.error("%s state unreachable (%s): request refused (fail_closed)", what, exc)
        raise StateUnavailable(
            f"The gateway cannot check {what} right now (shared state unreachable); try again shortly.",
            headers={"retry-after": "1"},
        )


def _may_cost(estimate: Estimate, need: float | None = None) -> str:
    if estimate.worst_usd <= 0 or need == 0:  # admitted work that only needs budget left: none is
        return "no budget is left. "
    return f"this request may cost up to ${estimate.worst_usd:.4f}. "
