"""Calls a model through its deployments: retries with jittered backoff, fallback, circuit breaker."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from thrifty.config import RetryConfig
from thrifty.errors import InvalidRequest, ThriftyError, UpstreamError
from thrifty.providers.base import Reply
from thrifty.providers.breaker import Breaker
from thrifty.providers.http import PoolSaturated
from thrifty.providers.table import Deployment, ModelTable
from thrifty.types import Body, ReportedUsage

log = logging.getLogger("thrifty.providers")

OnFailure = Callable[[str, Deployment, UpstreamError, float], None]
"""Called with (model, deployment, error, latency_ms) for every failed attempt."""


@dataclass(slots=True)
class Served:
    model: str
    deployment: Deployment
    attempts: int
    latency_ms: float


@dataclass(slots=True)
class OpenStream:
    served: Served
    first: Body
    rest: AsyncIterator[Body]


class ProviderPool:
    """Tries deployments in order (priority, then weighted shuffle) for a model and its fallbacks."""

    def __init__(
        self, table: ModelTable, breaker: Breaker, retry: RetryConfig, rng: random.Random | None = None
    ) -> None:
        self.table = table
        self.breaker = breaker
        self.retry = retry
        self._rng = rng or random.Random()
        self.affinity: Callable[[Body], str | None] | None = None
        """Sticky routing (thrifty.promptcache): a request's prefix key; equal-priority deployments
        are then ranked by rendezvous hashing of it instead of a weighted shuffle."""

    def candidates(self, model: str, key: str | None = None) -> list[tuple[str, Deployment]]:
        """(model name, deployment) in the order they will be tried. Raises ModelNotFound."""
        out = [(model, d) for d in self._order(self.table.deployments(model), key)]
        seen = {model}
        for fallback in self.table.fallbacks(model):
            if fallback not in seen and fallback in self.table:
                seen.add(fallback)
                out.extend((fallback, d) for d in self._order(self.table.deployments(fallback), key))
        return out

    def _order(self, deployments: list[Deployment], key: str | None = None) -> list[Deployment]:
        if len(deployments) == 1:
            return deployments
        if key is not None:
            from thrifty.promptcache.sticky import score

            ranked = [(d.priority, -score(key, d.key, d.weight), i) for i, d in enumerate(deployments)]
            return [deployments[i] for _, _, i in sorted(ranked)]
        keyed = [
            (d.priority, -(self._rng.random() ** (1.0 / d.weight)), i) for i, d in enumerate(deployments)
        ]
        return [deployments[i] for _, _, i in sorted(keyed)]

    def _key(self, body: Body) -> str | None:
        return self.affinity(body) if self.affinity is not None else None

    def _backoff(self, attempt: int, error: UpstreamError) -> float | None:
        """Seconds to wait before retrying the same deployment, or None to move on."""
        if not error.retryable or attempt >= self.retry.max_retries:
            return None
        if error.retry_after is not None:
            if error.retry_after > self.retry.retry_after_max_s:
                return None
            return error.retry_after
        ceiling = min(self.retry.backoff_max_s, self.retry.backoff_base_s * (2**attempt))
        return self._rng.uniform(0, ceiling)  # full jitter

    async def chat(self, model: str, body: Body, on_failure: OnFailure) -> tuple[Reply, Served]:
        async def call(dep: Deployment) -> Reply:
            return await dep.provider.chat(body, dep.model)

        return await self._run(model, call, on_failure, self._key(body))

    async def embeddings(self, model: str, body: Body, on_failure: OnFailure) -> tuple[Body, Served]:
        async def call(dep: Deployment) -> Body:
            return await dep.provider.embeddings(body, dep.model)

        return await self._run(model, call, on_failure)

    async def stream(self, model: str, body: Body, on_failure: OnFailure) -> OpenStream:
        """Open a stream, failing over until the first chunk arrives; after that errors propagate."""

        async def call(dep: Deployment) -> tuple[Body, AsyncIterator[Body]]:
            agen = dep.provider.stream(body, dep.model)
            try:
                first = await agen.__anext__()
            except StopAsyncIteration:
                raise UpstreamError(f"{dep.provider.name} sent an empty stream") from None
            except BaseException:
                await agen.aclose()
                raise
            return first, agen

        (first, rest), served = await self._run(model, call, on_failure, self._key(body))
        return OpenStream(served, first, _Redacted(rest, served.deployment))

    async def _run(self, model, call, on_failure: OnFailure, key: str | None = None):
        last: UpstreamError | None = None
        refused: InvalidRequest | None = None
        tried = 0
        for name, dep in self.candidates(model, key):
            if not self.breaker.allow(dep.key):
                continue
            attempt = 0
            while True:
                tried += 1
                started = time.perf_counter()
                try:
                    result = await _guarded(call, dep)
                except PoolSaturated as exc:  # thrifty's own connection limit: no verdict on its health
                    on_failure(name, dep, exc, (time.perf_counter() - started) * 1000)
                    self.breaker.release(dep.key)
                    last = exc
                    break  # its connections are busy: the next deployment or fallback, at once
                except UpstreamError as exc:
                    latency = (time.perf_counter() - started) * 1000
                    on_failure(name, dep, exc, latency)
                    if exc.status == 400:
                        self.breaker.release(dep.key)
                        raise  # the request is bad everywhere; not the deployment's fault
                    self.breaker.failure(dep.key)
                    last = exc
                    wait = self._backoff(attempt, exc)
                    if wait is None or not self.breaker.allow(dep.key):
                        break
                    attempt += 1
                    await asyncio.sleep(wait)
                    continue
                except InvalidRequest as exc:  # this provider cannot express the request (e.g. n > 1)
                    self.breaker.release(dep.key)
                    refused = refused or exc
                    tried -= 1  # nothing was sent: not an attempt (x-thrifty-attempts)
                    break  # another deployment or fallback model may take it
                except asyncio.CancelledError:  # the client left (or a deadline passed): no verdict
                    self.breaker.release(dep.key)
                    on_failure(name, dep, _abandoned(), (time.perf_counter() - started) * 1000)
                    raise
                except BaseException:
                    self.breaker.release(dep.key)  # a bug: no verdict on the deployment
                    raise
                self.breaker.success(dep.key)
                latency = (time.perf_counter() - started) * 1000
                return result, Served(name, dep, tried, latency)
        if last is not None:
            raise last
        if refused is not None:
            raise refused
        raise UpstreamError(
            f"no healthy deployment for model {model!r}: all circuit breakers are open",
            retryable=False,
            status=503,
            code="no_healthy_deployment",
        )


def _abandoned() -> UpstreamError:
    """What an attempt cancelled midway is booked as: the provider may still bill for it. The pool
    cannot tell why it was cancelled, so the row names every cause."""
    return UpstreamError(
        "abandoned before the upstream answered (the client disconnected, a deadline passed or the"
        " gateway shut down)",
        status=499,
        code="client_cancelled",
        retryable=False,
    )


async def _guarded(call, dep: Deployment):
    """`call(dep)`; an exception that is not the gateway's own (an answer the provider layer could not
    translate: a field of an unexpected type) is the upstream's fault: an UpstreamError, logged with
    its traceback, booked and failed over like any other."""
    try:
        return await call(dep)
    except UpstreamError as exc:  # its message may quote what the provider sent back: its own key
        exc.message = dep.provider.redact(exc.message)
        raise
    except ThriftyError:
        raise
    except Exception as exc:
        log.exception("%s: unreadable answer from %s", dep.key, dep.provider.name)
        raise UpstreamError(
            f"{dep.provider.name} sent an answer thrifty could not read ({type(exc).__name__})"
        ) from exc


class _Redacted:
    """The rest of a stream; an error midway has the provider's credentials scrubbed from its message.
    The provider stream's `reported_usage` (exact usage so far, see `thrifty.streaming`) shows through."""

    def __init__(self, chunks: AsyncIterator[Body], dep: Deployment) -> None:
        self._chunks = chunks
        self._dep = dep

    def __aiter__(self) -> _Redacted:
        return self

    async def __anext__(self) -> Body:
        try:
            return await self._chunks.__anext__()
        except UpstreamError as exc:
            exc.message = self._dep.provider.redact(exc.message)
            raise

    async def aclose(self) -> None:
        closer = getattr(self._chunks, "aclose", None)
        if closer is not None:
            await closer()

    def reported_usage(self) -> ReportedUsage | None:
        reported = getattr(self._chunks, "reported_usage", None)
        return reported() if callable(reported) else None
