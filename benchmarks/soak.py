"""Soak under provider faults: a fixed-length closed-loop run through `thrifty serve` while the fake
provider fails a share of calls at random (5xx, 429, stalls past the read timeout, dropped connections).

The model has two deployments (primary, then backup) and a fallback model, so a client should never see
a failure. Part of the clients use a virtual key with a small total budget that runs out during the run:
their budget refusals are expected, and the figure printed is how far the ledger's spend for that key
went over its budget (at most one request's worst-case cost). At the end the gateway is stopped with
SIGTERM and the ledger is read back: every answered request must have exactly one final row.

    python benchmarks/soak.py --seconds 60 --fail-rate 0.2 --clients 16

Prints: requests sent, succeeded, failed, refused by the budget, ledger rows (final rows == succeeded),
faults injected by kind, budget overspend, and the gateway's RSS at start and end (and its peak). Exits
non-zero when a client saw a failure or an answer has no final ledger row. `--json` prints the figures
as one JSON object instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from thrifty.pricing.catalog import Catalog
from thrifty.pricing.tokens import TokenCounter
from thrifty.testing.fake_provider import FakeProvider

MASTER = "sk-soak-master-key"
MODEL = "soak"
PRICE_MODEL = "gpt-4o"
MAX_TOKENS = 64
BUDGET_USD = 0.01


@dataclass
class Figures:
    seconds: float
    fail_rate: float
    clients: int
    sent: int = 0
    succeeded: int = 0
    failed: int = 0
    refused_budget: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    faults_injected: dict[str, int] = field(default_factory=dict)
    provider_calls: int = 0
    ledger_rows: int = 0
    ledger_final_rows: int = 0
    answers_without_row: int = 0
    budget_usd: float = BUDGET_USD
    budget_spent_usd: float = 0.0
    budget_overspend_usd: float = 0.0
    worst_case_usd: float = 0.0
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    rss_peak_mb: float = 0.0
    ids: set[str] = field(default_factory=set, repr=False)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.answers_without_row == 0 and self.ledger_final_rows == self.succeeded


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def gateway_config(fake: FakeProvider, ledger: dict[str, Any], read_timeout_s: float) -> dict[str, Any]:
    timeouts = {"connect": 1.0, "first_byte": read_timeout_s, "total": 10.0}
    provider = {"type": "openai", "base_url": fake.openai_base_url, "api_key": "sk-soak-provider",
                "timeouts": timeouts}  # fmt: skip
    return {
        "server": {"master_key": MASTER},
        "providers": {"fake": provider},
        "models": {
            MODEL: {
                "price": PRICE_MODEL,
                "deployments": [
                    {"provider": "fake", "model": "primary", "priority": 0},
                    {"provider": "fake", "model": "backup", "priority": 1},
                ],
                "fallbacks": ["soak-fallback"],
            },
            "soak-fallback": {
                "price": PRICE_MODEL,
                "deployments": [{"provider": "fake", "model": "fallback"}],
            },
        },
        "retry": {"max_retries": 3, "backoff_base_s": 0.01, "backoff_max_s": 0.1, "retry_after_max_s": 1},
        "breaker": {"failure_threshold": 8, "cooldown_s": 1.0},
        "ledger": ledger,
    }


def start_gateway(config: dict[str, Any], workdir: Path) -> tuple[subprocess.Popen, str]:
    path = workdir / "soak.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
    cmd = [sys.executable, "-m", "thrifty.cli", "serve", "--config", str(path), "--port", str(port)]
    with open(workdir / "gateway.log", "wb") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(cmd, env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited: {(workdir / 'gateway.log').read_text()[-2000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise TimeoutError("gateway did not start")


def messages(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Soak question {i}: name three prime numbers above {i}."}]


def worst_case() -> float:
    """What the gateway reserves for one request: local prompt count (+1 per message) and max_tokens."""
    price = Catalog.bundled().get(PRICE_MODEL)
    msgs = messages(10**6)
    prompt = TokenCounter().count_messages(msgs) + len(msgs)
    return (prompt * price.input + MAX_TOKENS * price.output) / 1e6


async def client_loop(
    client: httpx.AsyncClient, url: str, key: str, figures: Figures, stop: float, counter: list[int],
    budget_key: bool,
) -> None:  # fmt: skip
    headers = {"authorization": f"Bearer {key}"}
    while time.monotonic() < stop:
        counter[0] += 1
        i = counter[0]
        figures.sent += 1
        body = {"model": MODEL, "max_tokens": MAX_TOKENS, "messages": messages(i)}
        try:
            r = await client.post(url + "/v1/chat/completions", json=body, headers=headers)
        except httpx.HTTPError as exc:
            figures.failed += 1
            kind = type(exc).__name__
            figures.failures[kind] = figures.failures.get(kind, 0) + 1
            continue
        if r.status_code == 200:
            figures.succeeded += 1
            figures.ids.add(r.headers["x-thrifty-request-id"])
        elif budget_key and r.status_code == 429 and r.json()["error"].get("code") == "budget_exceeded":
            figures.refused_budget += 1
        else:
            figures.failed += 1
            kind = f"http_{r.status_code}"
            figures.failures[kind] = figures.failures.get(kind, 0) + 1


async def drive(url: str, keys: tuple[str, str], figures: Figures, seconds: float, pid: int) -> None:
    stop = time.monotonic() + seconds
    counter = [0]
    limits = httpx.Limits(max_connections=figures.clients + 4)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        budget_clients = max(1, figures.clients // 8)
        tasks = [
            asyncio.create_task(
                client_loop(client, url, keys[i < budget_clients], figures, stop, counter, i < budget_clients)
            )
            for i in range(figures.clients)
        ]
        while not all(t.done() for t in tasks):
            figures.rss_peak_mb = max(figures.rss_peak_mb, rss_mb(pid))
            await asyncio.sleep(0.5)
        await asyncio.gather(*tasks)


def read_ledger(ledger: dict[str, Any]) -> list[dict[str, Any]]:
    sql = "SELECT request_id, key_id, final, cost_usd FROM ledger"
    if ledger["backend"] == "postgres":
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(ledger["dsn"]) as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(sql).fetchall()
    conn = sqlite3.connect(ledger["path"])
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql)]
    finally:
        conn.close()


def create_key(url: str, tenant: str, budgets: dict[str, float] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"tenant": tenant}
    if budgets:
        body["budgets"] = budgets
    r = httpx.post(url + "/admin/keys", json=body, headers={"authorization": f"Bearer {MASTER}"}, timeout=30)
    r.raise_for_status()
    return r.json()


def soak(seconds: float, fail_rate: float, clients: int, postgres_dsn: str | None, workdir: Path) -> Figures:
    figures = Figures(seconds=seconds, fail_rate=fail_rate, clients=clients, worst_case_usd=worst_case())
    ledger: dict[str, Any] = {"backend": "sqlite", "path": str(workdir / "ledger.db")}
    if postgres_dsn:
        ledger = {"backend": "postgres", "dsn": postgres_dsn}
    read_timeout = 0.5
    with FakeProvider() as fake:
        fake.set_default(
            latency_ms=5, fail_rate=fail_rate, fail_timeout_ms=read_timeout * 1000 * 3, fail_seed=7
        )
        proc, url = start_gateway(gateway_config(fake, ledger, read_timeout), workdir)
        try:
            traffic = create_key(url, "soak")
            budgeted = create_key(url, "soak-budget", {"total_usd": BUDGET_USD})
            auth = {"authorization": f"Bearer {traffic['key']}"}
            warm = httpx.post(url + "/v1/chat/completions", headers=auth,
                              json={"model": MODEL, "messages": messages(0)}, timeout=60)  # fmt: skip
            figures.sent += 1
            if warm.status_code == 200:
                figures.succeeded += 1
                figures.ids.add(warm.headers["x-thrifty-request-id"])
            else:
                figures.failed += 1
            figures.rss_start_mb = rss_mb(proc.pid)
            asyncio.run(drive(url, (traffic["key"], budgeted["key"]), figures, seconds, proc.pid))
            figures.rss_end_mb = rss_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        figures.faults_injected = dict(sorted(fake.state.faults.items()))
        figures.provider_calls = len(fake.state.requests("/v1/chat/completions"))
    rows = read_ledger(ledger)
    final = [r["request_id"] for r in rows if r["final"] == 1]
    figures.ledger_rows = len(rows)
    figures.ledger_final_rows = len(final)
    figures.answers_without_row = len(figures.ids - set(final))
    figures.budget_spent_usd = sum(r["cost_usd"] for r in rows if r["key_id"] == budgeted["id"])
    figures.budget_overspend_usd = max(0.0, figures.budget_spent_usd - BUDGET_USD)
    return figures


def report(f: Figures) -> str:
    injected = sum(f.faults_injected.values())
    kinds = ", ".join(f"{k} {v}" for k, v in f.faults_injected.items()) or "none"
    failures = ", ".join(f"{k} {v}" for k, v in f.failures.items()) or "none"
    return "\n".join([
        f"soak: {f.seconds:.0f} s, {f.clients} clients, provider fail rate {f.fail_rate:.0%}",
        f"  requests sent        {f.sent}",
        f"  succeeded            {f.succeeded}",
        f"  failed               {f.failed} ({failures})",
        f"  refused by budget    {f.refused_budget} (expected: that key's budget ran out)",
        f"  provider calls       {f.provider_calls}, faults injected {injected} "
        f"({injected / max(f.provider_calls, 1):.1%}): {kinds}",
        f"  ledger rows written  {f.ledger_rows} (final rows {f.ledger_final_rows}, succeeded {f.succeeded}, "
        f"answers without a row {f.answers_without_row})",
        f"  budget overspend     ${f.budget_overspend_usd:.6f} (spent ${f.budget_spent_usd:.6f} of "
        f"${f.budget_usd:.4f}; one request's worst case ${f.worst_case_usd:.6f})",
        f"  gateway RSS          start {f.rss_start_mb:.1f} MB, end {f.rss_end_mb:.1f} MB, "
        f"peak {f.rss_peak_mb:.1f} MB (end/start {f.rss_end_mb / max(f.rss_start_mb, 1e-9):.2f}x)",
        f"  result               {'OK' if f.ok else 'FAILED'}",
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--fail-rate", type=float, default=0.2)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--postgres-dsn", help="Write the ledger to this Postgres instead of SQLite.")
    parser.add_argument("--json", action="store_true", help="Print the figures as one JSON object.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="thrifty-soak-") as tmp:
        figures = soak(args.seconds, args.fail_rate, args.clients, args.postgres_dsn, Path(tmp))
    if args.json:
        data = asdict(figures)
        data.pop("ids")
        data["ok"] = figures.ok
        print(json.dumps(data))
    else:
        print(report(figures))
    sys.exit(0 if figures.ok else 1)


if __name__ == "__main__":
    main()
