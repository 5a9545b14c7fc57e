"""Turns every failure into an OpenAI-shaped JSON error with the right status; never a traceback."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from thrifty.errors import ThriftyError
from thrifty.server.responses import json_response

log = logging.getLogger("thrifty.server")


def error_response(exc: ThriftyError, request_id: str | None = None) -> Response:
    headers = dict(exc.headers)
    if request_id:
        headers["x-request-id"] = request_id
    return json_response(exc.body(), status=exc.status, headers=headers)


async def thrifty_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ThriftyError)
    return error_response(exc, getattr(request.state, "request_id", None))


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s", request.url.path)
    body = {
        "error": {
            "message": "The gateway hit an internal error; the request was not completed.",
            "type": "api_error",
            "param": None,
            "code": "internal_error",
        }
    }
    return json_response(body, status=500)


async def not_found_handler(request: Request, exc: Exception) -> Response:
    body = {
        "error": {
            "message": f"Unknown endpoint {request.method} {request.url.path}",
            "type": "invalid_request_error",
            "param": None,
            "code": "unknown_url",
        }
    }
    return json_response(body, status=404)


async def method_not_allowed_handler(request: Request, exc: Exception) -> Response:
    body = {
        "error": {
            "message": f"Method {request.method} not allowed on {request.url.path}",
            "type": "invalid_request_error",
            "param": None,
            "code": "method_not_allowed",
        }
    }
    return json_response(body, status=405)
