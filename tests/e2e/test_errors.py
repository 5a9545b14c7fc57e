"""Every bad input gets a clear OpenAI-shaped error with the right status; never a 500."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import base_config, ledger_rows

pytestmark = pytest.mark.e2e

CHAT = "/v1/chat/completions"
OK_BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def post(gw, content: bytes | None = None, json=None, headers=None, path=CHAT) -> httpx.Response:
    return httpx.post(
        gw.url + path,
        content=content,
        json=json,
        timeout=30,
        headers={"content-type": "application/json", **(headers or {})},
    )


def assert_error(r: httpx.Response, status: int, param: str | None = None) -> dict:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) >= {"message", "type", "param", "code"}
    assert err["message"]
    if param is not None:
        assert err["param"] == param
    return err


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "gpt-4o"}, "messages"),
        ({"model": "gpt-4o", "messages": []}, "messages"),
        ({"model": "gpt-4o", "messages": "hello"}, "messages"),
        ({"model": "gpt-4o", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": "gpt-4o", "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({**OK_BODY, "temperature": "hot"}, "temperature"),
        ({**OK_BODY, "temperature": 7}, "temperature"),
        ({**OK_BODY, "n": 100000}, "n"),
        ({**OK_BODY, "max_tokens": 10**12}, "max_tokens"),
        ({**OK_BODY, "max_tokens": True}, "max_tokens"),
        ({**OK_BODY, "stream": "yes"}, "stream"),
        ({**OK_BODY, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({**OK_BODY, "tools": {"not": "a list"}}, "tools"),
        ({**OK_BODY, "response_format": "json"}, "response_format"),
    ],
)
def test_invalid_bodies_are_400_naming_the_parameter(gateway, body, param):
    assert_error(post(gateway, json=body), 400, param)


def test_malformed_json_empty_body_non_object_and_bad_utf8(gateway, fake):
    assert_error(post(gateway, b'{"model": "gpt-4o", "messages": ['), 400)
    assert_error(post(gateway, b""), 400)
    assert_error(post(gateway, b"[1, 2, 3]"), 400)
    err = assert_error(post(gateway, b'{"model": "gpt-4o\xff\xfe"}'), 400)
    assert "UTF-8" in err["message"]
    assert fake.requests() == []  # nothing bad reached the provider


def test_unknown_model_is_404(gateway):
    err = assert_error(post(gateway, json={**OK_BODY, "model": "gpt-99-ultra"}), 404, "model")
    assert err["code"] == "model_not_found"


def test_body_over_limit_is_413(gateway_factory, fake):
    config = base_config(fake)
    config["server"] = {"max_body_bytes": 4096}
    gw = gateway_factory(config)
    big = {**OK_BODY, "messages": [{"role": "user", "content": "x" * 10_000}]}
    assert_error(post(gw, json=big), 413)

    # chunked upload without content-length is cut off too
    def gen():
        yield b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "'
        for _ in range(20):
            yield b"y" * 1024
        yield b'"}]}'

    r = httpx.post(gw.url + CHAT, content=gen(), timeout=30)
    assert_error(r, 413)
    assert post(gw, json=OK_BODY).status_code == 200  # the server is fine afterwards


def test_auth_with_master_key(gateway_factory, fake):
    config = base_config(fake)
    config["server"] = {"master_key": "sk-master-test-key"}
    gw = gateway_factory(config)
    assert_error(post(gw, json=OK_BODY), 401)
    assert_error(post(gw, json=OK_BODY, headers={"authorization": "Bearer wrong"}), 401)
    assert_error(post(gw, json=OK_BODY, headers={"authorization": "Basic abc"}), 401)
    r = post(gw, json=OK_BODY, headers={"authorization": "Bearer sk-master-test-key"})
    assert r.status_code == 200
    assert httpx.get(gw.url + "/healthz").status_code == 200  # probes need no key


def test_unknown_path_and_method(gateway):
    assert_error(httpx.get(gateway.url + "/v1/nothing-here"), 404)
    assert_error(httpx.get(gateway.url + CHAT), 405)


def test_a_client_request_id_is_echoed_and_booked_but_never_the_ledger_key(gateway):
    """A client may reuse its id (a retry, a trace id per session): each request still gets its own
    `x-request-id`, so the ledger and the report never merge two requests."""
    ids = []
    for header in ("x-request-id", "x-client-request-id", "x-client-request-id"):
        r = post(gateway, json=OK_BODY, headers={header: "client-abc-123"})
        assert r.status_code == 200 and r.headers["x-client-request-id"] == "client-abc-123"
        assert r.headers["x-request-id"].startswith("req_")
        ids.append(r.headers["x-request-id"])
    assert len(set(ids)) == 3
    for request_id in ids:
        (row,) = ledger_rows(gateway.ledger_path, expect=1, request_id=request_id)
        assert json.loads(row["meta"])["client_request_id"] == "client-abc-123"
    r = post(gateway, json=OK_BODY, headers={"x-request-id": "bad id with spaces"})
    assert r.headers["x-request-id"].startswith("req_") and "x-client-request-id" not in r.headers


def test_health_and_readiness(gateway):
    assert httpx.get(gateway.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(gateway.url + "/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


@pytest.mark.parametrize("provider", ["fakeai", "fakeanthropic"])
def test_a_provider_that_echoes_its_key_never_leaks_it_to_the_client_or_the_ledger(
    gateway_factory, fake, provider
):
    """Some providers quote the key they were sent in a 401 ("Incorrect API key provided: …")."""
    secret = "plainsecret-UPSTREAM-0123"
    config = base_config(fake)
    config["providers"][provider]["api_key"] = secret
    gw = gateway_factory(config)
    model = "gpt-4o" if provider == "fakeai" else "claude-sonnet-4-5"
    for status in (401, 400):
        fake.script(
            {"status": status, "error_message": f"Incorrect API key provided: {secret}."}, model=model
        )
        r = post(gw, json={**OK_BODY, "model": model}, headers={"x-request-id": "x"})
        assert r.status_code in (400, 502) and "Incorrect API key provided" in r.text
        assert secret not in r.text and "[redacted]" in r.text
        rows = ledger_rows(gw.ledger_path, expect=1, request_id=r.headers["x-request-id"])
        assert rows and all(secret not in (row["error"] or "") for row in rows)
