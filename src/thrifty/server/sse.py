"""Server-sent events for a ChatStream, with an explicit error event if the upstream is cut."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import orjson

from thrifty.errors import ThriftyError
from thrifty.streaming import ChatStream

log = logging.getLogger("thrifty.server")

DONE = b"data: [DONE]\n\n"
INTERNAL_ERROR = {
    "error": {
        "message": "The gateway hit an internal error; the stream was not completed.",
        "type": "api_error",
        "param": None,
        "code": "internal_error",
    }
}


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
    except Exception:  # a bug: the client still gets an error event, not a cut connection
        log.exception("stream %s failed", stream.request_id)
        yield event(INTERNAL_ERROR)
        return
    finally:
        await stream.aclose()
    yield DONE
