"""`thrifty serve --log-format json`: one JSON object per line, request ids, no secrets or prompts."""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.conftest import PROVIDER_SECRET, base_config

pytestmark = pytest.mark.e2e
MASTER = "sk-master-logs-0123456789"
PROMPT = "my-very-private-prompt-text"


def access_lines(output: str) -> list[dict]:
    lines = [orjson.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("logger") == "thrifty.access"]


def run(gateway_factory, fake, *, log_prompts: bool) -> tuple[list[dict], str, str, str]:
    config = base_config(fake)
    config["server"] = {"master_key": MASTER}
    config["log_prompts"] = log_prompts
    gw = gateway_factory(config, args=["--log-format", "json", "--log-level", "info"])
    resp = httpx.post(
        gw.base_url + "/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": PROMPT}]},
        headers={"authorization": f"Bearer {MASTER}", "x-request-id": "client-id-42"},
    )
    assert resp.status_code == 200
    anonymous = httpx.get(gw.base_url + "/models")
    assert anonymous.status_code == 401
    gw.stop()
    output = gw.output()
    assert resp.headers["x-client-request-id"] == "client-id-42"
    return access_lines(output), output, anonymous.headers["x-request-id"], resp.headers["x-request-id"]


def test_json_access_lines_with_request_ids_and_no_secrets(gateway_factory, fake):
    lines, output, anonymous_id, chat_id = run(gateway_factory, fake, log_prompts=False)
    chat = [line for line in lines if line["path"] == "/v1/chat/completions"]
    assert len(chat) == 1
    assert chat[0]["request_id"] == chat_id and chat[0]["client_request_id"] == "client-id-42"
    assert chat[0]["status"] == 200
    assert chat[0]["model"] == "gpt-4o" and chat[0]["cost_usd"] > 0 and chat[0]["duration_ms"] > 0
    denied = [line for line in lines if line["path"] == "/v1/models"]
    assert denied[0]["status"] == 401 and denied[0]["request_id"] == anonymous_id
    for secret in (MASTER, PROVIDER_SECRET, PROMPT):
        assert secret not in output


def test_log_prompts_opt_in(gateway_factory, fake):
    lines, output, _, _ = run(gateway_factory, fake, log_prompts=True)
    chat = [line for line in lines if line["path"] == "/v1/chat/completions"]
    assert PROMPT in chat[0]["request_body"]
    assert MASTER not in output and PROVIDER_SECRET not in output
