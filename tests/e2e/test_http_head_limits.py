"""The request head (request line + headers) is bounded in size and in time, over real `thrifty serve`.

Before: a 96 MB header was accepted (httptools has no limit; the h11 one thrifty set was ignored) and
connections that never completed their headers were kept forever (slowloris)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time

import httpx
import pytest

from tests.conftest import base_config

pytestmark = pytest.mark.e2e

HEADER_TIMEOUT = 1.0
VALID = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def head(path: str = "/v1/chat/completions", **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "host: localhost", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def request(body: bytes, **headers: str) -> bytes:
    return head(**{"content-type": "application/json", "content-length": str(len(body)), **headers}) + body


def read_all(s: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes (or `timeout`), and when it closed (inf: it did not)."""
    s.settimeout(timeout)
    out, started = b"", time.monotonic()
    while True:
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            return out, float("inf")
        except OSError:  # reset: closed with our unread bytes in its buffer
            return out, time.monotonic() - started
        if not chunk:
            return out, time.monotonic() - started
        out += chunk


def read_response(s: socket.socket) -> bytes:
    """One whole response with a `content-length` (the connection stays open)."""
    s.settimeout(10)
    out = b""
    while True:
        head, sep, body = out.partition(b"\r\n\r\n")
        lengths = [ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length:")]
        if sep and lengths and len(body) >= int(lengths[0].split(b":", 1)[1]):
            return out
        chunk = s.recv(65536)
        assert chunk, out
        out += chunk


def status_of(out: bytes) -> int | None:
    return int(out.split(b" ", 2)[1]) if out.startswith(b"HTTP/1.1 ") else None


def serves(gw) -> None:
    r = httpx.post(gw.url + "/v1/chat/completions", json=VALID, timeout=10)
    assert r.status_code == 200, r.text


@pytest.fixture
def gw(gateway_factory, fake):
    config = base_config(fake)
    config["server"] = {"header_timeout_s": HEADER_TIMEOUT}
    return gateway_factory(config)


def test_a_1mb_header_gets_431_and_the_gateway_keeps_serving(gw):
    with socket.create_connection(("127.0.0.1", gw.port)) as s:

        def send() -> None:
            with contextlib.suppress(OSError):  # the gateway closed the connection while we still sent
                s.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * (1 << 20) + b"\r\n\r\n")

        sender = threading.Thread(target=send)
        sender.start()
        out, closed_after = read_all(s, timeout=10)
        sender.join(10)
    assert closed_after < 10  # closed, not answered and kept
    assert status_of(out) in (431, None), out[:300]  # None: reset before the 431 could be read
    if out:
        body = json.loads(out.partition(b"\r\n\r\n")[2])
        assert body["error"]["code"] == "request_header_fields_too_large"
    serves(gw)


def test_a_head_over_the_limit_in_small_pieces_gets_431(gw):
    """Headers that each fit but together pass 64 KB, sent one by one (the limit is on the head)."""
    with socket.create_connection(("127.0.0.1", gw.port)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        try:
            for i in range(20):
                s.sendall(f"x-h{i}: {'v' * 4000}\r\n".encode())
                time.sleep(0.01)
        except OSError:
            pass
        out, closed_after = read_all(s, timeout=5)
    assert status_of(out) in (431, None) and closed_after < 5, out[:300]
    serves(gw)


def test_large_headers_under_the_limit_and_large_bodies_are_served(gw):
    """A 60 KB header is under the 64 KB default; a 1 MB body is no header, even when it arrives in the
    same reads as the head."""
    body = json.dumps({**VALID, "messages": [{"role": "user", "content": "x" * (1 << 20)}]}).encode()
    with socket.create_connection(("127.0.0.1", gw.port)) as s:
        s.sendall(request(body, **{"x-big": "a" * 60_000}))
        s.settimeout(10)
        out = s.recv(65536)
    assert status_of(out) == 200, out[:300]


def test_idle_and_trickling_connections_are_closed_after_the_header_timeout(gw):
    idle = socket.create_connection(("127.0.0.1", gw.port))
    trickling = socket.create_connection(("127.0.0.1", gw.port))
    trickling.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
    stop = threading.Event()

    def trickle() -> None:  # a byte every 0.2 s: each would reset an idle timer
        while not stop.wait(0.2):
            try:
                trickling.sendall(b"x")
            except OSError:
                return

    threading.Thread(target=trickle, daemon=True).start()
    serves(gw)  # others are served meanwhile
    idle_out, idle_closed = read_all(idle, timeout=HEADER_TIMEOUT + 5)
    trickled_out, trickled_closed = read_all(trickling, timeout=HEADER_TIMEOUT + 5)
    stop.set()
    idle.close()
    trickling.close()
    assert idle_out == b"" and idle_closed < HEADER_TIMEOUT + 2  # nothing was asked: closed silently
    assert status_of(trickled_out) == 408 and trickled_closed < HEADER_TIMEOUT + 2, trickled_out[:300]
    assert json.loads(trickled_out.partition(b"\r\n\r\n")[2])["error"]["code"] == "request_timeout"
    serves(gw)


def test_the_header_timeout_restarts_after_each_response(gw):
    """A keep-alive connection that starts its next request and then trickles it is closed too (the
    keep-alive timer stops at its first byte), while one that sends whole requests is kept."""
    with socket.create_connection(("127.0.0.1", gw.port)) as s:
        body = json.dumps(VALID).encode()
        for _ in range(3):  # whole requests, spaced over more than the header timeout
            s.sendall(request(body))
            assert status_of(read_response(s)) == 200
            time.sleep(HEADER_TIMEOUT * 0.6)
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\n")
        started = time.monotonic()
        try:
            while time.monotonic() - started < HEADER_TIMEOUT + 3:
                s.sendall(b"x")
                time.sleep(0.2)
        except OSError:
            pass
        out, closed_after = read_all(s, timeout=HEADER_TIMEOUT + 3)
    assert status_of(out) in (408, None) and closed_after < HEADER_TIMEOUT + 3, out[:300]
    assert time.monotonic() - started < HEADER_TIMEOUT + 3


def test_several_workers_bound_the_head_too(gateway_factory, fake):
    config = base_config(fake)
    config["server"] = {"header_timeout_s": HEADER_TIMEOUT, "max_header_bytes": 4096}
    gw = gateway_factory(config, args=["--workers", "2"])
    with socket.create_connection(("127.0.0.1", gw.port)) as s:
        out, closed_after = read_all(s, timeout=HEADER_TIMEOUT + 5)
    assert out == b"" and closed_after < HEADER_TIMEOUT + 2
    with socket.create_connection(("127.0.0.1", gw.port)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 5000 + b"\r\n\r\n")
        out, _ = read_all(s, timeout=5)
    assert status_of(out) in (431, None), out[:300]
    serves(gw)
