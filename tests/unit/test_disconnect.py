"""`unless_disconnected`: a request's work is stopped when its client leaves (499, booked, never sent)
and answered with a 503 in the OpenAI shape when the server cancels it at shutdown (not uvicorn's
plain-text 500)."""

from __future__ import annotations

import asyncio

import pytest
from starlette.requests import Request

from thrifty.server.disconnect import ClientGone, ShuttingDown, unless_disconnected


def request(leaves: asyncio.Event) -> Request:
    async def receive() -> dict:
        await leaves.wait()
        return {"type": "http.disconnect"}

    return Request({"type": "http", "method": "POST", "path": "/", "headers": []}, receive)


async def test_a_client_that_leaves_stops_the_work():
    leaves = asyncio.Event()
    task = asyncio.ensure_future(unless_disconnected(request(leaves), asyncio.sleep(30)))
    await asyncio.sleep(0.01)
    leaves.set()
    with pytest.raises(ClientGone):
        await asyncio.wait_for(task, 5)


async def test_a_request_cancelled_by_the_server_gets_a_503_in_the_openai_shape():
    task = asyncio.ensure_future(unless_disconnected(request(asyncio.Event()), asyncio.sleep(30)))
    await asyncio.sleep(0.01)
    task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")  # what uvicorn does
    with pytest.raises(ShuttingDown) as stopped:
        await asyncio.wait_for(task, 5)
    body = stopped.value.body()["error"]
    assert stopped.value.status == 503 and body["code"] == "server_shutting_down"


async def test_work_that_ends_first_is_returned():
    async def answer() -> str:
        return "ok"

    assert await unless_disconnected(request(asyncio.Event()), answer()) == "ok"
