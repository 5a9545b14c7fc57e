"""Start `thrifty serve` as a real process on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise RuntimeError(f"server exited with {proc.returncode}: {out[-3000:]}")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not come up in {timeout}s")


@dataclass
class GatewayProcess:
    proc: subprocess.Popen
    port: int
    config_path: Path
    ledger_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def output(self) -> str:
        return self.proc.stdout.read().decode() if self.proc.stdout else ""


def start_gateway(
    tmp: Path,
    config: dict[str, Any],
    *,
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
    port: int | None = None,
) -> GatewayProcess:
    """Write `config` as YAML (ledger defaulting into `tmp`) and start `thrifty serve` on it."""
    config = dict(config)
    ledger = dict(config.get("ledger") or {})
    ledger.setdefault("path", str(tmp / "ledger.db"))
    config["ledger"] = ledger
    config_path = tmp / f"thrifty-{time.monotonic_ns()}.yaml"
    config_path.write_text(yaml.safe_dump(config))
    port = port or free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
    full_env.update(env or {})
    cmd = [
        sys.executable,
        "-m",
        "thrifty.cli",
        "serve",
        "--config",
        str(config_path),
        "--port",
        str(port),
        *(args or []),
    ]
    proc = subprocess.Popen(cmd, env=full_env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    gp = GatewayProcess(proc, port, config_path, Path(ledger["path"]))
    try:
        wait_http(gp.url + "/healthz", proc=proc)
    except Exception:
        gp.stop(signal.SIGKILL)
        raise
    return gp
