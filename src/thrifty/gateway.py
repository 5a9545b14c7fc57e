"""The Gateway: wires the pipeline stages in order. Same engine for the server, library and CLI."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thrifty import config as config_mod
from thrifty.bookkeeping import Bookkeeper
from thrifty.config import Config
from thrifty.dispatch import Dispatch
from thrifty.errors import PermissionDenied
from thrifty.ledger.base import Ledger
from thrifty.ledger.open import open_ledger
from thrifty.metrics import Metrics
from thrifty.pipeline import Call, compose, with_side_costs
from thrifty.pricing.tokens import TokenCounter
from thrifty.providers.base import Provider
from thrifty.providers.breaker import Breaker
from thrifty.providers.http import HttpClient
from thrifty.providers.pool import ProviderPool
from thrifty.providers.registry import build_providers
from thrifty.providers.table import ModelTable
from thrifty.request import validate_chat, validate_embeddings
from thrifty.stages import build_stages
from thrifty.streaming import ChatStream, replay
from thrifty.types import Body, ChatResult, Tenant, Usage, new_request_id

if TYPE_CHECKING:
    from thrifty.tenancy.stage import LimitsStage

DEFAULT_TENANT = Tenant()


class Gateway:
    """`await gw.chat(body)` / `gw.chat_stream(body)` / `gw.embeddings(body)`, with every call booked."""

    def __init__(
        self,
        config: Config | None = None,
        *,
        ledger: Ledger | None = None,
        providers: dict[str, Provider] | None = None,
    ) -> None:
        self.config = config if config is not None else config_mod.load()
        self.catalog = self.config.catalog()
        self.http = HttpClient()
        if providers is None:
            providers = build_providers(self.config.providers, self.http)
        self.providers = providers
        self.table = ModelTable(self.config, self.providers, self.catalog)
        self.breaker = Breaker(self.config.breaker.failure_threshold, self.config.breaker.cooldown_s)
        self.pool = ProviderPool(self.table, self.breaker, self.config.retry)
        self.ledger = ledger if ledger is not None else open_ledger(self.config.ledger)
        self.tokens = TokenCounter()
        baseline = self.catalog.get(self.config.baseline_model) if self.config.baseline_model else None
        self.books = Bookkeeper(self.ledger, self.table, self.tokens, baseline)
        self.metrics = Metrics()
        self.metrics.watch(self.breaker.states, lambda: self.ledger.dropped)
        self.books.observers.append(self.metrics.observe)
        self.dispatch = Dispatch(self.pool, self.books)
        self.stages = build_stages(self)
        self.handler = compose(self.stages, self._upstream)

    @classmethod
    def from_yaml(cls, path: str | Path) -> Gateway:
        return cls(config_mod.load(path))

    async def start(self) -> None:
        await self.ledger.start()

    async def aclose(self) -> None:
        for stage in self.stages:  # stages holding connections (cache stores) close them
            closer = getattr(stage, "aclose", None)
            if closer is not None:
                await closer()
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

    async def _upstream(self, call: Call) -> ChatResult:
        """Innermost handler: the thrifty-only `thrifty` field never reaches a provider, whichever
        stages ran."""
        if "thrifty" in call.body:
            call.body = {k: v for k, v in call.body.items() if k != "thrifty"}
        return await self.dispatch(call)

    def _check_access(self, model: str, tenant: Tenant) -> None:
        if tenant.allowed_models is not None and model not in tenant.allowed_models:
            raise PermissionDenied(
                f"This key may not use model {model!r}.", param="model", code="model_not_allowed"
            )

    def _call(
        self,
        body: Body,
        tenant: Tenant,
        request_id: str | None,
        client_request_id: str | None,
        *,
        stream: bool,
    ) -> Call:
        body = validate_chat(body)
        self._check_access(body["model"], tenant)
        call = Call(
            body=body, original=body, tenant=tenant, request_id=request_id or new_request_id(), stream=stream
        )
        if client_request_id:
            call.meta["client_request_id"] = client_request_id
        return call

    async def chat(
        self,
        body: Body,
        tenant: Tenant = DEFAULT_TENANT,
        *,
        request_id: str | None = None,
        client_request_id: str | None = None,
    ) -> ChatResult:
        """A complete answer (the request's `stream` flag is ignored). `request_id` must be unique (the
        ledger's key); `client_request_id` is the client's own id, booked in the ledger's meta."""
        call = self._call(body, tenant, request_id, client_request_id, stream=False)
        return with_side_costs(call, await self.handler(call))

    async def chat_stream(
        self,
        body: Body,
        tenant: Tenant = DEFAULT_TENANT,
        *,
        request_id: str | None = None,
        client_request_id: str | None = None,
    ) -> ChatStream:
        """An answer as a stream of chunks; upstream failures before the first chunk raise."""
        call = self._call(body, tenant, request_id, client_request_id, stream=True)
        result = with_side_costs(call, await self.handler(call))
        result.headers["x-thrifty-attempts"] = str(result.attempts)  # the calls made before it streams
        if result.stream is None:  # a stage answered in full: replay it
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            replayed = replay(
                result.body,
                request_id=result.request_id,
                served_model=result.served_model,
                provider=result.provider,
                include_usage=include_usage,
                cost_usd=result.cost_usd,
            )
            replayed.headers.update(result.headers)
            return replayed
        # headers stages set on the result after the stream was built (route, cache bypass, compression)
        result.stream.headers.update(result.headers)
        return result.stream

    async def embeddings(
        self, body: Body, tenant: Tenant = DEFAULT_TENANT, *, request_id: str | None = None
    ) -> ChatResult:
        """An embeddings call. With a key, its cost (input tokens counted locally × the input price) is
        reserved against the key's budgets before the call, like a chat request's worst case, and
        settled with what the ledger books."""
        body = validate_embeddings(body)
        call = Call(
            body=body, original=body, tenant=tenant, request_id=request_id or new_request_id(), stream=False
        )
        self._check_access(call.model, tenant)
        limits = self._limits() if tenant.key_id is not None else None
        if limits is None:
            return await self._embed(call, {})
        tokens = self._count_inputs(body)
        admission = await limits.admit(tenant, tokens, limits.input_cost(call.model, tokens))
        try:
            result = await self._embed(call, admission.headers)
        except BaseException:
            await limits.release(admission)
            raise
        await limits.settle(admission, result.cost_usd)
        return result

    async def _embed(self, call: Call, headers: dict[str, str]) -> ChatResult:
        body = call.body
        failed = self.dispatch.on_failure(call, kind="embeddings")
        data, served = await self.pool.embeddings(call.model, body, failed)
        usage = Usage.from_openai(data.get("usage"))
        if usage is None:  # none sent, or unreadable: counted locally, and the client is told so too
            counted = self._count_inputs(body)
            usage = Usage(input_tokens=counted, estimated=True)
            data = {**data, "usage": {"prompt_tokens": counted, "total_tokens": counted}}
        cost = self.books.ok(
            call, served.model, served.deployment, usage, latency_ms=call.elapsed_ms(), kind="embeddings"
        )
        return ChatResult(
            body=data,
            request_id=call.request_id,
            served_model=served.model,
            provider=served.deployment.provider.name,
            cost_usd=cost,
            usage=usage,
            attempts=served.attempts,
            deployment=served.deployment,
            headers=headers,
        )

    def _count_inputs(self, body: Body) -> int:
        """Input tokens of an embeddings body: texts counted locally, token arrays by their length."""
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        if inputs and all(isinstance(x, int) for x in inputs):  # one input given as token ids
            return len(inputs)
        return sum(
            self.tokens.count_text(x) if isinstance(x, str) else len(x) if isinstance(x, list) else 0
            for x in inputs
        )

    def _limits(self) -> LimitsStage | None:
        """The tenancy stage (budgets, rate limits), for embeddings, which do not run the chat stages."""
        from thrifty.tenancy.runtime import tenancy_of

        tenancy = tenancy_of(self)
        return None if tenancy is None else tenancy.stage

    # ---- catalog

    def models(self) -> list[dict[str, Any]]:
        """Every name a client may ask for: the configured models, then the virtual ones."""
        now = int(time.time())
        names = dict.fromkeys([*self.table.names(), *self.config.routing.virtual_models])
        return [{"id": name, "object": "model", "created": now, "owned_by": "thrifty"} for name in names]
