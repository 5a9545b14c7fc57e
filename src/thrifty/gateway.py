"""The Gateway: wires the pipeline stages in order. Same engine for the server, library and CLI."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from thrifty import config as config_mod
from thrifty.config import Config
from thrifty.errors import PermissionDenied, UpstreamError
from thrifty.ledger.base import Ledger
from thrifty.ledger.open import open_ledger
from thrifty.pricing.account import bill
from thrifty.pricing.catalog import Price
from thrifty.pricing.cost import call_cost
from thrifty.pricing.tokens import TokenCounter, message_text
from thrifty.providers.breaker import Breaker
from thrifty.providers.http import HttpClient
from thrifty.providers.pool import ProviderPool, Served
from thrifty.providers.registry import build_providers
from thrifty.providers.table import Deployment, ModelTable
from thrifty.request import validate_chat, validate_embeddings
from thrifty.streaming import ChatStream
from thrifty.types import Attempt, Body, ChatResult, Tenant, Usage, new_request_id

DEFAULT_TENANT = Tenant()


class Gateway:
    """`await gw.chat(body)` / `gw.chat_stream(body)` / `gw.embeddings(body)`, with every call booked."""

    def __init__(self, config: Config | None = None, *, ledger: Ledger | None = None) -> None:
        self.config = config if config is not None else config_mod.load()
        self.catalog = self.config.catalog()
        self.http = HttpClient()
        self.providers = build_providers(self.config.providers, self.http)
        self.table = ModelTable(self.config, self.providers, self.catalog)
        self.breaker = Breaker(self.config.breaker.failure_threshold, self.config.breaker.cooldown_s)
        self.pool = ProviderPool(self.table, self.breaker, self.config.retry)
        self.ledger = ledger if ledger is not None else open_ledger(self.config.ledger)
        self.tokens = TokenCounter()
        self._baseline: Price | None = (
            self.catalog.get(self.config.baseline_model) if self.config.baseline_model else None
        )

    @classmethod
    def from_yaml(cls, path: str | Path) -> Gateway:
        return cls(config_mod.load(path))

    async def start(self) -> None:
        await self.ledger.start()

    async def aclose(self) -> None:
        await self.http.close()
        for provider in self.providers.values():
            await provider.aclose()
        await self.ledger.close()

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ---- the request path

    def _check_access(self, model: str, tenant: Tenant) -> None:
        if tenant.allowed_models is not None and model not in tenant.allowed_models:
            raise PermissionDenied(
                f"This key may not use model {model!r}.", param="model", code="model_not_allowed"
            )

    async def chat(
        self, body: Body, tenant: Tenant = DEFAULT_TENANT, *, request_id: str | None = None
    ) -> ChatResult:
        body = validate_chat(body)
        request_id = request_id or new_request_id()
        model = body["model"]
        self._check_access(model, tenant)
        started = time.perf_counter()
        counter = _AttemptCounter()
        reply, served = await self.pool.chat(
            model, body, self._on_failure(request_id, model, tenant, counter)
        )
        usage = reply.usage or self._estimate(body, _answer_text(reply.body))
        cost = self._book(
            request_id,
            body,
            tenant,
            served,
            usage,
            counter,
            latency_ms=(time.perf_counter() - started) * 1000,
            stream=False,
        )
        out = dict(reply.body)
        out["model"] = served.model
        if reply.usage is None:
            out["usage"] = usage.to_openai()
        return ChatResult(
            body=out,
            request_id=request_id,
            served_model=served.model,
            provider=served.deployment.provider.name,
            cost_usd=cost,
            usage=usage,
            attempts=served.attempts,
        )

    async def chat_stream(
        self, body: Body, tenant: Tenant = DEFAULT_TENANT, *, request_id: str | None = None
    ) -> ChatStream:
        body = validate_chat(body)
        request_id = request_id or new_request_id()
        model = body["model"]
        self._check_access(model, tenant)
        started = time.perf_counter()
        counter = _AttemptCounter()
        opened = await self.pool.stream(model, body, self._on_failure(request_id, model, tenant, counter))
        served = opened.served
        stream: ChatStream

        def finish(usage: Usage | None, text: str, error: UpstreamError | None, latency: float) -> None:
            used = usage or self._estimate(body, text)
            if error is None:
                stream.cost_usd = self._book(
                    request_id, body, tenant, served, used, counter, latency_ms=latency, stream=True
                )
            else:
                self._record_error(
                    request_id,
                    model,
                    tenant,
                    counter,
                    served.deployment,
                    error,
                    latency,
                    served_model=served.model,
                    usage=used,
                    stream=True,
                )

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        stream = ChatStream(
            first=opened.first,
            rest=opened.rest,
            request_id=request_id,
            served_model=served.model,
            provider=served.deployment.provider.name,
            include_usage=include_usage,
            finish=finish,
            started=started,
        )
        return stream

    async def embeddings(
        self, body: Body, tenant: Tenant = DEFAULT_TENANT, *, request_id: str | None = None
    ) -> ChatResult:
        body = validate_embeddings(body)
        request_id = request_id or new_request_id()
        model = body["model"]
        self._check_access(model, tenant)
        started = time.perf_counter()
        counter = _AttemptCounter()
        data, served = await self.pool.embeddings(
            model, body, self._on_failure(request_id, model, tenant, counter)
        )
        raw_usage = data.get("usage") or {}
        usage = Usage(input_tokens=int(raw_usage.get("prompt_tokens") or 0))
        if not raw_usage:
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            usage = Usage(
                input_tokens=sum(self.tokens.count_text(t) for t in texts if isinstance(t, str)),
                estimated=True,
            )
        cost = self._book(
            request_id,
            body,
            tenant,
            served,
            usage,
            counter,
            latency_ms=(time.perf_counter() - started) * 1000,
            stream=False,
            kind="embeddings",
        )
        return ChatResult(
            body=data,
            request_id=request_id,
            served_model=served.model,
            provider=served.deployment.provider.name,
            cost_usd=cost,
            usage=usage,
            attempts=served.attempts,
        )

    # ---- accounting

    def _estimate(self, body: Body, output_text: str) -> Usage:
        return Usage(
            input_tokens=self.tokens.count_messages(body.get("messages") or []),
            output_tokens=self.tokens.count_text(output_text),
            estimated=True,
        )

    def _book(
        self,
        request_id: str,
        body: Body,
        tenant: Tenant,
        served: Served,
        usage: Usage,
        counter: _AttemptCounter,
        *,
        latency_ms: float,
        stream: bool,
        kind: str = "chat",
    ) -> float:
        price = served.deployment.price or self.table.price(served.model)
        baseline = self._baseline or self.table.price(body["model"]) or price
        money = bill(usage, price, baseline)
        self.ledger.record(
            Attempt(
                request_id=request_id,
                attempt=counter.next(),
                tenant_id=tenant.id,
                key_id=tenant.key_id,
                requested_model=body["model"],
                served_model=served.model,
                provider=served.deployment.provider.name,
                deployment=served.deployment.key,
                status="ok",
                http_status=200,
                usage=usage,
                cost_usd=money.cost,
                baseline_cost_usd=money.baseline,
                savings=money.savings,
                latency_ms=latency_ms,
                stream=stream,
                kind=kind,
                final=True,
            )
        )
        return money.cost

    def _on_failure(self, request_id: str, model: str, tenant: Tenant, counter: _AttemptCounter):
        def record(name: str, dep: Deployment, error: UpstreamError, latency: float) -> None:
            self._record_error(request_id, model, tenant, counter, dep, error, latency, served_model=name)

        return record

    def _record_error(
        self,
        request_id: str,
        model: str,
        tenant: Tenant,
        counter: _AttemptCounter,
        dep: Deployment,
        error: UpstreamError,
        latency: float,
        *,
        served_model: str,
        usage: Usage | None = None,
        stream: bool = False,
    ) -> None:
        usage = usage or Usage()
        self.ledger.record(
            Attempt(
                request_id=request_id,
                attempt=counter.next(),
                tenant_id=tenant.id,
                key_id=tenant.key_id,
                requested_model=model,
                served_model=served_model,
                provider=dep.provider.name,
                deployment=dep.key,
                status="error",
                http_status=error.upstream_status or error.status,
                error=error.message[:300],
                usage=usage,
                cost_usd=call_cost(usage, dep.price),
                latency_ms=latency,
                stream=stream,
            )
        )

    # ---- catalog

    def models(self) -> list[dict[str, Any]]:
        now = int(time.time())
        return [
            {"id": name, "object": "model", "created": now, "owned_by": "thrifty"}
            for name in self.table.names()
        ]


class _AttemptCounter:
    """Numbers the ledger rows of one request."""

    def __init__(self) -> None:
        self.value = 0

    def next(self) -> int:
        self.value += 1
        return self.value


def _answer_text(body: Body) -> str:
    parts = []
    for choice in body.get("choices") or ():
        message = choice.get("message") or {}
        parts.append(message_text(message))
        for call in message.get("tool_calls") or ():
            fn = call.get("function") or {}
            parts.append(str(fn.get("name") or "") + str(fn.get("arguments") or ""))
    return "".join(parts)
