"""Each provider's own connection pool in the one HttpClient a gateway owns: bounded by its
`max_connections`, a call waiting for a slot fails as `PoolSaturated` (not a timeout of the provider),
and the pool books it against that deployment and fails over without charging its breaker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from tests.unit.test_breaker_pool import _Table
from thrifty.config import ProviderConfig, RetryConfig, Timeouts
from thrifty.errors import UpstreamTimeout
from thrifty.providers.breaker import CLOSED, Breaker
from thrifty.providers.http import HttpClient, PoolSaturated, read_body
from thrifty.providers.pool import ProviderPool
from thrifty.providers.registry import build_providers
from thrifty.providers.table import Deployment


@pytest.fixture
async def slow_server() -> AsyncIterator[str]:
    """`/` answers after 1 s; `/stream` sends its headers at once and its body after 1 s."""

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(1.0)
        return web.json_response({"ok": True})

    async def stream(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse()
        await response.prepare(request)  # headers at once, the body later: a long stream
        await asyncio.sleep(1.0)
        await response.write(b"data: [DONE]\n\n")
        return response

    app = web.Application()
    app.router.add_post("/", answer)
    app.router.add_post("/stream", stream)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/"
    await runner.cleanup()


async def test_every_provider_has_its_own_pool_bounded_by_its_max_connections():
    http = HttpClient()
    configs = {
        "narrow": ProviderConfig(base_url="http://127.0.0.1:9/v1", max_connections=3),
        "wide": ProviderConfig(base_url="http://127.0.0.1:9/v1"),
        "claude": ProviderConfig(type="anthropic", base_url="http://127.0.0.1:9", max_connections=7),
    }
    providers = build_providers(configs, http)
    sessions = {name: p.upstream.session() for name, p in providers.items()}
    try:
        assert len({id(s) for s in sessions.values()}) == 3
        assert {n: s.connector.limit for n, s in sessions.items() if s.connector} == {
            "narrow": 3,
            "wide": 1000,  # the default: as the OpenAI Python SDK
            "claude": 7,
        }
        assert providers["narrow"].upstream is http.upstream("narrow")  # one pool per provider name
    finally:
        await http.close()
    assert all(s.closed for s in sessions.values())


async def test_a_call_that_waits_out_connect_for_a_slot_is_saturation_not_a_timeout(slow_server):
    http = HttpClient()
    upstream = http.upstream("narrow", 1)
    timeouts = Timeouts(connect=0.2, first_byte=5, total=10)
    try:
        holder = asyncio.create_task(upstream.post(slow_server, b"{}", {}, timeouts))
        await asyncio.sleep(0.1)
        with pytest.raises(PoolSaturated) as caught:
            await upstream.post(slow_server, b"{}", {}, timeouts)
        assert caught.value.status == 503 and caught.value.code == "provider_saturated"
        assert "'narrow'" in caught.value.message and "1 connections busy" in caught.value.message
        assert not caught.value.retryable
        response = await holder
        assert response.status == 200
        response.release()
        # a slow answer on a connection of its own is still the provider's timeout
        with pytest.raises(UpstreamTimeout):
            await upstream.post(slow_server, b"{}", {}, Timeouts(connect=1, first_byte=0.2, total=5))
    finally:
        await http.close()


class _Busy:
    def __init__(self, name: str, saturated: bool) -> None:
        self.name = name
        self.saturated = saturated
        self.calls = 0

    async def chat(self, body, model):
        self.calls += 1
        if self.saturated:
            raise PoolSaturated(f"provider {self.name!r} saturated", retryable=False)
        return "answer"

    def redact(self, text: str) -> str:
        return text


async def test_a_saturated_deployment_is_booked_and_failed_over_without_a_breaker_verdict():
    busy = Deployment(_Busy("busy", True), "m", None, priority=0)
    free = Deployment(_Busy("free", False), "m", None, priority=1)
    breaker = Breaker(threshold=1, cooldown=60)
    pool = ProviderPool(_Table([busy, free]), breaker, RetryConfig(max_retries=2, backoff_base_s=0.01))
    failures: list[tuple[Deployment, Exception]] = []
    for _ in range(3):
        reply, served = await pool.chat("m", {}, lambda name, dep, err, ms: failures.append((dep, err)))
        assert reply == "answer" and served.deployment is free and served.attempts == 2
    assert busy.provider.calls == 3  # no retry on a full pool: straight to the next deployment
    assert [dep for dep, _ in failures] == [busy] * 3  # booked against the saturated one
    assert all(isinstance(err, PoolSaturated) for _, err in failures)
    assert breaker.state(busy.key) == CLOSED and breaker.allow(busy.key)  # threshold 1, still closed


async def test_a_saturated_only_deployment_answers_503_provider_saturated():
    pool = ProviderPool(_Table([Deployment(_Busy("busy", True), "m", None)]), Breaker(1, 60), RetryConfig())
    with pytest.raises(PoolSaturated) as caught:
        await pool.chat("m", {}, lambda *a: None)
    assert caught.value.status == 503


def test_the_default_pool_serves_calls_of_no_provider():
    http = HttpClient(max_connections=8)
    assert http.upstream("") is http.upstream("") and http.upstream("").max_connections == 8
    assert isinstance(HttpClient.timeout(Timeouts()), aiohttp.ClientTimeout)


async def test_a_stream_holds_its_connection_until_its_body_is_read(slow_server):
    http = HttpClient()
    upstream = http.upstream("narrow", 1)
    timeouts = Timeouts(connect=0.2, first_byte=5, total=10)
    try:
        streaming = await upstream.post(slow_server + "stream", b"{}", {}, timeouts)
        with pytest.raises(PoolSaturated):
            await upstream.post(slow_server, b"{}", {}, timeouts)
        assert await read_body(streaming) == b"data: [DONE]\n\n"
        answered = await upstream.post(slow_server, b"{}", {}, timeouts)  # the connection is free again
        assert answered.status == 200
        answered.release()
    finally:
        await http.close()
