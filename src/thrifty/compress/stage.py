"""The compress pipeline stage: summary → normalisation → extraction, per the request's route settings.

Runs after the caches (so cache keys are the client's own prompt) and before routing. It sets
`call.body` to the compressed request, `call.original_input_tokens` to the local token count of the
uncompressed one (the Bookkeeper books the difference as the compression saving), and
`call.meta["compression"]` with the per-lever token savings; the response carries
`x-thrifty-compressed-tokens: before->after`. A compressor that fails never fails the request: the
request goes on uncompressed. With compression switched off everywhere no stage is added.

Normalisation and extraction are CPU work: apart from small requests (`cpu.inline_chars`: a few ms
of work, less than it would cost them to queue for a slot) they run on a few worker threads
(`cpu.threads`), so the event loop keeps serving other requests. A request waits at most
`cpu.budget_s` for a slot and its result, then goes on uncompressed (`call.meta["compression_skipped"]`);
work already running is not interrupted (it finishes, and is memoised, in the background). The
compressors and their memos are not thread-safe, so each thread has its own (`_Local`); only the
embedding memo is shared, locked.

Prefix rule (see `thrifty.compress.prefix`): nothing here rewrites a stable prefix per request — the
system prompt stays byte-identical across requests unless the summary replaced it, and the summary
is memoised by content hash, so it is the same bytes every time. The size guard is per message
(`extractive.max_message_chars`) for the same reason; only an overrun of `cpu.budget_s` — load, not
content — sends a prompt uncut that would otherwise have been cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from thrifty.compress.base import Budget, CompressionReport, TokenCache
from thrifty.compress.control import Mode, read_mode
from thrifty.compress.embedcache import EmbeddingCache
from thrifty.compress.extractive import Extractor
from thrifty.compress.normalize import Normalizer
from thrifty.compress.settings import CompressionConfig, CompressionSettings, CpuSettings
from thrifty.pipeline import Call, Handler
from thrifty.pricing.tokens import message_text
from thrifty.types import Body, ChatResult

if TYPE_CHECKING:
    from thrifty.compress.summarize import Summarizer
    from thrifty.gateway import Gateway

log = logging.getLogger("thrifty.compress")
HEADER = "x-thrifty-compressed-tokens"
SKIPPED = "compression_skipped"
"""`call.meta` key naming why the local levers did not run: "busy" (no free slot within the budget)
or "over_budget" (the work took longer than the budget)."""
_THREAD_MEMO_CHARS = 4_000_000
"""Token-count memo per thread (each compression thread has its own)."""
_EXTRACT_WEIGHT = 4
"""Extraction costs ~1.2 µs a character, normalisation ~0.3 µs (cold token counts included)."""
T = TypeVar("T")


@dataclass(slots=True)
class _Route:
    """What one route's settings call for; its normaliser and extractor are built per thread."""

    settings: CompressionSettings
    summarizer: Summarizer | None = None


@dataclass(slots=True)
class _Local:
    """One thread's compressors for one route (they and their memos are not thread-safe)."""

    normalizer: Normalizer | None = None
    lossless: Normalizer | None = None
    """The normaliser without duplicate removal, for requests that ask for `lossless`."""
    extractor: Extractor | None = None


class _SharedEmbeddings(EmbeddingCache):
    """The embedding memo, shared by the compression threads: one batch at a time."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def vectors(self, texts: Sequence[str]) -> Any:
        with self._lock:
            return super().vectors(texts)


class _Slots:
    """At most `threads` compressions running at once, on worker threads; a caller waits at most
    `budget_s` for a slot and the result together (None past it)."""

    def __init__(self, cpu: CpuSettings) -> None:
        self.cpu = cpu
        self._executor: ThreadPoolExecutor | None = None
        self._free: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._free is None or self._loop is not loop:  # a semaphore belongs to one loop
            self._free, self._loop = asyncio.Semaphore(self.cpu.threads), loop
        return self._free

    async def run(self, fn: Callable[[], T]) -> tuple[T | None, str | None]:
        """`(fn(), None)` from a worker thread, or `(None, reason)` when it did not finish in time."""
        loop = asyncio.get_running_loop()
        deadline = None if self.cpu.budget_s is None else loop.time() + self.cpu.budget_s
        free = self._semaphore()
        try:
            async with asyncio.timeout_at(deadline):
                await free.acquire()
        except TimeoutError:
            return None, "busy"
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.cpu.threads, thread_name_prefix="thrifty-compress")
        try:
            future = self._executor.submit(fn)
        except BaseException:
            free.release()
            raise
        # the slot is free when the thread is, not when the caller stops waiting (it timed out or
        # its client left): a thread cannot be interrupted, and the work is memoised for a retry
        future.add_done_callback(lambda _: _call_soon(loop, free.release))
        result = asyncio.wrap_future(future)
        result.add_done_callback(_retrieved)  # a failure after the caller left is not logged as lost
        try:
            async with asyncio.timeout_at(deadline):
                return await asyncio.shield(result), None
        except TimeoutError:
            return None, "over_budget"

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[[], Any]) -> None:
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits for the slot
        loop.call_soon_threadsafe(fn)


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
        """Token counts on the event loop (the summariser); each compression thread has its own."""
        self.summarizers = summarizers or {}
        self.embeddings = embeddings
        self.slots = _Slots(config.cpu)
        self._routes: dict[str, _Route | None] = {}
        self._threads = threading.local()

    def route(self, model: str) -> _Route | None:
        """The compressors for a request to `model` (built once per model name)."""
        if model not in self._routes:
            settings = self.config.for_route(model)
            self._routes[model] = self._build(settings) if settings.any_enabled else None
        return self._routes[model]

    def _build(self, settings: CompressionSettings) -> _Route:
        route = _Route(settings)
        if settings.summarize.enabled:
            route.summarizer = self.summarizers.get(settings.summarize.model or "")
        return route

    def _local(self, route: _Route) -> _Local:
        """This thread's normaliser and extractor for `route`."""
        mine: dict[int, _Local] | None = getattr(self._threads, "routes", None)
        if mine is None:
            mine = self._threads.routes = {}
        found = mine.get(id(route))
        if found is None:
            found = mine[id(route)] = self._build_local(route.settings)
        return found

    def _build_local(self, settings: CompressionSettings) -> _Local:
        tokens = TokenCache(self.tokens.counter, max_chars=_THREAD_MEMO_CHARS)
        local = _Local()
        norm = settings.normalize
        if norm.enabled:
            local.lossless = Normalizer(tokens)
            local.normalizer = (
                Normalizer(tokens, dedupe=True, dedupe_min_chars=norm.dedupe_min_chars)
                if norm.dedupe
                else local.lossless
            )
        ext = settings.extractive
        if ext.enabled:
            local.extractor = Extractor(
                tokens,
                embeddings=self.embeddings if ext.embeddings else None,
                min_context_tokens=ext.min_context_tokens,
                max_message_chars=ext.max_message_chars,
            )
        return local

    def run_local(self, route: _Route, body: Body, lossy: bool) -> tuple[Body, list[CompressionReport]]:
        """Normalise, then extract (when `lossy`), with this thread's compressors: CPU work."""
        local = self._local(route)
        reports: list[CompressionReport] = []
        normalizer = local.normalizer if lossy else local.lossless
        if normalizer is not None:
            body, report = normalizer.run(body)
            reports.append(report)
        if lossy and local.extractor is not None:
            ext = route.settings.extractive
            body, report = local.extractor.run(body, Budget(ext.ratio, ext.budget_tokens))
            reports.append(report)
        return body, reports

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
        if not s.normalize.enabled and not (lossy and s.extractive.enabled):
            return body, reports
        source = body
        if _work(body, lossy and s.extractive.enabled) <= self.config.cpu.inline_chars:  # ≲ a hop
            body, more = self.run_local(route, source, lossy)
        else:
            done, skipped = await self.slots.run(lambda: self.run_local(route, source, lossy))
            if done is None:
                call.meta[SKIPPED] = skipped
                log.info(
                    "compression skipped (%s); request sent without normalisation or extraction",
                    skipped,
                    extra={"request_id": call.request_id},
                )
                return body, reports
            body, more = done
        return body, reports + more

    async def aclose(self) -> None:
        self.slots.close()

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
        embeddings = _SharedEmbeddings()
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


def _work(body: Body, extracting: bool) -> int:
    """The CPU levers' work on a request, in characters normalised: every character of message text,
    and a user message's characters `_EXTRACT_WEIGHT` times more when it is extracted too."""
    total = 0
    for message in body.get("messages") or ():
        if isinstance(message, dict):
            chars = len(message_text(message))
            total += chars * (_EXTRACT_WEIGHT if extracting and message.get("role") == "user" else 1)
    return total
