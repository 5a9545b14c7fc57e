"""The cache Stage: exact lookup → semantic lookup → on a miss, the rest of the pipeline, then store.

A hit answers with the stored body (fresh id and timestamp), header `x-thrifty-cache: hit-exact` or
`hit-semantic`, and a ledger row of zero cost whose saving is what the replaced call cost. A cache
failure (store down) never fails a request: it is logged and counted as a miss.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from thrifty.cache.control import CacheControl, parse_control
from thrifty.cache.entry import Entry, unstorable
from thrifty.cache.guard import StoreGuard
from thrifty.cache.inflight import InFlight, Lease
from thrifty.cache.keys import Scope, exact_key, last_user_text, nondeterministic, semantic_scope
from thrifty.cache.metrics import CacheMetrics
from thrifty.cache.recording import RecordingStream
from thrifty.pipeline import Call, Handler
from thrifty.types import Body, ChatResult, Usage

if TYPE_CHECKING:
    import numpy as np

    from thrifty.bookkeeping import Bookkeeper
    from thrifty.cache.config import CacheConfig, Policy
    from thrifty.cache.exact import ExactCache
    from thrifty.cache.semantic import SemanticCache, SemanticHit
    from thrifty.gateway import Gateway

log = logging.getLogger("thrifty.cache")
HEADER = "x-thrifty-cache"
PROVIDER = "cache"


@dataclass(slots=True)
class _Probe:
    """What one request's lookup computed, reused to store the answer on a miss."""

    key: str
    namespace: str
    semantic_scope: str | None = None
    query: str | None = None
    vector: np.ndarray | None = None


class CacheStage:
    def __init__(
        self,
        config: CacheConfig,
        books: Bookkeeper,
        exact: ExactCache,
        semantic: SemanticCache | None,
        metrics: CacheMetrics,
    ) -> None:
        self.config = config
        self.books = books
        self.exact = exact
        self.semantic = semantic
        self.metrics = metrics
        self.inflight = InFlight(config.coalesce_wait_s)
        self.exact_guard = StoreGuard("exact", config.store_timeout_s, config.store_cooldown_s)
        self.semantic_guard = StoreGuard("semantic", config.store_timeout_s, config.store_cooldown_s)

    @classmethod
    def from_gateway(cls, gateway: Gateway) -> CacheStage | None:
        """The stage the config asks for, or None when caching is off."""
        from thrifty.cache.backends import open_exact, open_semantic
        from thrifty.cache.exact import ExactCache

        config: CacheConfig = gateway.config.cache
        if not config.any_enabled():
            return None
        semantic = None
        if config.any_semantic():
            from thrifty.cache.semantic import CosineVerifier, SemanticCache, load_default_verifier
            from thrifty.embed import get_embedder

            embedder = get_embedder()
            semantic = SemanticCache(
                open_semantic(config, embedder.dim),
                embedder,
                (
                    CosineVerifier(config.verifier_cosine)
                    if config.verifier_cosine is not None
                    else load_default_verifier(config.verifier)
                ),
                top_k=config.top_k,
                min_cosine=config.min_cosine,
                cross_checks=config.cross_checks,
            )
        metrics = getattr(gateway, "metrics", None)
        registry = getattr(metrics, "registry", None)
        stage = cls(config, gateway.books, ExactCache(open_exact(config)), semantic, CacheMetrics(registry))
        if metrics is not None:
            metrics.watch_cache_stores(stage.stores_up)
        return stage

    @property
    def health(self) -> str:
        """`ok`, or which store is bypassed since when and why (`/readyz`; requests go on as misses)."""
        down = [guard.health for guard in self._guards() if not guard.up]
        return "; ".join(down) or "ok"

    def stores_up(self) -> dict[str, bool]:
        """Each store's health (`thrifty_cache_store_up`): False while it is bypassed after a failure."""
        return {guard.name: guard.up for guard in self._guards()}

    def _guards(self) -> tuple[StoreGuard, ...]:
        if self.semantic is None:
            return (self.exact_guard,)
        return (self.exact_guard, self.semantic_guard)

    async def aclose(self) -> None:
        await self.exact.close()
        if self.semantic is not None:
            await self.semantic.close()

    # ---- the request path

    async def handle(self, call: Call, next: Handler) -> ChatResult:
        control = parse_control(call.original.get("thrifty"))
        policy = self.config.policy(call.requested_model)
        if not self._applies(call, policy, control):
            call.meta["cache"] = "bypass"
            self.metrics.lookup(control.namespace, "bypass", 0.0)
            result = await next(call)
            result.headers.setdefault(HEADER, "bypass")
            return result
        started = time.perf_counter()
        scope = Scope(call.tenant.id, control.namespace)
        probe = _Probe(exact_key(scope, call.original, call.requested_model), control.namespace)
        hit = await self._lookup(call, policy, control, probe)
        if hit is None and control.reads and control.max_age != 0:  # 0: a twin's answer is too old too
            hit = await self._twin_answer(probe.key, control.max_age, call.stream)
        lookup_ms = (time.perf_counter() - started) * 1000
        call.meta["cache_namespace"] = control.namespace  # the report groups by it (`--by namespace`)
        call.meta["cache_lookup_ms"] = round(lookup_ms, 3)
        if hit is not None:
            return self._answer(call, *hit, namespace=control.namespace, lookup_ms=lookup_ms)
        call.meta["cache"] = "miss" if control.reads else "write_only"
        if control.reads:
            self.metrics.lookup(control.namespace, "miss", lookup_ms)
        lease = self.inflight.lead(probe.key) if control.writes else None
        try:
            result = await next(call)
        except BaseException:
            self.inflight.done(probe.key, lease)
            raise
        result.headers[HEADER] = "miss"
        if control.writes and not result.cached and result.storable:
            await self._store_after(call, result, probe, policy, lease)
        else:
            self.inflight.done(probe.key, lease)
        return result

    def _applies(self, call: Call, policy: Policy, control: CacheControl) -> bool:
        if not policy.enabled or control.mode == "off":
            return False
        return policy.allow_nondeterministic or not nondeterministic(call.original)

    async def _lookup(
        self, call: Call, policy: Policy, control: CacheControl, probe: _Probe
    ) -> tuple[Entry, str, SemanticHit | None] | None:
        """An exact hit, else a semantic one; a store that fails is a miss (see guard.py)."""
        if control.reads:
            hit = await self._exact(probe.key, control.max_age, call.stream)
            if hit is not None:
                return hit
        semantic = self.semantic
        if semantic is None or not policy.semantic:
            return None
        try:
            probe.query = last_user_text(call.original)
            if probe.query is None:
                return None
            probe.semantic_scope = semantic_scope(
                Scope(call.tenant.id, control.namespace), call.original, call.requested_model
            )
            probe.vector = await asyncio.to_thread(semantic.embed, probe.query)
        except Exception:
            log.exception("embedding the request failed; answering from upstream")
            probe.vector = None  # nothing half-computed is stored either
            return None
        if not control.reads:
            return None
        query, scope, vector = probe.query, probe.semantic_scope, probe.vector
        found = await self.semantic_guard.run(
            lambda: semantic.lookup(scope, query, vector, control.max_age), None
        )
        if found is None or not found.entry.servable(call.stream):
            return None
        return found.entry, "hit-semantic", found

    async def _twin_answer(
        self, key: str, max_age: float | None, stream: bool
    ) -> tuple[Entry, str, None] | None:
        """The answer an identical request in flight stores (see inflight.py), handed over in memory
        (or, if it handed none, looked up); None when there is none in flight, or it stored nothing
        this request may be served before the wait ran out."""
        deadline = self.inflight.deadline()
        while (lease := await self.inflight.wait(key, deadline)) is not None:
            answer = lease.answer()
            if answer is not None and answer.servable(stream):
                return answer, "hit-exact", None
            hit = await self._exact(key, max_age, stream)
            if hit is not None:
                return hit
        return None

    async def _exact(self, key: str, max_age: float | None, stream: bool) -> tuple[Entry, str, None] | None:
        """The key's entry, if a hit may answer with it (complete; replayable to a stream)."""
        entry = await self.exact_guard.run(lambda: self.exact.lookup(key, max_age), None)
        if entry is None or not entry.servable(stream):
            return None
        return entry, "hit-exact", None

    def _answer(
        self,
        call: Call,
        entry: Entry,
        outcome: str,
        semantic: SemanticHit | None,
        *,
        namespace: str,
        lookup_ms: float,
    ) -> ChatResult:
        call.meta["cache"] = outcome
        if semantic is not None:
            call.meta["cache_cosine"] = round(semantic.cosine, 4)
            call.meta["cache_score"] = round(semantic.score, 4)
        lever = "cache_exact" if outcome == "hit-exact" else "cache_semantic"
        call.original_input_tokens = entry.original_input_tokens  # the stored answer's prompt, unsqueezed
        saved = self.books.free_answer(
            call,
            lever=lever,
            usage=entry.usage,
            replaced_model=entry.served_model,
            latency_ms=call.elapsed_ms(),
        )
        self.metrics.lookup(namespace, outcome, lookup_ms, saved or 0.0)
        return ChatResult(
            body=entry.fresh_body(),
            request_id=call.request_id,
            served_model=entry.served_model,
            provider=PROVIDER,
            cost_usd=0.0,
            usage=entry.usage,
            cached=True,
            attempts=0,
            headers={HEADER: outcome},
        )

    # ---- storing answers

    async def _store_after(
        self, call: Call, result: ChatResult, probe: _Probe, policy: Policy, lease: Lease | None
    ) -> None:
        """Store a complete answer now; a stream once it has ended cleanly. The lease ends, handing
        identical requests waiting for it the answer, once it is stored, or when it never will be (a
        stream that fails or is closed early)."""
        if result.stream is None:
            answer = None
            try:
                entry = Entry(result.body, result.usage, result.served_model, result.provider)
                answer = await self._store(self._unsqueezed(call, entry), probe, policy)
            finally:
                self.inflight.done(probe.key, lease, answer)
            return
        stream = result.stream
        stored: list[Entry] = []

        async def on_complete(body: Body, usage: Usage | None) -> None:
            from thrifty.dispatch import answer_text

            used = usage or self.books.estimate(call.body, answer_text(body))
            entry = Entry(body, used, stream.served_model, stream.provider)
            answer = await self._store(self._unsqueezed(call, entry), probe, policy)
            stored.extend(() if answer is None else (answer,))

        def ended() -> None:
            self.inflight.done(probe.key, lease, stored[0] if stored else None)

        result.stream = RecordingStream(stream, on_complete, {HEADER: "miss"}, on_end=ended)

    def _unsqueezed(self, call: Call, entry: Entry) -> Entry:
        """The entry, knowing the client's prompt size when a later stage compressed it."""
        if call.original_input_tokens is None:
            return entry
        return replace(entry, original_input_tokens=self.books.original_input_tokens(call, entry.usage))

    async def _store(self, entry: Entry, probe: _Probe, policy: Policy) -> Entry | None:
        """Store the answer if the cache keeps it (`unstorable`); returns what a hit on it
        serves, whether or not a store took it (one may be down), or None when it is not kept."""
        reason = unstorable(entry.body)
        if reason is not None:  # incomplete, filtered (maybe a passing refusal), audio: never pinned
            log.debug("answer not cached: %s", reason)
            return None
        if not entry.body.get("usage"):  # the provider sent none: a hit still says what the answer used
            entry = replace(entry, body={**entry.body, "usage": entry.usage.to_openai()})
        stored = await self.exact_guard.run(
            lambda: _done(self.exact.store_answer(probe.key, entry, policy.ttl_s)), False
        )
        semantic = self.semantic
        if semantic is not None and probe.vector is not None and probe.semantic_scope is not None:
            assert probe.query is not None
            query, scope, vector = probe.query, probe.semantic_scope, probe.vector
            stored |= await self.semantic_guard.run(
                lambda: _done(semantic.store_answer(scope, query, vector, entry, policy.ttl_s)), False
            )
        if stored:
            self.metrics.stored(probe.namespace)
        return entry


async def _done(step: Awaitable[object]) -> bool:
    """True once `step` has run (a store write, for StoreGuard.run's result)."""
    await step
    return True
