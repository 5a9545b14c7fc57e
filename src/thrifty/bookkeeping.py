"""Books attempts in the ledger: prices the answer, the baseline and each lever's saving."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from thrifty.errors import UpstreamError
from thrifty.ledger.base import Ledger
from thrifty.pipeline import Call
from thrifty.pricing.account import Bill, bill
from thrifty.pricing.catalog import Price
from thrifty.pricing.cost import call_cost, list_cost
from thrifty.pricing.tokens import TokenCounter
from thrifty.providers.table import Deployment, ModelTable
from thrifty.types import Attempt, Body, Savings, Usage

TOKENIZER_SPREAD = (0.75, 1.5)
"""Provider input tokens ÷ the local cl100k count of the same messages, across tokenizers (o200k,
Claude's, Llama's …) on ordinary text; a ratio outside it means the provider billed more than messages."""


class Bookkeeper:
    """Turns served answers, failures and cache hits into ledger rows."""

    def __init__(
        self, ledger: Ledger, table: ModelTable, tokens: TokenCounter, baseline: Price | None
    ) -> None:
        self.ledger = ledger
        self.table = table
        self.tokens = tokens
        self.baseline = baseline
        self.observers: list[Callable[[Attempt], None]] = []
        """Called with every row booked (metrics, logs)."""

    def record(self, attempt: Attempt) -> None:
        self.ledger.record(attempt)
        for observe in self.observers:
            observe(attempt)

    @staticmethod
    def _attempt(call: Call, **fields: Any) -> Attempt:
        """A ledger row of `call`: who asked for what, numbered within the request."""
        return Attempt(
            request_id=call.request_id,
            attempt=call.attempts.next(fields.get("cost_usd", 0.0)),
            tenant_id=call.tenant.id,
            key_id=call.tenant.key_id,
            requested_model=call.requested_model,
            **fields,
        )

    @classmethod
    def _upstream_attempt(
        cls, call: Call, served_model: str, deployment: Deployment, **fields: Any
    ) -> Attempt:
        """A ledger row of a call that reached `deployment`."""
        return cls._attempt(
            call,
            served_model=served_model,
            provider=deployment.provider.name,
            deployment=deployment.key,
            **fields,
        )

    def estimate(self, body: Body, output_text: str) -> Usage:
        """Local token counts for a call whose provider reported no usage (marked estimated)."""
        return Usage(
            input_tokens=self.tokens.count_messages(body.get("messages") or []),
            output_tokens=self.tokens.count_text(output_text),
            estimated=True,
        )

    def baseline_price(self, call: Call) -> Price | None:
        # A virtual model (routing) has no price of its own: its plan names the baseline model.
        return self.baseline or self.table.price(call.meta.get("baseline_model") or call.requested_model)

    @staticmethod
    def original_input_tokens(call: Call, usage: Usage) -> int:
        if call.original_input_tokens is None:
            return usage.input_tokens
        sent = call.meta.get("compressed_input_tokens")  # local count of the compressed prompt
        if not sent or not usage.input_tokens or usage.estimated:
            return call.original_input_tokens
        # What compression removed (local count), added to what the provider billed. On the provider's
        # tokenizer scale when the two counts of the sent prompt differ as tokenizers do; when they
        # differ by more, the provider billed what the local count does not cover (tool definitions,
        # images), and scaling by that would multiply the saving: the removed count is taken as is.
        scale = usage.input_tokens / sent
        if not TOKENIZER_SPREAD[0] <= scale <= TOKENIZER_SPREAD[1]:
            scale = 1.0
        return usage.input_tokens + round((call.original_input_tokens - sent) * scale)

    def ok(
        self,
        call: Call,
        served_model: str,
        deployment: Deployment,
        usage: Usage,
        *,
        latency_ms: float,
        kind: str = "chat",
        batch: bool = False,
    ) -> float:
        """Book the answer the client gets (the final row); return its cost."""
        price = deployment.price or self.table.price(served_model)
        # the chat baseline model says nothing about what an embedding call would have cost
        baseline = self.baseline_price(call) if kind == "chat" else self.table.price(call.requested_model)
        money = bill(
            usage,
            price,
            baseline or price,
            original_input_tokens=self.original_input_tokens(call, usage),
            batch=batch,
        )
        if call.lever == "cascade":
            money.savings.cascade, money.savings.routing = money.savings.routing, 0.0
        if call.meta.get("_thrifty_hold_booking"):  # a cascade tier awaiting its gate books itself
            return money.cost
        self._final(call, served_model, deployment, money, usage, money.cost, latency_ms, kind)
        return money.cost

    def _final(
        self,
        call: Call,
        served_model: str,
        deployment: Deployment,
        money: Bill,
        usage: Usage,
        cost: float,
        latency_ms: float,
        kind: str = "chat",
    ) -> None:
        """The request's final row: the answer the client got, its baseline and savings."""
        self.record(
            self._upstream_attempt(
                call,
                served_model,
                deployment,
                status="ok",
                http_status=200,
                usage=usage,
                cost_usd=cost,
                baseline_cost_usd=money.baseline,
                savings=money.savings,
                latency_ms=latency_ms,
                stream=call.stream,
                kind=kind,
                final=True,
                route=call.route,
                meta=call.meta,
            )
        )

    def served_after_all(
        self, call: Call, served_model: str, deployment: Deployment, usage: Usage, *, latency_ms: float
    ) -> None:
        """Book, as the final row, an answer already booked `rejected` (and paid for) on an earlier
        row: a cascade tier served because the final tier failed. The row has no tokens or cost of its
        own (they are on that row); its baseline is the answer's, and the difference, the answer's cost
        included, is saved as for an accepted tier, so baseline − savings = cost (0) holds."""
        price = deployment.price or self.table.price(served_model)
        original = self.original_input_tokens(call, usage)
        money = bill(usage, price, self.baseline_price(call) or price, original_input_tokens=original)
        money.savings.cascade, money.savings.routing = money.savings.routing + money.cost, 0.0
        self._final(call, served_model, deployment, money, Usage(), 0.0, latency_ms)

    def batched(
        self,
        call: Call,
        served_model: str,
        deployment: Deployment,
        share: Usage,
        alone: Usage,
        *,
        latency_ms: float,
    ) -> float:
        """Book one item of a live micro-batch: `share` is its part of the batched call's usage,
        `alone` what it would have used sent by itself. batching = alone − share at list price;
        the rest is split as for a call sent alone. Returns the item's cost."""
        price = deployment.price or self.table.price(served_model)
        original = self.original_input_tokens(call, alone)
        money = bill(alone, price, self.baseline_price(call) or price, original_input_tokens=original)
        cost = call_cost(share, price)
        share_list = list_cost(share.input_tokens, share.output_tokens, price)
        money.savings.batching = list_cost(alone.input_tokens, alone.output_tokens, price) - share_list
        money.savings.prompt_cache = share_list - cost
        if call.lever == "cascade":
            money.savings.cascade, money.savings.routing = money.savings.routing, 0.0
        self.record(
            self._upstream_attempt(
                call,
                served_model,
                deployment,
                status="ok",
                http_status=200,
                usage=share,
                cost_usd=cost,
                baseline_cost_usd=money.baseline,
                savings=money.savings,
                latency_ms=latency_ms,
                final=True,
                route=call.route,
                meta=call.meta,
            )
        )
        return cost

    def error(
        self,
        call: Call,
        served_model: str,
        deployment: Deployment,
        error: UpstreamError,
        latency_ms: float,
        usage: Usage | None = None,
        *,
        kind: str = "chat",
        meta: dict[str, Any] | None = None,
    ) -> float:
        """Book a failed attempt (what it cost, if anything; no baseline); return that cost. `kind`:
        what the call was for (chat, embeddings, compression); `meta`: the row's, else the call's."""
        usage = usage or Usage()
        cost = call_cost(usage, deployment.price)
        self.record(
            self._upstream_attempt(
                call,
                served_model,
                deployment,
                status="error",
                http_status=error.upstream_status or error.status,
                error=error.message[:300],
                usage=usage,
                cost_usd=cost,
                latency_ms=latency_ms,
                stream=call.stream,
                kind=kind,
                route=call.route,
                meta=call.meta if meta is None else meta,
            )
        )
        return cost

    def rejected(
        self,
        call: Call,
        served_model: str,
        deployment: Deployment,
        usage: Usage,
        *,
        latency_ms: float,
        reason: str,
    ) -> float:
        """Book an answer that was paid for but not used (a cascade tier whose gate failed)."""
        cost = call_cost(usage, deployment.price or self.table.price(served_model))
        self.record(
            self._upstream_attempt(
                call,
                served_model,
                deployment,
                status="rejected",
                http_status=200,
                error=reason[:300],
                usage=usage,
                cost_usd=cost,
                latency_ms=latency_ms,
                stream=call.stream,
                route=call.route,
                meta=call.meta,
            )
        )
        return cost

    def compression(
        self,
        call: Call,
        served_model: str,
        deployment: Deployment,
        usage: Usage,
        *,
        latency_ms: float,
        meta: dict | None = None,
    ) -> float:
        """Book a model call made to compress a prompt (a memoised summary): its cost, no baseline;
        the savings it earns are booked on the requests that use it."""
        cost = call_cost(usage, deployment.price or self.table.price(served_model))
        self.record(
            self._upstream_attempt(
                call,
                served_model,
                deployment,
                status="ok",
                http_status=200,
                usage=usage,
                cost_usd=cost,
                latency_ms=latency_ms,
                kind="compression",
                meta={**call.meta, **(meta or {})},
            )
        )
        return cost

    def free_answer(
        self,
        call: Call,
        *,
        lever: str,
        usage: Usage,
        replaced_model: str,
        latency_ms: float,
        provider: str | None = None,
    ) -> float:
        """Book an answer that cost nothing upstream (a cache hit, `lever` = "cache_exact" or
        "cache_semantic"): the whole baseline is that lever's saving. `usage` is the stored answer's.
        Returns the saving."""
        base_price = self.baseline_price(call)
        original = self.original_input_tokens(call, usage)
        baseline = bill(
            usage, self.table.price(replaced_model) or base_price, base_price, original_input_tokens=original
        ).baseline
        savings = Savings(**{lever: baseline})
        status = "cache_hit"
        self.record(
            self._attempt(
                call,
                served_model=replaced_model,
                provider=provider,
                deployment=None,
                status=status,
                http_status=200,
                usage=usage,
                cost_usd=0.0,
                baseline_cost_usd=baseline,
                savings=savings,
                latency_ms=latency_ms,
                stream=call.stream,
                final=True,
                route=call.route,
                meta=call.meta,
            )
        )
        return baseline
