"""The `thrifty` command line: config check, models, ledger tail, env-only defaults, shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import httpx
import openai
import pytest
import yaml

from tests.conftest import base_config, ledger_rows
from tests.support.servers import free_port, wait_http

pytestmark = pytest.mark.e2e


def thrifty(*args: str, env: dict | None = None, cwd=None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "thrifty.cli", *args],
        capture_output=True,
        text=True,
        env=full,
        cwd=cwd,
        timeout=60,
    )


def test_config_check_lists_every_error_with_its_key_path(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "servr": {"port": 1},
                "providers": {"p": {"type": "openai", "base_url": "${NOT_SET_ANYWHERE_VAR}"}},
            }
        )
    )
    r = thrifty("config", "check", str(bad))
    assert r.returncode == 2
    assert "providers.p.base_url: environment variable NOT_SET_ANYWHERE_VAR is not set" in r.stderr
    bad.write_text(
        yaml.safe_dump(
            {
                "servr": {"port": 1},
                "server": {"port": "high"},
                "providers": {"p": {"type": "openai", "colour": "red"}},
            }
        )
    )
    r = thrifty("config", "check", str(bad))
    assert r.returncode == 2
    for expected in ("servr: unknown key", "server.port:", "providers.p.colour: unknown key"):
        assert expected in r.stderr
    bad.write_text(
        yaml.safe_dump(
            {
                "providers": {"p": {"type": "openai"}},
                "models": {"m": {"deployments": [{"provider": "q"}], "fallbacks": ["ghost"]}},
            }
        )
    )
    r = thrifty("config", "check", str(bad))
    assert "models.m.deployments.0.provider: unknown provider 'q'" in r.stderr
    assert "models.m.fallbacks.0: unknown model 'ghost'" in r.stderr


def test_config_check_ok_and_env_interpolation(tmp_path, fake):
    good = tmp_path / "good.yaml"
    config = base_config(fake)
    config["providers"]["fakeai"]["api_key"] = "${MY_PROVIDER_KEY}"
    good.write_text(yaml.safe_dump(config))
    r = thrifty("config", "check", str(good), env={"MY_PROVIDER_KEY": "k"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ok: 2 providers")


def test_models_lists_prices(tmp_path):
    r = thrifty("models", "--all")
    assert r.returncode == 0
    line = next(line for line in r.stdout.splitlines() if line.startswith("gpt-4o "))
    assert "2.500" in line and "10.000" in line
    for model in (
        "deepseek-v4-flash",
        "deepseek-reasoner",
        "deepseek-coder",
        "Qwen/Qwen3-8B",
        "Qwen/Qwen3-32B",
        "Qwen-MT-Turbo",
        "claude-sonnet-4-5",
        "gemini-2.5-flash",
        "mistral-small-latest",
        "llama-3.1-8b-instant",
    ):
        assert model in r.stdout


def test_env_only_defaults_then_ledger_tail_and_graceful_shutdown(tmp_path, fake):
    """No config file: OPENAI_BASE_URL/OPENAI_API_KEY configure the provider, every catalog OpenAI model
    is reachable by name, the ledger is a SQLite file in the working directory, and SIGTERM under load
    loses no ledger row."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "THRIFTY_"))}
    env.update({"OPENAI_API_KEY": "sk-env-key", "OPENAI_BASE_URL": fake.openai_base_url})
    proc = subprocess.Popen(
        [sys.executable, "-m", "thrifty.cli", "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc=proc)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        for model in ("gpt-4o", "gpt-4.1-nano", "o4-mini"):
            assert (
                client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": "env"}]
                ).model
                == model
            )
        assert fake.requests()[-1]["headers"]["authorization"] == "Bearer sk-env-key"
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(
                model="claude-sonnet-4-5", messages=[{"role": "user", "content": "x"}]
            )
        # load while we stop: every request that got an answer has its ledger row
        fake.set_default(latency_ms=100)
        answered: list[str] = []

        def one() -> None:
            try:
                r = httpx.post(
                    f"http://127.0.0.1:{port}/v1/chat/completions",
                    timeout=30,
                    json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "load"}]},
                )
                if r.status_code == 200:
                    answered.append(r.headers["x-request-id"])
            except httpx.HTTPError:
                pass

        threads = [threading.Thread(target=one) for _ in range(30)]
        for t in threads:
            t.start()
        while len(fake.requests()) < 3 + 15:
            pass
        proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join()
        assert proc.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM after a clean shutdown
    finally:
        if proc.poll() is None:
            proc.kill()
    assert answered, "no request was answered before shutdown"
    rows = ledger_rows(tmp_path / "thrifty-ledger.db")
    booked = {r["request_id"] for r in rows}
    assert set(answered) <= booked
    r = thrifty("ledger", "tail", "-n", "5", cwd=tmp_path)
    assert r.returncode == 0 and "gpt-4o-mini" in r.stdout
    r = thrifty("ledger", "tail", "-n", "2", "--json", cwd=tmp_path)
    assert len(r.stdout.strip().splitlines()) == 2


def test_serve_with_several_workers_shares_one_ledger(gateway_factory, fake):
    gw = gateway_factory(args=["--workers", "2"])
    client = openai.OpenAI(base_url=gw.base_url, api_key="x", max_retries=0)
    ids = []
    for i in range(20):
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"w{i}"}]
        )
        assert raw.parse().choices[0].message.content == f"echo: w{i}"
        ids.append(raw.headers["x-request-id"])
    rows = ledger_rows(gw.ledger_path, expect=20)
    assert set(ids) <= {r["request_id"] for r in rows}
