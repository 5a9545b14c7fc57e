"""The cascade: try tiers cheap → expensive; a tier's answer is returned if its gate passes.

Each non-final tier is called through the rest of the pipeline (`next`) as a non-streaming call with
booking held; a rejected answer is booked as `rejected` (its cost counts toward the request), the
accepted one as the final row with lever `cascade`. The final tier is not gated and, for streaming
clients, streams straight from the provider. An accepted earlier tier reaches a streaming client as
a replay of the complete answer: the client sees its first byte only after that tier has answered
in full (time-to-first-token ≈ the tier's full latency plus the gate's).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from thrifty.errors import UpstreamError
from thrifty.pipeline import Call, Handler
from thrifty.routing.gates import Answer, QualityGate, needs_logprobs
from thrifty.types import ChatResult, Usage

if TYPE_CHECKING:
    from thrifty.bookkeeping import Bookkeeper
    from thrifty.providers.pool import ProviderPool

HOLD = "_thrifty_hold_booking"
"""`call.meta` key: while set, the Bookkeeper prices an answer without booking it (see bookkeeping.ok)."""


class Cascade:
    def __init__(self, tiers: list[str], gate: QualityGate, books: Bookkeeper, pool: ProviderPool) -> None:
        self.tiers = list(tiers)
        self.gate = gate
        self.books = books
        self.pool = pool

    def _asker(self, call: Call, spent: _Spent):
        """The judge's connection: each grading call is booked (`rejected`, reason `judge`) and its
        cost added to what the request spent."""

        async def ask(model: str, messages: list[dict[str, str]]) -> str:
            started = time.perf_counter()

            def failed(name: str, dep, error: UpstreamError, latency: float) -> None:
                self.books.error(call, name, dep, error, latency)

            reply, served = await self.pool.chat(model, {"model": model, "messages": messages}, failed)
            usage = reply.usage or self.books.estimate({"messages": messages}, _text(reply.body))
            latency = (time.perf_counter() - started) * 1000
            spent.usd += self.books.rejected(
                call, served.model, served.deployment, usage, latency_ms=latency, reason="judge"
            )
            spent.attempts += 1
            return _text(reply.body)

        return ask

    async def run(self, call: Call, next: Handler) -> ChatResult:
        streaming = call.stream
        spent = _Spent()
        # a logprob gate needs the tiers' token logprobs, whether or not the client asked for them
        add_logprobs = needs_logprobs(self.gate) and call.body.get("logprobs") is not True
        call.lever = "cascade"
        for i, tier in enumerate(self.tiers[:-1], 1):
            call.with_model(tier)
            call.route = f"cascade:tier{i}"
            call.stream = False
            call.meta[HOLD] = True
            if add_logprobs:
                call.body = {**call.body, "logprobs": True}
            try:
                result = await next(call)
            except UpstreamError:
                continue  # the failure is booked by the dispatcher; escalate
            finally:
                call.meta.pop(HOLD, None)
                if add_logprobs:
                    call.body = {k: v for k, v in call.body.items() if k != "logprobs"}
            answer = Answer.of(call.body, result.body)
            answer.ask = self._asker(call, spent)
            verdict = await self.gate.check(answer)
            usage = result.usage or Usage()
            if verdict.ok:
                call.meta["gate"] = verdict.reason
                cost = self.books.ok(
                    call, result.served_model, result.deployment, usage, latency_ms=call.elapsed_ms()
                )
                if add_logprobs:
                    result.body = _without_logprobs(result.body)
                result.cost_usd = cost + spent.usd
                result.attempts += spent.attempts
                result.headers["x-thrifty-route"] = call.route
                return result
            spent.attempts += result.attempts
            spent.usd += self.books.rejected(
                call,
                result.served_model,
                result.deployment,
                usage,
                latency_ms=call.elapsed_ms(),
                reason=f"gate {self.gate.name}: {verdict.reason}",
            )
        call.with_model(self.tiers[-1])
        call.route = f"cascade:tier{len(self.tiers)}"
        call.stream = streaming
        result = await next(call)
        result.cost_usd += spent.usd
        result.attempts += spent.attempts
        if result.stream is not None:  # its cost is booked when it ends: count the rejected tiers in
            result.stream.prior_cost_usd += spent.usd
        result.headers["x-thrifty-route"] = call.route
        return result


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
