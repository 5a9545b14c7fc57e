"""Secrets hygiene: after real traffic through `thrifty serve`, provider keys, virtual keys, the master key
and the prompt text appear in none of: the logs (JSON and default text), the ledger (SQLite and
Postgres), error bodies, /metrics, the dashboard page and its API. Prompt text shows in the logs only
with `log_prompts: true` (the positive control: the same grep does find it then)."""

from __future__ import annotations

import sqlite3
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import PROVIDER_SECRET, base_config

pytestmark = pytest.mark.e2e
MASTER = "sk-master-SECRET-4f1c9a7e2b"
PROMPT = "PURPLE-ELEPHANT-7731 quarterly merger plan"
FORGED = "sk-thr-FORGED-not-a-real-key-93b1"


def traffic(gw, fake) -> tuple[str, list[str]]:
    """Real traffic of every kind; returns the virtual key and the bodies of every error answer (answers
    themselves may quote the prompt: the fake provider echoes it)."""
    admin = {"authorization": f"Bearer {MASTER}"}
    made = httpx.post(gw.url + "/admin/keys", headers=admin, json={"tenant": "acme", "name": "team key"})
    assert made.status_code == 201
    vkey = made.json()["key"]
    auth = {"authorization": f"Bearer {vkey}"}
    msgs = [{"role": "system", "content": f"Keep secret: {PROMPT}"}, {"role": "user", "content": PROMPT}]
    bodies: list[str] = []

    def call(path: str, json: Any, headers: dict[str, str], expect: int | None = None) -> None:
        r = httpx.post(gw.url + path, headers=headers, json=json, timeout=30)
        if r.status_code >= 400:
            bodies.append(r.text)
        else:
            assert MASTER not in r.text and PROVIDER_SECRET not in r.text and vkey not in r.text
        if expect is not None:
            assert r.status_code == expect, r.text

    call("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": msgs}, auth, 200)
    call("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": msgs, "stream": True}, auth, 200)
    call("/v1/embeddings", {"model": "text-embedding-3-small", "input": PROMPT}, auth, 200)
    call("/v1/chat/completions", {"model": "claude-sonnet-4-5", "messages": msgs}, auth, 200)
    # failures: upstream errors (with fallback), unknown model, bad values, bad keys, bad JSON
    fake.script({"status": 500}, {"status": 503}, {"status": 500}, model="flaky-up")
    call("/v1/chat/completions", {"model": "flaky", "messages": msgs}, auth)
    fake.script({"status": 401}, {"status": 401}, {"status": 401}, {"status": 401})
    call("/v1/chat/completions", {"model": "gpt-4o", "messages": msgs}, auth)
    call("/v1/chat/completions", {"model": "no-such-model", "messages": msgs}, auth, 404)
    call("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": msgs, "n": "many"}, auth, 400)
    for forged in ({"authorization": f"Bearer {FORGED}"}, {"x-api-key": FORGED}):
        call("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": msgs}, forged, 401)
    call("/admin/keys", {"tenant": "x"}, auth, 403)  # a virtual key is not the master key
    broken = f'{{"model": "gpt-4o-mini", "messages": [{{"content": "{PROMPT}"'.encode()
    r = httpx.post(gw.url + "/v1/chat/completions", headers=auth, timeout=30, content=broken)
    bodies.append(r.text)
    assert r.status_code == 400
    assert len(bodies) >= 7
    return vkey, bodies


def exposed(gw, bodies: list[str]) -> dict[str, str]:
    """Everything a person could read from outside the process, by where it came from."""
    admin = {"authorization": f"Bearer {MASTER}"}
    return {
        "error bodies": "\n".join(bodies),
        "/metrics": httpx.get(gw.url + "/metrics").text,
        "/dashboard": httpx.get(gw.url + "/dashboard").text,
        "/dashboard/api/summary": httpx.get(gw.url + "/dashboard/api/summary").text,
        "/readyz": httpx.get(gw.url + "/readyz").text,
        "/admin/keys": httpx.get(gw.url + "/admin/keys", headers=admin).text,
        "/openapi.json": httpx.get(gw.url + "/openapi.json").text,
    }


def sqlite_ledger_text(path) -> str:
    conn = sqlite3.connect(path)
    try:
        return "\n".join(repr(row) for row in conn.execute("SELECT * FROM ledger"))
    finally:
        conn.close()


def postgres_ledger_text(dsn: str) -> str:
    with psycopg.connect(dsn) as conn:
        return "\n".join(repr(row) for row in conn.execute("SELECT * FROM ledger"))


def assert_clean(sources: dict[str, str], secrets: dict[str, str]) -> None:
    leaks = [(what, where) for where, text in sources.items() for what, s in secrets.items() if s in text]
    assert not leaks, f"secrets found: {leaks}"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.parametrize("log_args", [["--log-format", "json", "--log-level", "debug"], []],
                         ids=["json-debug", "default"])  # fmt: skip
def test_no_secret_or_prompt_anywhere(backend, log_args, request, gateway_factory, fake, tmp_path):
    data = base_config(fake)
    data["server"] = {"master_key": MASTER}
    dsn = None
    if backend == "postgres":
        dsn = request.getfixturevalue("postgres_dsn")
        data["ledger"] = {"backend": "postgres", "dsn": dsn}
    gw = gateway_factory(data, args=log_args)
    vkey, bodies = traffic(gw, fake)
    sources = exposed(gw, bodies)
    gw.stop()  # flushes the ledger
    sources["logs"] = gw.output()
    sources["ledger"] = sqlite_ledger_text(gw.ledger_path) if dsn is None else postgres_ledger_text(dsn)
    assert "acme" in sources["ledger"] and "fakeai" in sources["ledger"]
    if log_args:
        assert (
            '"path": "/v1/chat/completions"' in sources["logs"] or "/v1/chat/completions" in sources["logs"]
        )
    secrets = {"provider key": PROVIDER_SECRET, "master key": MASTER, "virtual key": vkey,
               "forged key": FORGED, "prompt": PROMPT}  # fmt: skip
    assert_clean(sources, secrets)


def test_prompt_text_is_logged_only_when_configured(gateway_factory, fake):
    data = base_config(fake)
    data["server"] = {"master_key": MASTER}
    data["log_prompts"] = True
    gw = gateway_factory(data, args=["--log-format", "json", "--log-level", "info"])
    vkey, _ = traffic(gw, fake)
    gw.stop()
    logs = gw.output()
    assert PROMPT in logs  # the grep works: with log_prompts the prompt is there …
    assert_clean({"logs": logs}, {"provider key": PROVIDER_SECRET, "master key": MASTER, "virtual key": vkey})
