"""Gateway overhead: added latency (p50, p99) and sustained throughput vs calling the provider directly.

Starts the fake provider (`python -m thrifty.testing.fake_provider`, fixed upstream latency) and
`thrifty serve` in front of it as separate processes, then drives both with an open-loop async load
generator (requests are sent on a fixed schedule, latency counted from the scheduled send time, so a
slow server cannot hide its queueing), in the same run, and prints the figures side by side.

    python benchmarks/overhead.py --rate 500 --seconds 20 --upstream-ms 50

Targets (issue 2): at 500 req/s with a 50 ms upstream, added p50 <= 2 ms, p99 <= 10 ms, zero errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Summarise our Q3 numbers."}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, timeout: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            urllib.request.urlopen(url, timeout=1)
            return
        time.sleep(0.1)
    raise TimeoutError(url)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def open_loop(url: str, rate: float, seconds: float) -> dict[str, float]:
    """Send `rate` req/s for `seconds`; latency from each request's scheduled time."""
    latencies: list[float] = []
    errors = 0
    payload = json.dumps(BODY).encode()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(scheduled: float) -> None:
            nonlocal errors
            try:
                async with session.post(url, data=payload, headers={"content-type": "application/json"}) as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
                        return
            except aiohttp.ClientError:
                errors += 1
                return
            latencies.append((time.perf_counter() - scheduled) * 1000)

        start = time.perf_counter() + 0.1
        tasks = []
        total = int(rate * seconds)
        for i in range(total):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(scheduled)))
        await asyncio.gather(*tasks)
    return {
        "sent": total,
        "errors": errors,
        "p50": percentile(latencies, 0.5),
        "p99": percentile(latencies, 0.99),
        "max": max(latencies) if latencies else float("nan"),
    }


async def closed_loop(url: str, concurrency: int, seconds: float) -> float:
    """Sustained throughput: `concurrency` clients back to back; returns successful req/s."""
    payload = json.dumps(BODY).encode()
    done = 0
    deadline = time.perf_counter() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                async with session.post(url, data=payload, headers={"content-type": "application/json"}) as r:
                    await r.read()
                    done += r.status == 200

        started = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        return done / (time.perf_counter() - started)


def start(cmd: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=500)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--upstream-ms", type=float, default=50)
    ap.add_argument("--concurrency", type=int, default=64, help="clients for the throughput run")
    ap.add_argument("--workers", type=int, default=1, help="gateway worker processes")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="thrifty-bench-")
    fake_port, gw_port = free_port(), free_port()
    procs = [
        start(
            [
                sys.executable,
                "-m",
                "thrifty.testing.fake_provider",
                "--port",
                str(fake_port),
                "--latency-ms",
                str(args.upstream_ms),
            ]
        )
    ]
    config = Path(tmp, "bench.yaml")
    config.write_text(
        json.dumps(
            {
                "providers": {
                    "up": {"type": "openai", "base_url": f"http://127.0.0.1:{fake_port}/v1", "api_key": "k"}
                },
                "models": {"gpt-4o-mini": {"deployments": [{"provider": "up"}]}},
                "ledger": {"path": str(Path(tmp, "ledger.db"))},
            }
        )
    )
    env = {**os.environ, "THRIFTY_CONFIG": str(config)}
    procs.append(
        start(
            [
                sys.executable,
                "-m",
                "thrifty.cli",
                "serve",
                "--config",
                str(config),
                "--port",
                str(gw_port),
                "--workers",
                str(args.workers),
            ],
            env=env,
            cwd=tmp,
        )
    )
    try:
        wait_up(f"http://127.0.0.1:{fake_port}/v1/models")
        wait_up(f"http://127.0.0.1:{gw_port}/healthz")
        direct_url = f"http://127.0.0.1:{fake_port}/v1/chat/completions"
        gw_url = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
        asyncio.run(open_loop(gw_url, 100, 2))  # warm up both paths
        asyncio.run(open_loop(direct_url, 100, 1))
        direct = asyncio.run(open_loop(direct_url, args.rate, args.seconds))
        gateway = asyncio.run(open_loop(gw_url, args.rate, args.seconds))
        tput_direct = asyncio.run(closed_loop(direct_url, args.concurrency, args.seconds / 2))
        tput_gateway = asyncio.run(closed_loop(gw_url, args.concurrency, args.seconds / 2))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
    print(
        f"open loop: {args.rate:.0f} req/s for {args.seconds:.0f} s, "
        f"upstream latency {args.upstream_ms:.0f} ms"
    )
    print(f"{'':10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>7}")
    for name, r in (("direct", direct), ("gateway", gateway)):
        print(f"{name:10} {r['p50']:8.2f} {r['p99']:8.2f} {r['max']:8.2f} {r['errors']:7.0f}")
    print(
        f"added by gateway: p50 {gateway['p50'] - direct['p50']:+.2f} ms, "
        f"p99 {gateway['p99'] - direct['p99']:+.2f} ms "
        f"(ratio p50 {gateway['p50'] / direct['p50']:.3f}, p99 {gateway['p99'] / direct['p99']:.3f})"
    )
    print(
        f"throughput ({args.concurrency} clients): direct {tput_direct:.0f} req/s, "
        f"gateway {tput_gateway:.0f} req/s (ratio {tput_gateway / tput_direct:.3f})"
    )


if __name__ == "__main__":
    main()
