"""`GuardedHttpToolsProtocol` over a fake transport: the head limit counts heads only (never bodies,
pipelined requests included), and the head timer runs only while a head is awaited."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from thrifty.server.http_protocol import GuardedHttpToolsProtocol, guarded_http_protocol

LIMIT = 1024


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.protocol: asyncio.BaseProtocol | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self.protocol is not None
        return self.protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 4000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def echo_size(scope: dict, receive: Any, send: Any) -> None:
    """Answers with the size of the body it read."""
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = str(size).encode()
    headers = [(b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def connect(timeout: float = 10.0) -> tuple[GuardedHttpToolsProtocol, FakeTransport]:
    config = Config(app=echo_size, lifespan="off", log_level="critical")
    config.load()
    protocol = guarded_http_protocol(LIMIT, timeout)(config=config, server_state=ServerState(), app_state={})
    transport = FakeTransport()
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    return protocol, transport


def post(body: bytes, header: bytes = b"") -> bytes:
    return b"POST / HTTP/1.1\r\nhost: x\r\n%scontent-length: %d\r\n\r\n%s" % (header, len(body), body)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_body_far_larger_than_the_limit_in_the_same_read_as_the_head_is_no_header():
    protocol, transport = connect()
    protocol.data_received(post(b"x" * (50 * LIMIT)))
    await settle()
    assert transport.written.startswith(b"HTTP/1.1 200") and transport.written.endswith(b"51200")
    assert not transport.closed


@pytest.mark.parametrize(("size", "refused"), [(LIMIT, False), (LIMIT + 1, True)])
async def test_the_limit_is_exact_on_the_head(size, refused):
    protocol, transport = connect()
    start = b"GET / HTTP/1.1\r\nhost: x\r\nx-pad: "
    data = start + b"a" * (size - len(start) - 4) + b"\r\n\r\n"
    assert len(data) == size
    protocol.data_received(data)
    await settle()
    assert transport.written.startswith(b"HTTP/1.1 431" if refused else b"HTTP/1.1 200")
    assert transport.closed is refused


async def test_a_head_trickled_past_the_limit_is_refused():
    protocol, transport = connect()
    protocol.data_received(b"GET / HTTP/1.1\r\n")
    for _ in range(LIMIT // 9 + 10):  # bytes after the refusal are ignored
        protocol.data_received(b"x-a: 12\r\n")
    assert transport.written.startswith(b"HTTP/1.1 431") and transport.closed
    assert b'"code":"request_header_fields_too_large"' in transport.written


async def test_pipelined_requests_each_get_their_own_limit():
    protocol, transport = connect()
    one = post(b"y" * 300, header=b"x-pad: " + b"a" * (LIMIT // 2) + b"\r\n")
    protocol.data_received(one * 4)  # 4 heads of ~600 bytes: 2.4 KB of heads in one read
    for _ in range(20):
        await settle()
    assert transport.written.count(b"HTTP/1.1 200") == 4 and not transport.closed


async def test_the_head_timer_closes_idle_and_partial_connections_only_while_a_head_is_awaited():
    idle, idle_transport = connect(timeout=0.05)
    partial, partial_transport = connect(timeout=0.05)
    partial.data_received(b"POST / HTTP/1.1\r\nhost:")
    busy, busy_transport = connect(timeout=0.05)
    busy.data_received(b"POST / HTTP/1.1\r\ncontent-length: 10\r\n\r\n12345")  # head in; body stalls
    await asyncio.sleep(0.15)
    assert idle_transport.closed and idle_transport.written == b""
    assert partial_transport.closed and partial_transport.written.startswith(b"HTTP/1.1 408")
    assert not busy_transport.closed  # its body is the app's to time out (server.body_timeout_s)
    busy.data_received(b"67890")
    await settle()
    assert busy_transport.written.startswith(b"HTTP/1.1 200")
    await asyncio.sleep(0.15)  # the timer restarts after the response: the next head is awaited
    assert busy_transport.closed
    for protocol in (idle, partial, busy):
        protocol.connection_lost(None)


@pytest.mark.parametrize(
    ("setting", "key"),
    [
        ("max_header_bytes: 100", "server.max_header_bytes"),  # under 1 KB: no real request fits
        ("max_header_bytes: 99999999999", "server.max_header_bytes"),
        ("header_timeout_s: 0", "server.header_timeout_s"),
        ("header_timeout_s: 86400", "server.header_timeout_s"),
    ],
)
def test_out_of_range_head_limits_are_config_errors(setting, key, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from thrifty.cli import main

    monkeypatch.chdir(tmp_path)
    config = tmp_path / "thrifty.yaml"
    config.write_text(f"server: {{{setting}}}\n")
    result = CliRunner().invoke(main, ["config", "check", str(config)])
    assert result.exit_code == 2 and f"config error: {key}:" in result.output, result.output
