"""Exact-hit path through the HTTP server vs a miss to a zero-latency provider, same run.

    python benchmarks/cache_http.py [--requests 500]

Starts the fake provider (0 ms latency) and two `thrifty serve` processes in front of it: one with the
cache on (SQLite), one with it off. Sends sequential requests over keep-alive connections, the
three kinds interleaved:
  - hit:   the same question again and again (exact hits after the first),
  - miss:  a new question every time, through the caching gateway (lookup + upstream + store),
  - plain: a new question every time, through the gateway without a cache.
Prints p50/p99 of each, the p50 a hit adds over/saves against a miss, the ratio hit/miss, and what the
cache adds to a miss (miss − plain).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code < 500:
                return
        time.sleep(0.1)
    raise TimeoutError(url)


@contextlib.contextmanager
def process(cmd: list[str], health: str, cwd: str) -> Iterator[None]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "THRIFTY_"))}
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_up(health)
        yield
    finally:
        proc.terminate()
        proc.wait(30)


def gateway_cmd(tmp: str, name: str, upstream: str, cache: bool) -> tuple[list[str], str]:
    port = free_port()
    config = {
        "providers": {"fake": {"type": "openai", "base_url": upstream, "api_key": "sk-fake"}},
        "models": {"gpt-4o": {"deployments": [{"provider": "fake"}]}},
        "ledger": {"path": f"{tmp}/{name}-ledger.db"},
        "cache": {"enabled": cache, "path": f"{tmp}/{name}-cache.db"},
    }
    path = Path(tmp) / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "thrifty.cli", "serve", "--config", str(path), "--port", str(port)]
    return cmd, f"http://127.0.0.1:{port}"


def run(cached_url: str, plain_url: str, n: int) -> dict[str, list[float]]:
    """The three series interleaved request by request, so load changes hit them alike."""
    series: dict[str, list[float]] = {"hit": [], "miss": [], "plain": []}
    with (
        httpx.Client(base_url=cached_url + "/v1", timeout=30) as cached,
        httpx.Client(base_url=plain_url + "/v1", timeout=30) as plain,
    ):
        for i in range(n + 20):  # 20 warm-up rounds
            for name, client, text in (
                ("hit", cached, "What is the boiling point of water at sea level?"),
                ("miss", cached, f"miss question {i}"),
                ("plain", plain, f"plain question {i}"),
            ):
                body = {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}
                t = time.perf_counter()
                r = client.post("/chat/completions", json=body)
                elapsed = (time.perf_counter() - t) * 1000
                assert r.status_code == 200, r.text
                if i >= 20:
                    series[name].append(elapsed)
                    if name == "hit":
                        assert r.headers["x-thrifty-cache"] == "hit-exact"
    return series


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fake_port = free_port()
        fake = [
            sys.executable,
            "-m",
            "thrifty.testing.fake_provider",
            "--port",
            str(fake_port),
            "--latency-ms",
            "0",
        ]
        upstream = f"http://127.0.0.1:{fake_port}/v1"
        cached_cmd, cached_url = gateway_cmd(tmp, "cached", upstream, cache=True)
        plain_cmd, plain_url = gateway_cmd(tmp, "plain", upstream, cache=False)
        with (
            process(fake, upstream + "/models", tmp),
            process(cached_cmd, cached_url + "/healthz", tmp),
            process(plain_cmd, plain_url + "/healthz", tmp),
        ):
            series = run(cached_url, plain_url, args.requests)
    p50 = {name: float(np.percentile(v, 50)) for name, v in series.items()}
    for name, values in series.items():
        p99 = float(np.percentile(values, 99))
        print(f"{name:6s} p50 {p50[name]:7.3f} ms  p99 {p99:7.3f} ms  ({len(values)} requests)")
    print(f"exact hit vs miss to a 0 ms provider: {p50['hit'] - p50['miss']:+.3f} ms p50 "
          f"(ratio hit/miss {p50['hit'] / p50['miss']:.3f})")  # fmt: skip
    print(f"cache added to a miss (miss − plain): {p50['miss'] - p50['plain']:+.3f} ms p50 "
          f"(ratio miss/plain {p50['miss'] / p50['plain']:.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
