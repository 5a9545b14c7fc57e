"""Bad input over real HTTP (hypothesis-generated bodies, raw sockets for header abuse and slow clients).

Every case gets a 4xx in the OpenAI error shape or a correct answer: no 5xx, no hang, no crash, and
every 200 has its ledger row."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import base_config, ledger_rows
from tests.support.servers import start_gateway

pytestmark = pytest.mark.e2e
MAX_BODY = 64 * 1024
BODY_TIMEOUT = 2.0
FUZZ = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
VALID = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4),
    max_leaves=12,
)
WEIRD = st.one_of(
    JSON,
    st.integers(min_value=-(10**40), max_value=10**40),
    st.sampled_from([10**9, 2**63, -1, 0, 1.5, "1", True, None, [], {}, 1e308]),
)
FIELDS = ["model", "messages", "n", "max_tokens", "max_completion_tokens", "temperature", "top_p",
          "stream", "stop", "tools", "logprobs", "top_logprobs", "seed", "stream_options",
          "thrifty"]  # fmt: skip


def dumps(value: Any) -> bytes:
    """JSON text (the stdlib encoder: integers of any size)."""
    return json.dumps(value).encode()


@pytest.fixture(scope="module")
def gw(tmp_path_factory, fake_server):
    data = base_config(fake_server)
    data["server"] = {"max_body_bytes": MAX_BODY, "body_timeout_s": BODY_TIMEOUT}
    proc = start_gateway(tmp_path_factory.mktemp("fuzz-http"), data)
    yield proc
    proc.stop()
    log = proc.output()
    assert "unexpected error" not in log and "Traceback" not in log, log[-3000:]


@pytest.fixture(scope="module")
def answered() -> list[str]:
    return []


def check(r: httpx.Response, answered: list[str]) -> None:
    assert r.status_code < 500, r.text[:500]
    if r.status_code >= 400:
        error = r.json()["error"]
        assert set(error) >= {"message", "type", "param", "code"} and error["message"]
    elif r.headers.get("content-type", "").startswith("application/json"):
        assert r.json()["object"] in ("chat.completion", "list")
        answered.append(r.headers["x-thrifty-request-id"])
    else:  # a stream
        assert r.text.rstrip().endswith("data: [DONE]")
        answered.append(r.headers["x-thrifty-request-id"])


def post(gw, body: bytes, path: str = "/v1/chat/completions", **headers: str) -> httpx.Response:
    return httpx.post(gw.url + path, content=body, headers={"content-type": "application/json", **headers},
                      timeout=30)  # fmt: skip


@FUZZ
@given(body=JSON)
def test_any_json_value_as_body(gw, answered, body: Any):
    for path in ("/v1/chat/completions", "/v1/embeddings"):
        check(post(gw, dumps(body), path), answered)


@FUZZ
@given(field=st.sampled_from(FIELDS), value=WEIRD)
def test_one_field_of_a_valid_request_replaced(gw, answered, field: str, value: Any):
    check(post(gw, dumps({**VALID, field: value})), answered)


@FUZZ
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes_and_invalid_utf8(gw, answered, raw: bytes):
    check(post(gw, raw), answered)
    check(post(gw, b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "' + raw + b'"}]}'),
          answered)  # fmt: skip


def test_invalid_utf8_is_named(gw):
    r = post(gw, b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "\xff\xfe"}]}')
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_encoding"


def test_huge_values(gw, answered):
    for field, value in (
        ("n", 10**6),
        ("max_tokens", 10**12),
        ("max_tokens", 2**200),
        ("temperature", 1e308),
    ):
        r = post(gw, dumps({**VALID, field: value}))
        check(r, answered)
        assert r.status_code == 400 and r.json()["error"]["param"] == field
    many = {**VALID, "messages": [{"role": "user", "content": "x"}] * 5000}
    check(post(gw, dumps(many)), answered)


def test_huge_bodies_are_refused_with_and_without_content_length(gw):
    big = dumps({**VALID, "messages": [{"role": "user", "content": "x" * (MAX_BODY * 2)}]})
    r = post(gw, big)
    assert r.status_code == 413 and r.json()["error"]["type"] == "invalid_request_error"

    def chunks():
        for i in range(0, len(big), 8192):
            yield big[i : i + 8192]

    r = httpx.post(gw.url + "/v1/chat/completions", content=chunks(), timeout=30)  # chunked: no length
    assert r.status_code == 413


def raw_request(gw, data: bytes, *, read_timeout: float = 10.0) -> bytes:
    with socket.create_connection(("127.0.0.1", gw.port), timeout=read_timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
                if b"\r\n\r\n" in out and _complete(out):
                    break
        except (TimeoutError, ConnectionResetError):
            pass
    return out


def _complete(out: bytes) -> bool:
    head, _, body = out.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def status_of(out: bytes) -> int | None:
    return int(out.split(b" ", 2)[1]) if out.startswith(b"HTTP/1.1 ") else None


def whole_response(s: socket.socket, out: bytes, timeout: float = 5.0) -> bytes:
    """Read on from `out` (the response's first bytes) until its head and `content-length` body are in:
    one `recv` may return the head alone."""
    s.settimeout(timeout)
    while True:
        head, sep, body = out.partition(b"\r\n\r\n")
        if sep:
            lengths = [ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length:")]
            if not lengths or len(body) >= int(lengths[0].split(b":", 1)[1]):
                return out
        try:
            more = s.recv(65536)
        except OSError:
            return out
        if not more:
            return out
        out += more


def request_bytes(headers: dict[str, str], body: bytes = b"", path: str = "/v1/chat/completions") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "host: localhost", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"content-length": "abc"}, b"{}"),
        ({"content-length": "-5"}, b"{}"),
        ({"content-length": "5", "transfer-encoding": "chunked"}, b"0\r\n\r\n"),
        (
            {"content-type": "text/plain", "content-length": str(len(dumps(VALID)))},
            dumps(VALID),
        ),
        ({"content-type": "application/json; charset=latin-1", "content-length": "2"}, b"{}"),
        ({"x-huge": "a" * 200_000, "content-length": "2"}, b"{}"),
        ({**{f"x-h{i}": "v" for i in range(2000)}, "content-length": "2"}, b"{}"),
        ({"authorization": "Bearer " + "\x7f" * 50, "content-length": "2"}, b"{}"),
        ({"x-request-id": "../../etc/passwd\x01", "content-length": "2"}, b"{}"),
    ],
)
def test_header_abuse_gets_a_4xx_or_an_answer(gw, headers, body):
    out = raw_request(gw, request_bytes(headers, body))
    status = status_of(out)
    assert status is None or status < 500, out[:500]  # None: the server closed the connection
    assert httpx.get(gw.url + "/healthz").status_code == 200


def test_truncated_body_then_close_does_not_hang_the_server(gw):
    with socket.create_connection(("127.0.0.1", gw.port)) as s:
        s.sendall(request_bytes({"content-length": "1000", "content-type": "application/json"}, b'{"model'))
    assert httpx.get(gw.url + "/healthz").status_code == 200


def test_slow_client_gets_a_408_and_does_not_block_others(gw, answered):
    started = time.monotonic()
    result: dict[str, Any] = {}

    def slow() -> None:
        body = dumps(VALID)
        with socket.create_connection(("127.0.0.1", gw.port), timeout=30) as s:
            s.sendall(request_bytes({"content-length": str(len(body)), "content-type": "application/json"}))
            out = b""
            s.settimeout(0.5)
            for byte in body:  # one byte every 0.5 s: would take far longer than the body timeout
                try:
                    s.sendall(bytes([byte]))
                    out += s.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if out:
                    out = whole_response(s, out)
                    break
            result["out"] = out
            result["elapsed"] = time.monotonic() - started

    stalled = socket.create_connection(("127.0.0.1", gw.port), timeout=30)  # headers, then nothing
    stalled.sendall(request_bytes({"content-length": "50", "content-type": "application/json"}))
    t = threading.Thread(target=slow)
    t.start()
    for _ in range(3):  # others are served meanwhile, quickly
        r = post(gw, dumps(VALID))
        check(r, answered)
        assert r.status_code == 200
    assert time.monotonic() - started < BODY_TIMEOUT
    t.join(30)
    assert status_of(result["out"]) == 408 and b"request_timeout" in result["out"]
    assert result["elapsed"] < BODY_TIMEOUT + 3
    stalled.settimeout(BODY_TIMEOUT + 5)
    out = stalled.recv(65536)
    stalled.close()
    assert status_of(out) == 408


def test_every_answer_has_its_ledger_row(gw, answered):
    check(post(gw, dumps(VALID)), answered)
    deadline = time.monotonic() + 10
    while True:
        final = {r["request_id"] for r in ledger_rows(gw.ledger_path) if r["final"] == 1}
        if set(answered) <= final or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert answered and set(answered) <= final
