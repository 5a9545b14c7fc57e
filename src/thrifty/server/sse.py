"""Server-sent events for a ChatStream, with an explicit error event if the upstream is cut."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import orjson

from thrifty.errors import ThriftyError
from thrifty.streaming import ChatStream

log = logging.getLogger("thrifty.server")

DONE = b"data: [DONE]\n\n"


def event(data: dict) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


async def sse_body(stream: ChatStream) -> AsyncIterator[bytes]:
    """Yield SSE frames. A mid-stream failure ends with an `error` frame and no [DONE]."""
    try:
        async for chunk in stream:
            yield event(chunk)
    except ThriftyError as exc:
        log.warning("stream %s cut: %s", stream.request_id, exc.message)
        yield event(exc.body())
        return
    finally:
        await stream.aclose()
    yield DONE
