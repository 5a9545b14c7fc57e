"""uvicorn's httptools protocol with the two limits it lacks on a request's head (request line + headers).

- **Size**: past `max_header_bytes` the client gets 431 and the connection is closed. httptools has no
  such limit (uvicorn's `h11_max_incomplete_event_size` only applies to its h11 protocol), so one
  endless header line grew the process by its size and stalled everyone else. Bytes are counted
  before the parser sees them, from the end of the previous request's body; only a pipelined head
  that starts in the same read as that body's end is counted from the next read (at most one read
  over).
- **Time**: a head not complete `header_timeout_s` after the connection opened, or after the previous
  response ended, closes the connection (408 first when part of a head arrived). uvicorn's keep-alive
  timer is cancelled by any byte, and the gateway's body timeout starts only once the head is in, so
  a connection that sent nothing, or trickled a header byte now and then, was kept forever.

Written against uvicorn 0.54's `HttpToolsProtocol`, using only: `data_received`, the parser callbacks
`on_headers_complete` / `on_message_complete`, `on_response_complete`, `connection_made` / `_lost`,
`self.cycle.response_complete`, `self.transport`, `self.loop`, `self.logger`, `STATUS_LINE` and
`self.server_state.default_headers` (tests/unit/test_http_protocol.py exercises each).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

TIMER_SLACK_S = 0.01  # a timer may fire this much early (uvloop rounds to milliseconds): no re-arm then


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol that bounds a request head's size and the time it may take to arrive."""

    def __init__(self, *args: Any, max_header_bytes: int, header_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_header_bytes = max_header_bytes
        self.header_timeout_s = header_timeout_s
        self.awaiting_head = True  # bytes received now belong to a request head (not a body)
        self.head_bytes = 0  # of the head being received
        self.head_deadline: float | None = None  # loop time by which the awaited head must be in
        self.head_timer: asyncio.TimerHandle | None = None

    # Connection lifetime

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self.head_deadline = None
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.cycle.response_complete and not self.transport.is_closing():  # no pipelined request runs
            self._start_head_clock()

    # Size

    def data_received(self, data: bytes) -> None:
        if not self.awaiting_head:  # a body: the app bounds it (server.max_body_bytes)
            super().data_received(data)
        elif self.head_bytes + len(data) < self.max_header_bytes:  # the usual case: fits whole
            self.head_bytes += len(data)
            super().data_received(data)
        else:
            self._feed_up_to_the_limit(data)

    def _feed_up_to_the_limit(self, data: bytes) -> None:
        """Feed what fits in the head's room; refuse if the head has not ended in it, else go on (what
        follows is a body, or the next pipelined request)."""
        while data and not self._handed_off():
            if not self.awaiting_head:
                super().data_received(data)
                return
            room = self.max_header_bytes - self.head_bytes
            part, data = data[:room], data[room:]
            self.head_bytes += len(part)
            super().data_received(part)
            if self.awaiting_head and self.head_bytes >= self.max_header_bytes:
                self.logger.warning("Request head over %d bytes refused (431).", self.max_header_bytes)
                self._refuse(431, f"The request head exceeds the limit of {self.max_header_bytes} bytes.")
                return

    def on_headers_complete(self) -> None:
        self.awaiting_head = False
        self.head_bytes = 0
        self.head_deadline = None  # the timer, if any, finds nothing to do when it fires
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.awaiting_head = True  # what follows is the next request's head

    def _handed_off(self) -> bool:
        """The connection is closing, or was upgraded to another protocol."""
        return self.transport.is_closing() or self.transport.get_protocol() is not self

    # Time: one deadline per awaited head; the timer is re-armed lazily, when it fires, not per request

    def _start_head_clock(self) -> None:
        self.head_deadline = self.loop.time() + self.header_timeout_s
        if self.head_timer is None:
            self.head_timer = self.loop.call_at(self.head_deadline, self._check_head_deadline)

    def _check_head_deadline(self) -> None:
        self.head_timer = None
        if self.head_deadline is None or self.transport.is_closing():
            return
        if self.loop.time() < self.head_deadline - TIMER_SLACK_S:  # a later head is awaited now
            self.head_timer = self.loop.call_at(self.head_deadline, self._check_head_deadline)
        elif self.awaiting_head and self.head_bytes:
            timeout = self.header_timeout_s
            self._refuse(408, f"The request headers were not received within {timeout:g} seconds.")
        else:  # nothing of a request came (idle), or a previous request's unread body still trickles
            self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` with an OpenAI-shaped error before any app sees the request, and close (only
        close while an earlier pipelined request is still being answered: the bytes would interleave)."""
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()
            return
        code = "request_header_fields_too_large" if status == 431 else "request_timeout"
        body = orjson.dumps(
            {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
        )
        head = [STATUS_LINE[status]]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()


def guarded_http_protocol(max_header_bytes: int, header_timeout_s: float) -> Callable[..., asyncio.Protocol]:
    """The `http=` protocol for uvicorn's Config: a partial of a module-level class, so it pickles into
    the worker processes of `uvicorn.run(..., workers=N)`."""
    return functools.partial(
        GuardedHttpToolsProtocol, max_header_bytes=max_header_bytes, header_timeout_s=header_timeout_s
    )
