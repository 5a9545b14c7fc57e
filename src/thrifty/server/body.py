"""Reading a request body within the size limit and parsing it as JSON."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from thrifty.errors import InvalidRequest, PayloadTooLarge


async def read_json(request: Request, limit: int) -> Any:
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
    raw = b"".join(chunks)
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
