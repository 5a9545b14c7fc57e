"""Writes summaries with a model through the gateway's provider pool and books their cost."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from thrifty.compress.base import TokenCache
from thrifty.compress.memo import Summary
from thrifty.compress.summarize import INSTRUCTIONS
from thrifty.dispatch import answer_text
from thrifty.pipeline import Call
from thrifty.types import Tenant, new_request_id

if TYPE_CHECKING:
    from thrifty.gateway import Gateway


class ModelWriter:
    """`await writer(text, target, call)`: one chat call to `model`, booked as a "compression" row
    under the request that triggered it (its tenant, its request id) — each failed attempt too, so
    the summary model's chat error figures only count chat traffic."""

    def __init__(self, gateway: Gateway, model: str, tokens: TokenCache, timeout_s: float = 60.0) -> None:
        self.gateway = gateway
        self.model = model
        self.tokens = tokens
        self.timeout_s = timeout_s

    def request(self, text: str, target: int) -> dict:
        return {
            "model": self.model,
            "messages": [
                {"role": "system", "content": INSTRUCTIONS.format(target=target)},
                {"role": "user", "content": text},
            ],
            "temperature": 0,
            "max_tokens": 2 * target,
        }

    async def __call__(self, text: str, target: int, call: Call | None) -> Summary:
        body = self.request(text, target)
        booking = Call(
            body=body,
            original=body,
            tenant=call.tenant if call is not None else Tenant(),
            request_id=call.request_id if call is not None else new_request_id(),
            stream=False,
        )
        if call is not None:
            booking.attempts = call.attempts
            booking.meta = dict(call.meta)  # its rows group with the request's (cache namespace)
        started = time.perf_counter()
        source_tokens = self.tokens.text(text)
        detail = {"source_tokens": source_tokens, "target_tokens": target}
        # failed attempts too are "compression" rows: the summary model's chat figures count chat only
        on_failure = self.gateway.dispatch.on_failure(
            booking, kind="compression", meta={**booking.meta, **detail}
        )
        reply, served = await asyncio.wait_for(
            self.gateway.pool.chat(self.model, body, on_failure), self.timeout_s
        )
        summary = answer_text(reply.body).strip()
        choices = reply.body.get("choices") or [{}]
        if choices[0].get("finish_reason") == "length":
            summary = ""  # cut off mid-way: never used (memoised as "keep the source")
        usage = reply.usage or self.gateway.books.estimate(body, summary)
        cost = self.gateway.books.compression(
            booking,
            served.model,
            served.deployment,
            usage,
            latency_ms=(time.perf_counter() - started) * 1000,
            meta=detail,
        )
        if call is not None:
            call.side_cost_usd += cost
        return Summary(summary, source_tokens, self.tokens.text(summary), served.model, cost)


def cheapest_model(gateway: Gateway, source_tokens: int, target: int) -> str | None:
    """The configured chat model that would charge least to rewrite `source_tokens` into `target`."""
    table = gateway.table
    names = [n for n in gateway.config.models if n in table] or table.names()
    best: tuple[float, str] | None = None
    for name in names:
        price = table.price(name)
        if price is None or price.kind != "chat":
            continue
        cost = price.input * source_tokens + price.output * target
        if best is None or cost < best[0]:
            best = (cost, name)
    return None if best is None else best[1]
