"""Billed tokens and cost of a realistic workload with each token lever off and on.

    python benchmarks/levers.py [--requests 120] [--rag 60] [--bursts 15] [--seed 7]

Replays three workloads through the real Gateway (library mode) against the fake provider started in
this process, once per lever setting, each run with a fresh provider cache and ledger:

1. support: requests sharing a ~2,000-token system prompt (tools too), different questions.
   Lever: provider prompt caching — Anthropic (claude-sonnet-4-5): automatic cache breakpoints off/on;
   OpenAI-style (gpt-4o-mini on 3 equal deployments): sticky routing off/on.
2. rag: questions over 10 retrieved passages (HotpotQA distractor from ../shared/data/compression
   when present, else synthetic passages). Lever: compression (normalise + extractive, ratio 0.5).
3. classify: bursts of 8 concurrent short classification requests sharing a ~400-token instruction.
   Levers: live micro-batching off/on; provider batch API (the same requests as one batch job).

Billed tokens come from the FAKE PROVIDER'S USAGE MODEL, not from a real provider: prompt tokens are
cl100k counts of the request, answers are echoes of the question (so output lengths are synthetic),
and cache hits follow `thrifty.testing.fake_prefix_cache` (OpenAI: ≥1,024-token prefixes in 128-token
steps, per deployment; Anthropic: at breakpoints, reads at 0.1×, writes at 1.25×). Costs are those
tokens priced with the bundled catalog, summed from the ledger. Quality is not measured here: see
`thrifty compress eval` for what compression keeps, and docs/prompt-caching-and-batching.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from thrifty import Gateway
from thrifty.config import parse
from thrifty.testing.fake_provider import FakeProvider

DATA = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "data"
    / "compression"
    / "hotpotqa_distractor.jsonl"
)
TOPICS = ["returns", "shipping", "warranty", "billing", "accounts", "repairs", "gift cards", "recalls"]
LABELS = ["positive", "negative", "neutral"]


@dataclass
class Totals:
    requests: int
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    cost: float


# ---------------------------------------------------------------------------------------- workloads


def support_system() -> str:
    lines = [
        "You are the customer support assistant of Acme Hardware. Answer in at most three sentences, "
        "cite the policy number you rely on, and never promise refunds beyond policy."
    ]
    for i in range(105):
        topic = TOPICS[i % len(TOPICS)]
        lines.append(
            f"Policy {i + 1} ({topic}): customers in region {i % 12} may ask about {topic}; items of class "
            f"{i % 9} are handled within {i % 30 + 1} business days; escalate disputes above ${50 + i * 5}."
        )
    return "\n".join(lines)


def _tool(name: str, description: str, arg: str) -> dict[str, Any]:
    schema = {"type": "object", "properties": {arg: {"type": "string"}}}
    return {"type": "function", "function": {"name": name, "description": description, "parameters": schema}}


SUPPORT_TOOLS = [
    _tool("lookup_order", "Find an order by its id.", "id"),
    _tool("open_ticket", "Open a ticket.", "text"),
]


def support_requests(model: str, n: int, rng: random.Random, tenants: int = 1) -> list[dict[str, Any]]:
    """`n` questions; with `tenants` > 1 each tenant has its own copy of the system prompt."""
    base = support_system()
    out = []
    for i in range(n):
        system = base if tenants == 1 else f"Store #{rng.randrange(tenants)}.\n{base}"
        topic = rng.choice(TOPICS)
        question = (
            f"Question {i}: I have a problem with {topic} for order A{rng.randint(1000, 9999)}. What now?"
        )
        out.append(
            {
                "model": model,
                "messages": [{"role": "system", "content": system}, {"role": "user", "content": question}],
                "tools": SUPPORT_TOOLS,
            }
        )
    return out


def rag_requests(n: int, rng: random.Random) -> tuple[list[dict[str, Any]], str]:
    rows: list[dict[str, Any]] = []
    source = "synthetic"
    if DATA.exists():
        with DATA.open() as f:
            for line in f:
                rows.append(orjson.loads(line))
                if len(rows) >= n:
                    break
        source = f"{DATA.name} (first {len(rows)} rows)"
    while len(rows) < n:
        i = len(rows)
        passages = [
            {
                "title": f"Doc {i}-{j}",
                "sentences": [f"Fact {k} about item {i}-{j} is {rng.random():.4f}." for k in range(6)],
            }
            for j in range(10)
        ]
        rows.append({"question": f"What is fact 3 about item {i}-4?", "passages": passages})
    out = []
    for row in rows:
        context = "\n\n".join(f"[{p['title']}]\n" + "".join(p["sentences"]) for p in row["passages"][:10])
        prompt = f"Answer from the passages.\n\nPassages:\n{context}\n\nQuestion: {row['question']}"
        out.append({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]})
    return out, source


def classify_system() -> str:
    rules = " ".join(
        f"Rule {i}: text mentioning {w} leans {LABELS[i % 3]} unless negated."
        for i, w in enumerate(["refund", "late", "broken", "love", "great", "slow", "cheap", "rude"] * 4)
    )
    return (
        "Classify the sentiment of the customer's message. "
        "Answer with one word: positive, negative or neutral. " + rules
    )


def classify_requests(bursts: int, rng: random.Random) -> list[list[dict[str, Any]]]:
    system = classify_system()
    words = ["arrived late", "works great", "box was broken", "fine I guess", "love it", "support was rude"]
    return [
        [
            {
                "model": "classify",
                "messages": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": f"Order {b}-{i}: it {rng.choice(words)}."},
                ],
            }
            for i in range(8)
        ]
        for b in range(bursts)
    ]


# ---------------------------------------------------------------------------------------- runs


def config(fakes: list[FakeProvider], ledger: Path, **sections: Any) -> dict[str, Any]:
    """Deployments a, b, c are three fake servers: each has its own prompt cache, like real ones."""
    providers: dict[str, Any] = {
        name: {"type": "openai", "base_url": fake.openai_base_url, "api_key": "sk-bench"}
        for name, fake in zip("abc", fakes, strict=True)
    }
    providers["claude"] = {
        "type": "anthropic",
        "base_url": fakes[0].anthropic_base_url,
        "api_key": "sk-bench",
    }
    data = {
        "providers": providers,
        "models": {
            "gpt-4o-mini": {"deployments": [{"provider": "a"}]},
            "pooled-mini": {"price": "gpt-4o-mini", "deployments": [{"provider": p} for p in "abc"]},
            "classify": {"price": "gpt-4o-mini", "deployments": [{"provider": "a", "model": "gpt-4o-mini"}]},
            "claude-sonnet-4-5": {"deployments": [{"provider": "claude"}]},
        },
        "ledger": {"path": str(ledger), "flush_interval_ms": 5},
    }
    data.update(sections)
    return data


def totals(ledger: Path) -> Totals:
    conn = sqlite3.connect(ledger)
    try:
        row = conn.execute(
            "SELECT COUNT(*), SUM(input_tokens), SUM(cached_input_tokens), SUM(output_tokens), SUM(cost_usd) "
            "FROM ledger"
        ).fetchone()
    finally:
        conn.close()
    return Totals(row[0], row[1] or 0, row[2] or 0, row[3] or 0, row[4] or 0.0)


async def run_sequential(gw: Gateway, requests: list[dict[str, Any]]) -> None:
    for body in requests:
        await gw.chat(body)


async def run_bursts(gw: Gateway, bursts: list[list[dict[str, Any]]]) -> None:
    for burst in bursts:
        await asyncio.gather(*(gw.chat(body) for body in burst))


async def run_batch_job(gw: Gateway, bursts: list[list[dict[str, Any]]], work: Path) -> None:
    from thrifty.batching.jobs import JobRunner, batch_object
    from thrifty.batching.store import BatchStore

    lines = [
        {
            "custom_id": f"c{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {**body, "model": "gpt-4o-mini"},
        }
        for i, body in enumerate(b for burst in bursts for b in burst)
    ]
    store = BatchStore(work / "batches.db")
    runner = JobRunner(gw, gw.config.batching.jobs, store)
    data = b"".join(orjson.dumps(line) + b"\n" for line in lines)
    file_id = store.add_file("default", data, "jobs.jsonl", "batch")["id"]
    batch = store.add_batch("default", None, batch_object(file_id, "/v1/chat/completions", "24h", None))
    await runner.start()
    runner.wake()
    while (store.batch(batch["id"]) or {}).get("status") not in ("completed", "failed", "cancelled"):
        await asyncio.sleep(0.02)
    await runner.aclose()
    status = store.batch(batch["id"])
    store.close()
    if status is None or status["status"] != "completed":
        raise SystemExit(f"batch job ended {status and status['status']}: {status and status.get('errors')}")


async def measure(fakes: list[FakeProvider], work: Path, name: str, sections: dict[str, Any], job) -> Totals:
    for fake in fakes:
        fake.reset()  # empty provider caches: every arm starts cold
    ledger = work / f"{name}.db"
    async with Gateway(parse(config(fakes, ledger, **sections), {})) as gw:
        await job(gw)
    return totals(ledger)


def ratio(on: float, off: float) -> str:
    return f"{on / off:6.3f}" if off else "   n/a"


def report(label: str, off: Totals, on: Totals) -> None:
    print(
        f"{label:44} {off.input_tokens:>8} {on.input_tokens:>8} {off.cached_tokens:>8} {on.cached_tokens:>8} "
        f"{off.output_tokens:>7} {on.output_tokens:>7} {off.cost:>9.5f} {on.cost:>9.5f} "
        f"{ratio(on.cost, off.cost)}"
    )


async def main(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    anthropic = support_requests("claude-sonnet-4-5", args.requests, rng)
    pooled = support_requests("pooled-mini", args.requests, rng, tenants=12)
    rag, rag_source = rag_requests(args.rag, rng)
    bursts = classify_requests(args.bursts, rng)
    no_compress = {"compression": {"normalize": {"enabled": False}}}
    live = {"batching": {"live": {"enabled": True, "models": ["classify"], "window_ms": 25, "max_items": 8}}}
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        fakes = [stack.enter_context(FakeProvider(prompt_cache=True)) for _ in range(3)]

        def seq(reqs):
            return lambda gw: run_sequential(gw, reqs)

        arms = [
            ("support, Anthropic: cache breakpoints", seq(anthropic),
             {"prompt_cache": {"auto_breakpoints": False}}, {}),
            ("support x12 stores, 3 OpenAI deps: sticky", seq(pooled),
             {"prompt_cache": {"sticky": False}}, {}),
            ("rag 10 passages: compression", seq(rag), no_compress,
             {"compression": {"extractive": {"enabled": True, "ratio": 0.5}}}),
            ("classify bursts of 8: live micro-batching", lambda gw: run_bursts(gw, bursts), {}, live),
        ]  # fmt: skip
        print(f"workload: {args.requests} support requests per provider, {args.rag} RAG prompts "
              f"({rag_source}), {args.bursts} bursts x 8 classifications; seed {args.seed}")  # fmt: skip
        print(
            "billed tokens: the fake provider's usage model (see module docstring); costs: bundled catalog\n"
        )
        print(
            f"{'workload: lever':44} {'in off':>8} {'in on':>8} {'cachd off':>8} {'cachd on':>8} "
            f"{'out off':>7} {'out on':>7} {'$ off':>9} {'$ on':>9} {'$ on/off'}"
        )
        results: dict[str, tuple[Totals, Totals]] = {}
        for label, job, off_sections, on_sections in arms:
            off = await measure(fakes, work, f"{len(results)}-off", off_sections, job)
            on = await measure(fakes, work, f"{len(results)}-on", on_sections, job)
            results[label] = (off, on)
            report(label, off, on)
        batch_on = await measure(fakes, work, "batch-api", {}, lambda gw: run_batch_job(gw, bursts, work))
        report("classify: provider batch API (vs live, off)", results[label][0], batch_on)
        off_all = sum(off.cost for off, _ in results.values())
        on_all = sum(on.cost for _, on in results.values())
        print(
            f"\nall live workloads, every lever on vs off: ${on_all:.5f} / ${off_all:.5f} = "
            f"{ratio(on_all, off_all)}"
        )


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=120, help="support requests per provider")
    parser.add_argument("--rag", type=int, default=60, help="RAG prompts")
    parser.add_argument("--bursts", type=int, default=15, help="bursts of 8 classification requests")
    parser.add_argument("--seed", type=int, default=7)
    asyncio.run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
