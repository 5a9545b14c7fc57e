"""Virtual keys over HTTP: the admin API, the `thrifty keys` CLI, and what clients may do with a key."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time

import httpx
import openai
import pytest

from tests.conftest import base_config

pytestmark = pytest.mark.e2e
MASTER = "mk-test-master-key-0123456789"
ADMIN = {"authorization": f"Bearer {MASTER}"}


@pytest.fixture
def keyed(gateway_factory, fake):
    config = base_config(fake)
    config["server"] = {"master_key": "${THRIFTY_MASTER_KEY}"}
    config["tenancy"] = {"keys": {"cache_ttl_s": 0.2}}
    return gateway_factory(config, env={"THRIFTY_MASTER_KEY": MASTER})


def create(gw, **body) -> dict:
    r = httpx.post(gw.url + "/admin/keys", json=body, headers=ADMIN)
    assert r.status_code == 201, r.text
    return r.json()


def chat(gw, key: str | None, model: str = "gpt-4o") -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}]}
    return httpx.post(gw.base_url + "/chat/completions", json=body, headers=headers)


def test_admin_api_creates_lists_updates_and_revokes(keyed):
    key = create(keyed, tenant="team-a", name="ci", models=["gpt-4o"], budgets={"daily_usd": 5},
                 rate_limits={"rpm": 100}, metadata={"owner": "ana"})  # fmt: skip
    secret = key["key"]
    assert secret.startswith("sk-thr-") and key["id"].startswith("key_")
    assert key["tenant"] == "team-a" and key["models"] == ["gpt-4o"] and key["budgets"]["daily_usd"] == 5

    shown = httpx.get(f"{keyed.url}/admin/keys/{key['id']}", headers=ADMIN).json()
    assert "key" not in shown and secret not in json.dumps(shown)
    assert shown["usage"] == {"daily": 0.0, "reserved": 0.0}
    listed = httpx.get(keyed.url + "/admin/keys?tenant=team-a", headers=ADMIN).json()["data"]
    assert [k["id"] for k in listed] == [key["id"]] and secret not in json.dumps(listed)

    patched = httpx.patch(f"{keyed.url}/admin/keys/{key['id']}", json={"budgets": {"total_usd": 50}},
                          headers=ADMIN).json()  # fmt: skip
    assert patched["budgets"] == {"daily_usd": 5, "monthly_usd": None, "total_usd": 50}

    assert chat(keyed, secret).status_code == 200
    revoked = httpx.delete(f"{keyed.url}/admin/keys/{key['id']}", headers=ADMIN)
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    refused = chat(keyed, secret)
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]


def test_admin_api_is_guarded_and_validates(keyed):
    secret = create(keyed, tenant="t")["key"]
    assert httpx.get(keyed.url + "/admin/keys").status_code == 401
    for token in ("wrong", secret):
        r = httpx.get(keyed.url + "/admin/keys", headers={"authorization": f"Bearer {token}"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "master_key_required"
    bad = httpx.post(keyed.url + "/admin/keys", json={"budgets": {"daily_usd": "lots"}}, headers=ADMIN)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "budgets.daily_usd"
    unknown = httpx.post(keyed.url + "/admin/keys", json={"tenant": "t", "colour": 1}, headers=ADMIN)
    assert unknown.status_code == 400 and "unknown field" in unknown.json()["error"]["message"]
    garbage = httpx.post(keyed.url + "/admin/keys", content=b"{nope", headers=ADMIN)
    assert garbage.status_code == 400 and garbage.json()["error"]["code"] == "invalid_json"
    missing = httpx.delete(keyed.url + "/admin/keys/key_nope", headers=ADMIN)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "key_not_found"


def test_clients_need_a_valid_key_and_keep_to_their_models(keyed):
    limited = create(keyed, tenant="t", models=["gpt-4o-mini"])["key"]
    assert chat(keyed, None).status_code == 401
    assert chat(keyed, "sk-thr-made-up-key-that-does-not-exist").status_code == 401
    assert chat(keyed, MASTER).status_code == 200
    assert chat(keyed, limited, "gpt-4o-mini").status_code == 200
    denied = chat(keyed, limited, "gpt-4o")
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "model_not_allowed"
    listed = httpx.get(keyed.base_url + "/models", headers={"authorization": f"Bearer {limited}"}).json()
    assert [m["id"] for m in listed["data"]] == ["gpt-4o-mini"]  # only what the key may ask for
    everything = httpx.get(keyed.base_url + "/models", headers={"authorization": f"Bearer {MASTER}"}).json()
    assert len(everything["data"]) > 1
    as_limited = {"authorization": f"Bearer {limited}"}
    assert httpx.get(keyed.base_url + "/models/gpt-4o-mini", headers=as_limited).status_code == 200
    assert httpx.get(keyed.base_url + "/models/gpt-4o", headers=as_limited).status_code == 404
    expiring = create(keyed, tenant="t", expires_in_s=0.5)["key"]
    assert chat(keyed, expiring).status_code == 200
    time.sleep(0.8)
    expired = chat(keyed, expiring)
    assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]


def test_openai_sdk_with_a_virtual_key_and_tenant_in_ledger(keyed):
    from tests.conftest import ledger_rows

    key = create(keyed, tenant="team-sdk")
    client = openai.OpenAI(base_url=keyed.base_url, api_key=key["key"], max_retries=0)
    answer = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "echo: hi"
    rows = ledger_rows(keyed.ledger_path, expect=1)
    assert rows[-1]["tenant_id"] == "team-sdk" and rows[-1]["key_id"] == key["id"]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(
            base_url=keyed.base_url, api_key="sk-thr-bogus-0000000000", max_retries=0
        ).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])


def test_keys_are_stored_hashed(keyed):
    secret = create(keyed, tenant="t")["key"]
    path = keyed.ledger_path.parent / "thrifty-keys.db"
    conn = sqlite3.connect(path)
    try:
        dump = "\n".join(conn.iterdump())
    finally:
        conn.close()
    assert "virtual_keys" in dump
    assert secret not in dump and secret[len("sk-thr-") :] not in dump


def _cli(gw, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "THRIFTY_MASTER_KEY": MASTER, "THRIFTY_URL": gw.url}
    return subprocess.run([sys.executable, "-m", "thrifty.cli", "keys", *args], env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_cli_create_list_update_revoke(keyed):
    made = _cli(keyed, "create", "--tenant", "team-cli", "--model", "gpt-4o", "--daily-usd", "2",
                "--rpm", "30", "--expires-in", "30d", "--meta", "owner=bo", "--json")  # fmt: skip
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert key["budgets"]["daily_usd"] == 2 and key["rate_limits"]["rpm"] == 30
    assert key["metadata"] == {"owner": "bo"} and key["expires_at"] > time.time() + 29 * 86400
    assert chat(keyed, key["key"]).status_code == 200

    listed = _cli(keyed, "list", "--tenant", "team-cli")
    assert listed.returncode == 0 and key["id"] in listed.stdout and key["key"] not in listed.stdout
    updated = _cli(keyed, "update", key["id"], "--tpm", "5000", "--all-models")
    assert updated.returncode == 0 and "tpm 5000" in updated.stdout and "models=all" in updated.stdout
    revoked = _cli(keyed, "revoke", key["id"])
    assert revoked.returncode == 0 and "REVOKED" in revoked.stdout
    assert chat(keyed, key["key"]).status_code == 401

    no_master = subprocess.run([sys.executable, "-m", "thrifty.cli", "keys", "--url", keyed.url, "list"],
                               env={k: v for k, v in os.environ.items() if k != "THRIFTY_MASTER_KEY"},
                               capture_output=True, text=True, timeout=60)  # fmt: skip
    assert no_master.returncode != 0 and "THRIFTY_MASTER_KEY" in no_master.stderr
    missing = _cli(keyed, "revoke", "key_missing")
    assert missing.returncode == 1 and "404" in missing.stderr


def test_expiries_no_date_can_hold_are_refused_and_stored_ones_still_list(keyed):
    for body, param in [({"expires_at": 99999999999999999999999}, "expires_at"),
                        ({"expires_at": 253402300800}, "expires_at"), ({"expires_at": -1}, "expires_at"),
                        ({"expires_in_s": 99999999999999999999 * 86400}, "expires_in_s")]:  # fmt: skip
        r = httpx.post(keyed.url + "/admin/keys", json={"tenant": "t-exp", **body}, headers=ADMIN)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, (body, r.text)
    key = create(keyed, tenant="t-exp", expires_at=253402300799)  # 9999-12-31T23:59:59Z is fine
    r = httpx.patch(f"{keyed.url}/admin/keys/{key['id']}", json={"expires_at": 1e30}, headers=ADMIN)
    assert r.status_code == 400 and r.json()["error"]["param"] == "expires_at"
    assert (
        httpx.get(keyed.url + "/admin/keys?tenant=t-exp", headers=ADMIN).json()["data"][0]["id"] == key["id"]
    )

    refused = _cli(keyed, "create", "--tenant", "t-exp", "--expires-in", "99999999999999999999d")
    assert refused.returncode == 2 and "--expires-in" in refused.stderr and "Traceback" not in refused.stderr
    listed = _cli(keyed, "list", "--tenant", "t-exp")
    assert listed.returncode == 0 and "expires: 9999-12-31 23:59" in listed.stdout, listed.stderr

    # a key stored before the API refused such values must still list
    conn = sqlite3.connect(keyed.ledger_path.parent / "thrifty-keys.db")
    try:
        with conn:
            conn.execute("UPDATE virtual_keys SET expires_at = 8.64e24 WHERE id = ?", (key["id"],))
    finally:
        conn.close()
    later = create(keyed, tenant="t-exp")
    listed = _cli(keyed, "list", "--tenant", "t-exp")
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    assert key["id"] in listed.stdout and later["id"] in listed.stdout


def test_cli_with_a_malformed_url_is_a_usage_error(keyed):
    result = _cli(keyed, "--url", "notaurl", "list")
    assert result.returncode == 2 and "--url" in result.stderr and "Traceback" not in result.stderr


def test_a_key_never_shares_the_master_keys_tenant(keyed):
    """Files, batches and cached answers are scoped by tenant; the master key's is "default". A key made
    without a tenant used to get "default" too, and read the administrator's files."""
    own = create(keyed, name="no tenant given")
    assert own["tenant"] == own["id"]  # a tenant of its own
    for body in ({"tenant": "default"}, {"tenant": "default", "name": "x"}):
        r = httpx.post(keyed.url + "/admin/keys", json=body, headers=ADMIN)
        assert r.status_code == 400 and r.json()["error"]["param"] == "tenant", r.text
    r = httpx.patch(f"{keyed.url}/admin/keys/{own['id']}", json={"tenant": "default"}, headers=ADMIN)
    assert r.status_code == 400 and r.json()["error"]["param"] == "tenant"

    master = openai.OpenAI(base_url=keyed.base_url, api_key=MASTER)
    uploaded = master.files.create(file=("in.jsonl", b'{"custom_id": "a"}\n'), purpose="batch")
    client = openai.OpenAI(base_url=keyed.base_url, api_key=own["key"])
    assert [f.id for f in client.files.list()] == []
    with pytest.raises(openai.NotFoundError):
        client.files.content(uploaded.id)
    assert uploaded.id in [f.id for f in master.files.list()]
