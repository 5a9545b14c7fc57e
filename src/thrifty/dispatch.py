"""The innermost pipeline handler: call the provider pool and book the answer."""

from __future__ import annotations

from typing import Any

from thrifty.bookkeeping import Bookkeeper
from thrifty.errors import UpstreamError
from thrifty.pipeline import Call
from thrifty.pricing.tokens import message_text
from thrifty.providers.pool import ProviderPool
from thrifty.providers.table import Deployment
from thrifty.streaming import ChatStream
from thrifty.types import Body, ChatResult, Usage


class Dispatch:
    """Sends `call.body` to `call.model` through the pool; every attempt goes to the ledger."""

    def __init__(self, pool: ProviderPool, books: Bookkeeper) -> None:
        self.pool = pool
        self.books = books

    def on_failure(self, call: Call, kind: str = "chat", meta: dict[str, Any] | None = None):
        """Books each failed attempt of a call for `call` (of `kind`; `meta`: the rows', else the call's)."""

        def record(name: str, dep: Deployment, error: UpstreamError, latency: float) -> None:
            self.books.error(call, name, dep, error, latency, kind=kind, meta=meta)

        return record

    async def __call__(self, call: Call) -> ChatResult:
        if call.stream:
            return await self._stream(call)
        reply, served = await self.pool.chat(call.model, call.body, self.on_failure(call))
        usage = reply.usage or self.books.estimate(call.body, answer_text(reply.body))
        cost = self.books.ok(call, served.model, served.deployment, usage, latency_ms=call.elapsed_ms())
        out = dict(reply.body)
        out["model"] = served.model
        if reply.usage is None:
            out["usage"] = usage.to_openai()
        return ChatResult(
            body=out,
            request_id=call.request_id,
            served_model=served.model,
            provider=served.deployment.provider.name,
            cost_usd=cost,
            usage=usage,
            attempts=served.attempts,
            deployment=served.deployment,
        )

    async def _stream(self, call: Call) -> ChatResult:
        opened = await self.pool.stream(call.model, call.body, self.on_failure(call))
        served = opened.served
        stream: ChatStream

        def finish(usage: Usage | None, text: str, error: UpstreamError | None, latency: float) -> None:
            used = usage or self.books.estimate(call.body, text)
            if error is None:
                cost = self.books.ok(call, served.model, served.deployment, used, latency_ms=latency)
            else:  # cut or failed midway: what was used so far is booked, and settles a budget
                cost = self.books.error(call, served.model, served.deployment, error, latency, usage=used)
            stream.cost_usd = stream.prior_cost_usd + cost

        include_usage = bool((call.original.get("stream_options") or {}).get("include_usage"))
        stream = ChatStream(
            first=opened.first,
            rest=opened.rest,
            request_id=call.request_id,
            served_model=served.model,
            provider=served.deployment.provider.name,
            include_usage=include_usage,
            finish=finish,
            started=call.started,
            estimate=lambda text: self.books.estimate(call.body, text),
        )
        return ChatResult(
            body={},
            request_id=call.request_id,
            served_model=served.model,
            provider=served.deployment.provider.name,
            cost_usd=0.0,
            usage=Usage(),
            attempts=served.attempts,
            stream=stream,
            deployment=served.deployment,
        )


def answer_text(body: Body) -> str:
    """All text of a chat.completion's choices, tool call names and arguments included."""
    parts = []
    for choice in body.get("choices") or ():
        message = choice.get("message") or {}
        parts.append(message_text(message))
        for call in message.get("tool_calls") or ():
            fn = call.get("function") or {}
            parts.append(str(fn.get("name") or "") + str(fn.get("arguments") or ""))
    return "".join(parts)
