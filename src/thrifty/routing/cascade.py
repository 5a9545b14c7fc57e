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
from typing import TYPE_CHECKING

from thrifty.errors import UpstreamError
from thrifty.pipeline import Call, Handler
from thrifty.routing.gates import Answer, QualityGate
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

    def _asker(self, call: Call):
        async def ask(model: str, messages: list[dict[str, str]]) -> str:
            started = time.perf_counter()

            def failed(name: str, dep, error: UpstreamError, latency: float) -> None:
                self.books.error(call, name, dep, error, latency)

            reply, served = await self.pool.chat(model, {"model": model, "messages": messages}, failed)
            usage = reply.usage or self.books.estimate({"messages": messages}, _text(reply.body))
            latency = (time.perf_counter() - started) * 1000
            self.books.rejected(
                call, served.model, served.deployment, usage, latency_ms=latency, reason="judge"
            )
            return _text(reply.body)

        return ask

    async def run(self, call: Call, next: Handler) -> ChatResult:
        streaming = call.stream
        spent = 0.0
        call.lever = "cascade"
        for i, tier in enumerate(self.tiers[:-1], 1):
            call.with_model(tier)
            call.route = f"cascade:tier{i}"
            call.stream = False
            call.meta[HOLD] = True
            try:
                result = await next(call)
            except UpstreamError:
                continue  # the failure is booked by the dispatcher; escalate
            finally:
                call.meta.pop(HOLD, None)
            answer = Answer.of(call.body, result.body)
            answer.ask = self._asker(call)
            verdict = await self.gate.check(answer)
            usage = result.usage or Usage()
            if verdict.ok:
                call.meta["gate"] = verdict.reason
                cost = self.books.ok(
                    call, result.served_model, result.deployment, usage, latency_ms=call.elapsed_ms()
                )
                result.cost_usd = cost + spent
                result.headers["x-thrifty-route"] = call.route
                return result
            spent += self.books.rejected(
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
        result.cost_usd += spent
        if result.stream is not None:  # its cost is booked when it ends: count the rejected tiers in
            result.stream.prior_cost_usd += spent
        result.headers["x-thrifty-route"] = call.route
        return result


def _text(body: dict) -> str:
    choice = (body.get("choices") or [{}])[0]
    content = (choice.get("message") or {}).get("content")
    return content if isinstance(content, str) else ""
