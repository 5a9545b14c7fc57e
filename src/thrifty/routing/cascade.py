"""The cascade: try tiers cheap → expensive; a tier's answer is returned if its gate passes.

Each non-final tier is called through the rest of the pipeline (`next`) as a non-streaming call with
booking held; a rejected answer is booked as `rejected` (its cost counts toward the request), the
accepted one as the final row with lever `cascade`. The final tier is not gated and, for streaming
clients, streams straight from the provider. An accepted earlier tier reaches a streaming client as
a replay of the complete answer: the client sees its first byte only after that tier has answered
in full (time-to-first-token ≈ the tier's full latency plus the gate's).

A tier that cannot express the request (an Anthropic tier asked for `n > 1`) is skipped — found
before any tier is called where a request-level check can tell (`expressible.py`), else when it is
called — and named in the final row's `meta.cascade_skipped`; it costs nothing. Only when no tier can
take the request is it refused (the first tier's 400). A tier that fails upstream is skipped too
(its failed attempts are booked by the dispatcher). `x-thrifty-attempts` counts every upstream call
made for the request: the tiers' (failed ones included) and the judge's.

When the final tier fails upstream (after its retries and fallbacks) and a rejected tier's answer is
fit to stand in (see degraded.py), that answer is served instead of the error — replayed to a
streaming client — with `x-thrifty-cascade: degraded`; its final row (no cost of its own: the answer
was paid for on its `rejected` row) names the tier, its rejection and the failure in
`meta.cascade_degraded`, and is never cached. An answer's final row carries the client's `stream`
flag, replayed or not; the gated tiers' own rows (called without streaming) have `stream = 0`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from thrifty.errors import InvalidRequest, UpstreamError
from thrifty.pipeline import Call, Handler
from thrifty.routing.degraded import HEADER, Held, degradable, unfit
from thrifty.routing.expressible import refusal
from thrifty.routing.gates import Answer, QualityGate, Verdict, check_choices, needs_logprobs
from thrifty.types import DEGRADED, ChatResult, Usage

if TYPE_CHECKING:
    from thrifty.bookkeeping import Bookkeeper
    from thrifty.providers.pool import ProviderPool
    from thrifty.providers.table import Deployment

log = logging.getLogger("thrifty.routing")

HOLD = "_thrifty_hold_booking"
"""`call.meta` key: while set, the Bookkeeper prices an answer without booking it (see bookkeeping.ok)."""
SKIPPED = "cascade_skipped"
"""`call.meta` key: {tier: why} for tiers that could not express the request."""


class Cascade:
    def __init__(self, tiers: list[str], gate: QualityGate, books: Bookkeeper, pool: ProviderPool) -> None:
        self.tiers = list(tiers)
        self.gate = gate
        self.books = books
        self.pool = pool

    def _asker(self, call: Call, spent: _Spent):
        """The judge's connection: each grading call is booked (`rejected`, reason `judge`), its cost
        added to what the request spent and each of its upstream attempts (failed ones included)
        counted."""

        async def ask(model: str, messages: list[dict[str, str]]) -> str:
            started = time.perf_counter()

            def failed(name: str, dep: Deployment, error: UpstreamError, latency: float) -> None:
                spent.attempts += 1
                spent.usd += self.books.error(call, name, dep, error, latency)

            reply, served = await self.pool.chat(model, {"model": model, "messages": messages}, failed)
            spent.attempts += 1
            usage = reply.usage or self.books.estimate({"messages": messages}, _text(reply.body))
            latency = (time.perf_counter() - started) * 1000
            spent.usd += self.books.rejected(
                call, served.model, served.deployment, usage, latency_ms=latency, reason="judge"
            )
            return _text(reply.body)

        return ask

    def _expressible(self, call: Call) -> list[tuple[int, str]]:
        """(tier number, model) of the tiers that can express the request, as far as a request-level
        check tells; the others are skipped. None can: the first tier's refusal is raised."""
        kept: list[tuple[int, str]] = []
        first: InvalidRequest | None = None
        for number, tier in enumerate(self.tiers, 1):
            refused = refusal(self.pool, tier, call.body)
            if refused is None:
                kept.append((number, tier))
            else:
                first = first or refused
                _skip(call, tier, refused)
        if first is not None and not kept:
            raise first
        return kept

    async def run(self, call: Call, next: Handler) -> ChatResult:
        streaming = call.stream
        spent = _Spent()
        *gated, last = self._expressible(call)
        call.lever = "cascade"
        held: Held | None = None
        for number, tier in gated:
            result = await self._tier(call, next, number, tier, spent)
            if result is None:
                continue
            verdict = await self._check(call, result, spent)
            if verdict.ok:
                call.stream = streaming  # the answer's row: what the client asked for
                return self._accept(call, result, verdict, spent)
            self._reject(call, result, verdict, spent)
            if await unfit(call.body, result.body, stream=streaming) is None:
                held = Held(number, result, self._why(verdict))
        call.stream = streaming
        booked, paid = call.attempts.value, call.attempts.usd
        try:
            return await self._final(call, next, last, spent)
        except UpstreamError as exc:
            if held is None or not degradable(exc):
                raise
            spent.attempts += call.attempts.value - booked  # one ledger row per failed attempt
            spent.usd += call.attempts.usd - paid  # what they cost (e.g. a micro-batch share not used)
            return self._degraded(call, held, last[0], exc, spent)

    def _adds_logprobs(self, call: Call) -> bool:
        """A logprob gate needs the tiers' token logprobs, whether or not the client asked for them."""
        return needs_logprobs(self.gate) and call.body.get("logprobs") is not True

    async def _tier(
        self, call: Call, next: Handler, number: int, tier: str, spent: _Spent
    ) -> ChatResult | None:
        """A gated tier's answer, its booking held; None when the tier failed upstream (its failed
        attempts booked by the dispatcher and counted here) or could not express the request."""
        call.with_model(tier)
        call.route = f"cascade:tier{number}"
        call.stream = False
        call.meta[HOLD] = True
        sent = call.body
        if self._adds_logprobs(call):
            call.body = {**sent, "logprobs": True}
        booked = call.attempts.value
        try:
            return await next(call)
        except UpstreamError:
            spent.attempts += call.attempts.value - booked  # one ledger row per failed attempt
            return None
        except InvalidRequest as exc:  # refused once its messages were translated: nothing was sent
            _skip(call, tier, exc)
            return None
        finally:
            call.meta.pop(HOLD, None)
            call.body = sent  # the request as the client asked it (logprobs included or not)

    async def _check(self, call: Call, result: ChatResult, spent: _Spent) -> Verdict:
        answers = Answer.each(call.body, result.body)
        ask = self._asker(call, spent)
        for answer in answers:
            answer.ask = ask
        return await check_choices(self.gate, answers)

    def _accept(self, call: Call, result: ChatResult, verdict: Verdict, spent: _Spent) -> ChatResult:
        call.meta["gate"] = verdict.reason
        usage = result.usage or Usage()
        cost = self.books.ok(
            call, result.served_model, result.deployment, usage, latency_ms=call.elapsed_ms()
        )
        if self._adds_logprobs(call):
            result.body = _without_logprobs(result.body)
        result.cost_usd = cost + spent.usd
        result.attempts += spent.attempts
        result.headers["x-thrifty-route"] = call.route
        return result

    def _reject(self, call: Call, result: ChatResult, verdict: Verdict, spent: _Spent) -> None:
        spent.attempts += result.attempts
        spent.usd += self.books.rejected(
            call,
            result.served_model,
            result.deployment,
            result.usage or Usage(),
            latency_ms=call.elapsed_ms(),
            reason=self._why(verdict),
        )

    def _why(self, verdict: Verdict) -> str:
        """A rejected tier's reason, as booked on its row."""
        return f"gate {self.gate.name}: {verdict.reason}"

    def _degraded(
        self, call: Call, held: Held, failed: int, error: UpstreamError, spent: _Spent
    ) -> ChatResult:
        """The held answer, served because the final tier (number `failed`) failed with `error`."""
        result = held.result
        call.route = f"cascade:tier{held.number}"
        call.meta[DEGRADED] = {
            "tier": held.number,
            "rejected": held.reason[:300],
            "failed_tier": failed,
            "error": error.message[:300],
        }
        log.warning(
            "cascade %s: tier %d failed (%s); serving tier %d's rejected answer",
            call.requested_model,
            failed,
            error.message[:200],
            held.number,
        )
        usage = result.usage or Usage()
        latency = call.elapsed_ms()
        self.books.served_after_all(call, result.served_model, result.deployment, usage, latency_ms=latency)
        if self._adds_logprobs(call):
            result.body = _without_logprobs(result.body)
        result.cost_usd = spent.usd
        result.attempts = spent.attempts
        result.storable = False  # a rejected answer: never a cache entry
        result.headers["x-thrifty-route"] = call.route
        result.headers[HEADER] = "degraded"
        return result

    async def _final(self, call: Call, next: Handler, tier: tuple[int, str], spent: _Spent) -> ChatResult:
        """The last tier that can take the request: not gated, streamed to a streaming client."""
        number, model = tier
        call.with_model(model)
        call.route = f"cascade:tier{number}"
        result = await next(call)
        result.cost_usd += spent.usd
        result.attempts += spent.attempts
        if result.stream is not None:  # its cost is booked when it ends: count the rejected tiers in
            result.stream.prior_cost_usd += spent.usd
        result.headers["x-thrifty-route"] = call.route
        return result


def _skip(call: Call, tier: str, why: InvalidRequest) -> None:
    """Note a tier that cannot express the request (nothing was sent, nothing is booked for it)."""
    call.meta.setdefault(SKIPPED, {})[tier] = why.message
    log.debug("cascade %s: tier %s skipped: %s", call.requested_model, tier, why.message)


@dataclass(slots=True)
class _Spent:
    """What a request has paid for answers it did not use: rejected tiers and judge calls."""

    usd: float = 0.0
    attempts: int = 0
    """Upstream calls they took (retries included)."""


def _without_logprobs(body: dict) -> dict:
    """The answer as a client that did not ask for logprobs expects it."""
    choices = [{**c, "logprobs": None} for c in body.get("choices") or ()]
    return {**body, "choices": choices}


def _text(body: dict) -> str:
    choice = (body.get("choices") or [{}])[0]
    content = (choice.get("message") or {}).get("content")
    return content if isinstance(content, str) else ""
