"""Stop working for a client that has gone: its upstream call, retries and fallbacks are cancelled.

Starlette runs a handler to its end even when the client disconnects, so a request whose upstream
stalls would keep calling providers (and paying) for minutes after anyone could read the answer. Once
the body has been read, the only message the server can still deliver is `http.disconnect`; waiting
for it next to the work tells us when to stop: before a response starts (`Api`), and while a stream is
sent (`sse.EventStreamResponse`), where it also tells the client leaving from the server's own
cancellation at shutdown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import Request

from thrifty.errors import ThriftyError

T = TypeVar("T")


class ClientGone(ThriftyError):
    """The client disconnected before its answer was ready (nginx's 499); no one reads this body."""

    status = 499
    type = "invalid_request_error"
    code = "client_disconnected"


class ShuttingDown(ThriftyError):
    """The server stopped the request at shutdown (past `timeout_graceful_shutdown`): retry elsewhere."""

    status = 503
    type = "api_error"
    code = "server_shutting_down"


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """`await work` in this task, cancelled (and `ClientGone` raised) if the client disconnects first.
    Cancelled otherwise — only the server does that, when its graceful shutdown runs out — the client
    gets a 503 in the OpenAI shape (`ShuttingDown`) instead of the server's plain-text 500.

    One watcher task, cancelled when the work ends, is all it costs a request that stays."""
    current = asyncio.current_task()
    assert current is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        await _disconnected(request)
        gone = True
        current.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        return await work
    except asyncio.CancelledError:
        current.uncancel()
        if not gone:
            raise ShuttingDown(
                "The gateway is shutting down and stopped this request before its answer was ready; retry it."
            ) from None
        raise ClientGone("The client disconnected before the answer was ready.") from None
    finally:
        watcher.cancel()
