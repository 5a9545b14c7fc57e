"""The compress pipeline stage: summary → normalisation → extraction, per the request's route settings.

Runs after the caches (so cache keys are the client's own prompt) and before routing. It sets
`call.body` to the compressed request, `call.original_input_tokens` to the local token count of the
uncompressed one (the Bookkeeper books the difference as the compression saving), and
`call.meta["compression"]` with the per-lever token savings; the response carries
`x-thrifty-compressed-tokens: before->after`. A compressor that fails never fails the request: the
request goes on uncompressed. With compression switched off everywhere no stage is added.

Prefix rule (see `thrifty.compress.prefix`): nothing here rewrites a stable prefix per request — the
system prompt stays byte-identical across requests unless the summary replaced it, and the summary
is memoised by content hash, so it is the same bytes every time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thrifty.compress.base import Budget, CompressionReport, TokenCache
from thrifty.compress.control import Mode, read_mode
from thrifty.compress.extractive import Extractor
from thrifty.compress.normalize import Normalizer
from thrifty.compress.settings import CompressionConfig, CompressionSettings
from thrifty.pipeline import Call, Handler
from thrifty.types import ChatResult

if TYPE_CHECKING:
    from thrifty.compress.embedcache import EmbeddingCache
    from thrifty.compress.summarize import Summarizer
    from thrifty.gateway import Gateway

log = logging.getLogger("thrifty.compress")
HEADER = "x-thrifty-compressed-tokens"


@dataclass(slots=True)
class _Route:
    """The compressors one route's settings call for."""

    settings: CompressionSettings
    normalizer: Normalizer | None = None
    lossless: Normalizer | None = None
    """The normaliser without duplicate removal, for requests that ask for `lossless`."""
    extractor: Extractor | None = None
    summarizer: Summarizer | None = None


class CompressStage:
    def __init__(
        self,
        config: CompressionConfig,
        tokens: TokenCache,
        *,
        summarizers: dict[str, Summarizer] | None = None,
        embeddings: EmbeddingCache | None = None,
    ) -> None:
        self.config = config
        self.tokens = tokens
        self.summarizers = summarizers or {}
        self.embeddings = embeddings
        self._routes: dict[str, _Route | None] = {}

    def route(self, model: str) -> _Route | None:
        """The compressors for a request to `model` (built once per model name)."""
        if model not in self._routes:
            settings = self.config.for_route(model)
            self._routes[model] = self._build(settings) if settings.any_enabled else None
        return self._routes[model]

    def _build(self, settings: CompressionSettings) -> _Route:
        route = _Route(settings)
        norm = settings.normalize
        if norm.enabled:
            route.lossless = Normalizer(self.tokens)
            route.normalizer = (
                Normalizer(self.tokens, dedupe=True, dedupe_min_chars=norm.dedupe_min_chars)
                if norm.dedupe
                else route.lossless
            )
        ext = settings.extractive
        if ext.enabled:
            route.extractor = Extractor(
                self.tokens,
                embeddings=self.embeddings if ext.embeddings else None,
                min_context_tokens=ext.min_context_tokens,
            )
        if settings.summarize.enabled:
            route.summarizer = self.summarizers.get(settings.summarize.model or "")
        return route

    async def compress(
        self, call: Call, route: _Route, mode: Mode = "on"
    ) -> tuple[dict[str, Any], list[CompressionReport]]:
        """Run the route's compressors; `mode="lossless"` (the request's choice) runs only the
        normaliser."""
        body = call.body
        reports: list[CompressionReport] = []
        s = route.settings
        lossy = mode == "on"
        if lossy and route.summarizer is not None:
            budget = Budget(tokens=s.summarize.target_tokens)
            body, report = await route.summarizer.compress(
                body, budget, call=call, min_tokens=s.summarize.min_tokens
            )
            reports.append(report)
        normalizer = route.normalizer if lossy else route.lossless
        if normalizer is not None:
            body, report = normalizer.run(body)
            reports.append(report)
        if lossy and route.extractor is not None:
            body, report = route.extractor.run(body, Budget(s.extractive.ratio, s.extractive.budget_tokens))
            reports.append(report)
        return body, reports

    async def handle(self, call: Call, next: Handler) -> ChatResult:
        route = self.route(call.model)
        mode = read_mode(call.body)
        if route is None or mode == "off":
            return await next(call)
        try:
            body, reports = await self.compress(call, route, mode)
        except Exception:
            log.exception(
                "compression failed; request sent uncompressed", extra={"request_id": call.request_id}
            )
            return await next(call)
        if not reports:  # lossless asked of a route that does not normalise
            return await next(call)
        before, after = reports[0].tokens_before, reports[-1].tokens_after
        if after >= before:
            return await next(call)
        call.body = body
        if call.original_input_tokens is None:
            call.original_input_tokens = before
        call.meta["compressed_input_tokens"] = after
        call.meta["compression"] = {
            "tokens_before": before,
            "tokens_after": after,
            **{r.name: r.saved for r in reports},
        }
        result = await next(call)
        result.headers[HEADER] = f"{before}->{after}"
        return result


def build_stage(gateway: Gateway) -> CompressStage | None:
    """The stage for the gateway's `compression:` config, or None when it compresses nothing."""
    config: CompressionConfig = gateway.config.compression
    if not config.any_route_enabled:
        return None
    tokens = TokenCache(gateway.tokens)
    routes = [config.for_route(name) for name in ("", *config.routes)]
    summarizers = _summarizers(gateway, config, routes, tokens)
    embeddings = None
    if any(r.extractive.enabled and r.extractive.embeddings for r in routes):
        from thrifty.compress.embedcache import EmbeddingCache

        embeddings = EmbeddingCache()
    return CompressStage(config, tokens, summarizers=summarizers, embeddings=embeddings)


def _summarizers(
    gateway: Gateway, config: CompressionConfig, routes: list[CompressionSettings], tokens: TokenCache
) -> dict[str, Summarizer]:
    """One Summarizer per summary model in use, sharing one memo store; a route without a `model`
    gets the cheapest configured one (its settings are rewritten to name it)."""
    from thrifty.compress.memo import SummaryStore
    from thrifty.compress.summarize import Summarizer
    from thrifty.compress.writer import ModelWriter, cheapest_model

    wanted = [r.summarize for r in routes if r.summarize.enabled]
    if not wanted:
        return {}
    store = SummaryStore(config.summarize.store or _store_path(gateway))
    out: dict[str, Summarizer] = {}
    for s in wanted:
        model = s.model or cheapest_model(gateway, 2 * s.min_tokens, s.target_tokens)
        if model is None:
            log.warning("summarize is on but no priced chat model is configured: summaries are off")
            continue
        if model not in out:
            writer = ModelWriter(gateway, model, tokens, timeout_s=s.timeout_s)
            out[model] = Summarizer(tokens, store, writer, model=model, roles=tuple(s.roles))
        if s.model is None:
            out.setdefault("", out[model])
    return out


def _store_path(gateway: Gateway) -> str:
    ledger = gateway.config.ledger
    if ledger.backend == "sqlite":
        path = Path(ledger.path)
        return str(path.with_name(f"{path.stem}-compress.db"))
    return "thrifty-compress.db"
