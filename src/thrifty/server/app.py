"""The Starlette application: routes, auth, request ids, errors, lifespan."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from thrifty.cache.control import fold_headers as fold_cache_headers
from thrifty.cache.stage import CacheStage
from thrifty.compress.control import fold_header as fold_compress_header
from thrifty.errors import ModelNotFound, ThriftyError
from thrifty.gateway import Gateway
from thrifty.logging_setup import AccessLog
from thrifty.routing.hints import fold_headers
from thrifty.server import errors
from thrifty.server.admin import admin_routes
from thrifty.server.batch_api import BatchApi
from thrifty.server.body import read_json
from thrifty.server.dashboard.routes import dashboard_routes
from thrifty.server.disconnect import unless_disconnected
from thrifty.server.metrics_route import metrics_routes
from thrifty.server.openapi import openapi_routes
from thrifty.server.responses import json_response
from thrifty.server.sse import EventStreamResponse
from thrifty.tenancy.auth import Authenticator
from thrifty.tenancy.runtime import tenancy_of
from thrifty.types import ChatResult, Tenant, new_request_id

log = logging.getLogger("thrifty.server")


def _request_id(request: Request) -> str:
    """The id `AccessLog` gave the request (always new: the ledger's key)."""
    return request.headers.get("x-request-id") or new_request_id()


def _client_request_id(request: Request) -> str | None:
    """The client's own id for the request (`AccessLog` kept it if valid), booked in the ledger's meta."""
    return request.headers.get("x-client-request-id")


def _result_headers(result: ChatResult) -> dict[str, str]:
    return {
        "x-request-id": result.request_id,
        "x-thrifty-request-id": result.request_id,
        "x-thrifty-model": result.served_model,
        "x-thrifty-provider": result.provider,
        "x-thrifty-cost-usd": f"{result.cost_usd:.8f}",
        "x-thrifty-attempts": str(result.attempts),
        **result.headers,
    }


def _priced_body(result: ChatResult) -> dict:
    """The answer with what the request cost in `usage.cost` (USD), as a streamed usage chunk has it."""
    usage = result.body.get("usage")
    if not isinstance(usage, dict):
        return result.body
    return {**result.body, "usage": {**usage, "cost": round(result.cost_usd, 10)}}


class Api:
    """HTTP handlers over one Gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        server = gateway.config.server
        self.tenancy = tenancy_of(gateway)
        directory = self.tenancy.directory if self.tenancy is not None else None
        self.auth = Authenticator(server.master_key, server.require_auth, directory)
        self.max_body = server.max_body_bytes
        self.body_timeout = server.body_timeout_s

    async def _tenant(self, request: Request) -> Tenant:
        return await self.auth.authenticate(
            request.headers.get("authorization"), request.headers.get("x-api-key")
        )

    async def chat_completions(self, request: Request) -> Response:
        request_id = request.state.request_id = _request_id(request)
        tenant = await self._tenant(request)
        body = await read_json(request, self.max_body, self.body_timeout)
        body = fold_headers(request.headers, body)  # x-thrifty-route-task / -quality-target
        body = fold_cache_headers(request.headers, body)  # x-thrifty-cache / -max-age / -namespace
        body = fold_compress_header(request.headers, body)  # x-thrifty-compress
        if isinstance(body, dict) and body.get("stream") is True:
            stream = await unless_disconnected(
                request,
                self.gateway.chat_stream(
                    body, tenant, request_id=request_id, client_request_id=_client_request_id(request)
                ),
            )
            headers = {
                "x-request-id": request_id,
                "x-thrifty-request-id": request_id,
                "x-thrifty-model": stream.served_model,
                "x-thrifty-provider": stream.provider,
                "cache-control": "no-cache",
                "x-accel-buffering": "no",
                **getattr(stream, "headers", {}),
            }
            return EventStreamResponse(stream, headers)
        result = await unless_disconnected(
            request,
            self.gateway.chat(
                body, tenant, request_id=request_id, client_request_id=_client_request_id(request)
            ),
        )
        return json_response(_priced_body(result), headers=_result_headers(result))

    async def embeddings(self, request: Request) -> Response:
        request_id = request.state.request_id = _request_id(request)
        tenant = await self._tenant(request)
        body = await read_json(request, self.max_body, self.body_timeout)
        result = await unless_disconnected(
            request, self.gateway.embeddings(body, tenant, request_id=request_id)
        )
        return json_response(_priced_body(result), headers=_result_headers(result))

    async def models(self, request: Request) -> Response:
        tenant = await self._tenant(request)
        models = self.gateway.models()
        if tenant.allowed_models is not None:  # a key sees only the names it may ask for
            models = [m for m in models if m["id"] in tenant.allowed_models]
        return json_response({"object": "list", "data": models})

    async def model(self, request: Request) -> Response:
        """`GET /v1/models/{id}` (`client.models.retrieve`): one entry of the list, or a 404."""
        tenant = await self._tenant(request)
        name = request.path_params["model"]
        allowed = tenant.allowed_models is None or name in tenant.allowed_models
        found = next((m for m in self.gateway.models() if m["id"] == name), None) if allowed else None
        if found is None:
            raise ModelNotFound(
                f"The model `{name}` does not exist or you do not have access to it.", param="model"
            )
        return json_response(found)

    async def healthz(self, request: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        checks = {
            "providers": "ok" if self.gateway.providers else "none configured",
            "ledger": self.gateway.ledger.health,
            "breakers": self.gateway.breaker.states(),
        }
        cache = next((s for s in self.gateway.stages if isinstance(s, CacheStage)), None)
        if cache is not None:  # a store that is down costs hits, not answers: the replica stays ready
            checks["cache"] = cache.health
        ready = checks["providers"] == "ok"
        if self.tenancy is not None:
            tenancy_checks, tenancy_ready = await self.tenancy.health()
            checks.update(tenancy_checks)
            ready = ready and tenancy_ready
        return json_response(
            {"status": "ready" if ready else "not_ready", "checks": checks}, status=200 if ready else 503
        )


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return await errors.not_found_handler(request, exc)
    if exc.status_code == 405:
        return await errors.method_not_allowed_handler(request, exc)
    body = {
        "error": {"message": str(exc.detail), "type": "invalid_request_error", "param": None, "code": None}
    }
    return json_response(body, status=exc.status_code)


def create_app(gateway: Gateway) -> Starlette:
    api = Api(gateway)
    batches = BatchApi(gateway, api._tenant)  # /v1/files + /v1/batches and their job runner

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        if api.tenancy is not None:
            await api.tenancy.start()
        await batches.start()
        try:
            yield
        finally:
            await batches.aclose()
            if api.tenancy is not None:
                await api.tenancy.aclose()
            await gateway.aclose()

    routes = [
        Route("/v1/chat/completions", api.chat_completions, methods=["POST"]),
        Route("/chat/completions", api.chat_completions, methods=["POST"]),
        Route("/v1/embeddings", api.embeddings, methods=["POST"]),
        Route("/embeddings", api.embeddings, methods=["POST"]),
        Route("/v1/models", api.models, methods=["GET"]),
        Route("/models", api.models, methods=["GET"]),
        Route("/v1/models/{model:path}", api.model, methods=["GET"]),
        Route("/models/{model:path}", api.model, methods=["GET"]),
        Route("/healthz", api.healthz, methods=["GET"]),
        Route("/readyz", api.readyz, methods=["GET"]),
        *admin_routes(gateway),
        *batches.routes(),
        *metrics_routes(gateway),
        *dashboard_routes(gateway),
        *openapi_routes(gateway),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={
            ThriftyError: errors.thrifty_error_handler,
            HTTPException: _http_exception,
            Exception: errors.unexpected_error_handler,
        },
    )
    app.state.gateway = gateway
    app.add_middleware(AccessLog, log_prompts=gateway.config.log_prompts)
    return app


def create_app_from_env() -> Starlette:
    """Factory for `uvicorn --factory` (used with several workers): config path from THRIFTY_CONFIG."""
    from thrifty import config as config_mod

    return create_app(Gateway(config_mod.load(os.environ.get("THRIFTY_CONFIG"))))
