"""Server-sent events for a ChatStream, with an explicit error event whenever the stream is cut short.

A stream ends one of four ways: whole (`data: [DONE]`); cut upstream or by a bug (an `error` event, no
[DONE]); the client leaving (nothing more is sent, booked as a client disconnect); or the server
cancelling it when its graceful shutdown runs out (an `error` event with code `server_shutting_down`,
then the body's end, booked as stopped by the shutdown). The last two both reach the stream as a
cancellation; `unless_disconnected` tells them apart, as it does before a response has started.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import aclosing

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from thrifty.errors import ThriftyError, UpstreamError
from thrifty.server.disconnect import ClientGone, ShuttingDown, unless_disconnected
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
    """Yield SSE frames. A mid-stream failure ends with an `error` frame and no [DONE]. The stream is
    not closed here: whoever iterates knows why an iteration was cancelled, and closes it."""
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
    yield DONE


def shutdown_cut() -> tuple[ShuttingDown, UpstreamError]:
    """What the client is told about a stream the shutdown stopped, and what its ledger row says."""
    told = ShuttingDown("The gateway is shutting down and cut this stream before it ended; retry it.")
    booked = UpstreamError(
        "the gateway shut down before the stream ended", status=told.status, code=told.code
    )
    return told, booked


class EventStreamResponse(Response):
    """`text/event-stream` of a ChatStream, closed (and so booked) however it ends.

    Starlette's StreamingResponse cancels the body on a disconnect and lets the server's cancellation
    at shutdown cut the connection mid-chunk; both were then booked as a client that left."""

    media_type = "text/event-stream"

    def __init__(self, stream: ChatStream, headers: dict[str, str]) -> None:
        self.stream = stream
        self.status_code = 200
        self.background = None
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        try:
            await unless_disconnected(Request(scope, receive), self._events(send))
        except (ClientGone, OSError):  # OSError: how ASGI 2.4 servers report a write to a gone client
            return  # no one reads: closing books it as a client disconnect
        except ShuttingDown:
            told, booked = shutdown_cut()
            log.warning("stream %s cut: %s", self.stream.request_id, booked.message)
            self.stream.cut(booked)
            await send({"type": "http.response.body", "body": event(told.body()), "more_body": True})
        finally:
            await self.stream.aclose()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _events(self, send: Send) -> None:
        async with aclosing(sse_body(self.stream)) as frames:
            async for frame in frames:
                await send({"type": "http.response.body", "body": frame, "more_body": True})
