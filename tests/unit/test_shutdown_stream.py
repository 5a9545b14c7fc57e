"""`EventStreamResponse`: a stream the server cancels at shutdown ends with an SSE error event
`server_shutting_down` and the body's end, and is booked as stopped by the shutdown (503); a client
that leaves gets nothing more and is booked as a disconnect (499); a whole stream ends with [DONE]."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from thrifty.errors import UpstreamError
from thrifty.server.sse import EventStreamResponse
from thrifty.stream_wrapper import StreamWrapper
from thrifty.streaming import ChatStream
from thrifty.types import Body, Usage


def chunk(text: str) -> Body:
    choice = {"index": 0, "delta": {"content": text}}
    return {"id": "c", "object": "chat.completion.chunk", "model": "m", "choices": [choice]}


class Books:
    """What the stream's `finish` was called with: (usage, text, error) per call."""

    def __init__(self) -> None:
        self.calls: list[tuple[Usage | None, str, UpstreamError | None]] = []

    def __call__(self, usage: Usage | None, text: str, error: UpstreamError | None, latency: float) -> None:
        self.calls.append((usage, text, error))


def stream(books: Books, *, endless: bool) -> ChatStream:
    async def rest() -> AsyncIterator[Body]:
        yield chunk(" two")
        if endless:
            await asyncio.Event().wait()  # the upstream still streaming when the stream is cut

    return ChatStream(
        first=chunk("one"),
        rest=rest(),
        request_id="r",
        served_model="m",
        provider="p",
        include_usage=False,
        finish=books,
        started=time.perf_counter(),
    )


class Client:
    """The ASGI side of one connection: what was sent, and a disconnect the test can trigger."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.leaves = asyncio.Event()
        self.two_frames = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        await self.leaves.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        if len(self.frames()) == 2:
            self.two_frames.set()

    def frames(self) -> list[bytes]:
        return [m["body"] for m in self.sent if m["type"] == "http.response.body" and m["body"]]

    def ended(self) -> bool:
        return self.sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


async def serve(response: EventStreamResponse, client: Client) -> asyncio.Task:
    scope = {"type": "http", "method": "POST", "path": "/", "headers": []}
    task = asyncio.ensure_future(response(scope, client.receive, client.send))
    await asyncio.wait_for(client.two_frames.wait(), 5)
    return task


async def test_a_stream_the_server_cancels_at_shutdown_ends_with_an_error_event_and_is_booked_so():
    books, client = Books(), Client()
    task = await serve(EventStreamResponse(stream(books, endless=True), {}), client)
    task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")  # what uvicorn does
    await asyncio.wait_for(task, 5)  # answered, not cancelled: the server sends what it was given
    assert client.sent[0]["type"] == "http.response.start" and client.sent[0]["status"] == 200
    assert client.ended()
    *streamed, last = client.frames()
    assert len(streamed) == 2 and last.startswith(b"data: ") and last.endswith(b"\n\n")
    error = orjson.loads(last.removeprefix(b"data: "))["error"]
    assert (error["type"], error["code"], error["param"]) == ("api_error", "server_shutting_down", None)
    ((_, text, booked),) = books.calls
    assert text == "one two" and booked is not None
    assert (booked.status, booked.code) == (503, "server_shutting_down")
    assert "client" not in booked.message


async def test_a_client_that_leaves_mid_stream_gets_nothing_more_and_is_booked_as_a_disconnect():
    books, client = Books(), Client()
    task = await serve(EventStreamResponse(stream(books, endless=True), {}), client)
    client.leaves.set()
    await asyncio.wait_for(task, 5)
    assert len(client.frames()) == 2 and not client.ended()
    ((_, text, booked),) = books.calls
    assert text == "one two" and booked is not None and booked.status == 499


async def test_a_whole_stream_ends_with_done_and_is_booked_without_error():
    books, client = Books(), Client()
    task = await serve(EventStreamResponse(stream(books, endless=False), {"x-a": "1"}), client)
    await asyncio.wait_for(task, 5)
    assert client.frames()[-1] == b"data: [DONE]\n\n" and client.ended()
    assert (b"x-a", b"1") in client.sent[0]["headers"]
    assert [error for *_, error in books.calls] == [None]


class Closing(StreamWrapper):
    closed = False

    async def _closed(self) -> None:
        self.closed = True


async def test_a_wrapped_stream_is_cut_on_its_inner_stream_and_its_close_hook_still_runs():
    books, client = Books(), Client()
    wrapped = Closing(stream(books, endless=True), {})
    task = await serve(EventStreamResponse(wrapped, {}), client)  # type: ignore[arg-type]
    task.cancel()
    await asyncio.wait_for(task, 5)
    ((_, _, booked),) = books.calls
    assert booked is not None and booked.code == "server_shutting_down" and wrapped.closed


def test_cut_books_once_and_close_books_nothing_more():
    books = Books()
    s = stream(books, endless=True)
    s.cut(UpstreamError("stopped", status=503, code="server_shutting_down"))
    asyncio.run(s.aclose())
    assert [error.status for *_, error in books.calls if error] == [503]
