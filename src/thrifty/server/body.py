"""Reading a request body within the size limit and parsing it as JSON."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request

from thrifty.errors import InvalidRequest, PayloadTooLarge, ThriftyError

BODY_TIMEOUT_S = 30.0


class BodyTimeout(ThriftyError):
    """The client did not send its whole request body in time (a slow or stalled client)."""

    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


async def read_json(request: Request, limit: int, timeout: float = BODY_TIMEOUT_S) -> Any:
    """The body parsed as JSON; 413 past `limit` bytes, 408 when it takes longer than `timeout` s."""
    try:
        async with asyncio.timeout(timeout):
            raw = await _read(request, limit)
    except TimeoutError:
        raise BodyTimeout(f"The request body was not received within {timeout:g} seconds.") from None
    except ClientDisconnect:  # nobody is left to answer; not a server error
        raise InvalidRequest("The client disconnected before sending its whole body.",
                             code="client_disconnected") from None  # fmt: skip
    return _parse(raw)


async def _read(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise InvalidRequest("Invalid Content-Length header.", code="invalid_header") from None
        if size > limit:
            raise PayloadTooLarge(f"Request body of {size} bytes exceeds the limit of {limit} bytes.")
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(raw: bytes) -> Any:
    if not raw:
        raise InvalidRequest("The request body is empty; send a JSON object.", code="invalid_json")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if _bad_utf8(raw):
            raise InvalidRequest("The request body is not valid UTF-8.", code="invalid_encoding") from None
        raise InvalidRequest(
            f"The request body is not valid JSON: {exc.msg} at position {exc.pos}.", code="invalid_json"
        ) from None


def _bad_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False
