"""The local tier's speed, and what the gateway adds on top of it.

    python benchmarks/local_tier.py [--requests 20] [--max-tokens 32] [--model-path FILE.gguf]

Starts one llama.cpp server (`python -m llama_cpp.server`, the bundled SmolLM2-135M-Instruct Q4_1 unless
--model-path is given) under thrifty's own ChildSupervisor, and one `thrifty serve` whose `local` provider
points at that server (`start: false`). Then sends the same chat request (temperature 0, `max_tokens`)
alternately straight to the llama.cpp server (the baseline) and through the gateway, one at a time, and
prints for each path: latency p50/p95, generated tokens/s (completion tokens / latency, median), and the
gateway's overhead as the ratio of its p50 latency to the direct p50 (1.00 = no overhead) with the
absolute difference in milliseconds. Needs the local runtime (scripts/install-local.sh).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from thrifty.providers.local import BUNDLED_MODEL, server_command
from thrifty.providers.supervisor import ChildSpec, ChildSupervisor, free_port

PROMPT = [{"role": "user", "content": "Name three colours of the rainbow and say one thing about each."}]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def start_gateway(model_url: str, tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    config = {
        "providers": {"llama": {"type": "local", "start": False, "base_url": model_url, "auto_models": True}},
        "ledger": {"path": str(tmp / "ledger.db")},
    }
    path = tmp / "thrifty.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "thrifty.cli", "serve", "--config", str(path), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url + "/v1"
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("thrifty serve did not come up")


def one(client: httpx.Client, base_url: str, max_tokens: int) -> tuple[float, int]:
    body = {"model": BUNDLED_MODEL, "messages": PROMPT, "max_tokens": max_tokens, "temperature": 0}
    started = time.perf_counter()
    response = client.post(base_url + "/chat/completions", json=body, timeout=300)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed, int(response.json()["usage"]["completion_tokens"])


def measure(direct: str, gateway: str, requests: int, max_tokens: int) -> dict[str, list[tuple[float, int]]]:
    runs: dict[str, list[tuple[float, int]]] = {"direct": [], "gateway": []}
    with httpx.Client() as client:
        for url in (direct, gateway, direct, gateway):  # warm-up: load caches and connections
            one(client, url, max_tokens)
        for i in range(requests):  # alternate, so load on the machine hits both paths alike
            order = (
                (("direct", direct), ("gateway", gateway))
                if i % 2 == 0
                else (("gateway", gateway), ("direct", direct))
            )
            for name, url in order:
                runs[name].append(one(client, url, max_tokens))
    return runs


def report(runs: dict[str, list[tuple[float, int]]]) -> None:
    p50 = {}
    print(f"{'path':8} {'n':>3} {'p50 ms':>9} {'p95 ms':>9} {'tokens/s':>9} {'tokens':>7}")
    for name, samples in runs.items():
        latencies = [s[0] * 1000 for s in samples]
        rates = [s[1] / s[0] for s in samples if s[0] > 0]
        p50[name] = percentile(latencies, 0.5)
        print(
            f"{name:8} {len(samples):3d} {p50[name]:9.1f} {percentile(latencies, 0.95):9.1f} "
            f"{statistics.median(rates):9.1f} {statistics.median(s[1] for s in samples):7.0f}"
        )
    ratio, extra = p50["gateway"] / p50["direct"], p50["gateway"] - p50["direct"]
    print(f"gateway overhead: p50 ratio {ratio:.3f} (gateway / direct), {extra:+.1f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--model-path", default=None)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    from thrifty.config import ProviderConfig

    conf = ProviderConfig(
        type="local", model_path=args.model_path, model_alias=BUNDLED_MODEL, n_threads=args.threads
    )
    supervisor = ChildSupervisor("llama.cpp", ChildSpec(command=lambda port: server_command(conf, port)))
    gateway = None
    try:
        direct = await supervisor.wait_ready(300) + "/v1"
        with tempfile.TemporaryDirectory() as tmp:
            # blocking work runs in threads: the supervisor's health checks live on this event loop
            gateway, via = await asyncio.to_thread(start_gateway, direct, Path(tmp))
            print(
                f"model: {conf.model_path or 'bundled SmolLM2-135M-Instruct Q4_1'}; "
                f"{args.requests} requests per path, max_tokens={args.max_tokens}, cpus={os.cpu_count()}"
            )
            runs = await asyncio.to_thread(measure, direct, via, args.requests, args.max_tokens)
            report(runs)
    finally:
        if gateway is not None:
            gateway.send_signal(signal.SIGTERM)
            gateway.wait(30)
        await supervisor.stop()


if __name__ == "__main__":
    asyncio.run(main())
