"""Router decision latency on one CPU core: rules router, learned router (embedding included).

Prints p50/p99 per decision and the ratio against a baseline measured in the same run: a bare
`embed_one` call of the bundled MiniLM embedder on the whole prompt (what a full-prompt embedding
router pays at least). Prompts: the MMLU and GSM8K prompts of ../shared/data/routing when present
(interleaved), else built-in samples. Learned routers: `--router FILE` (a trained router), else
routers trained here on the GSM8K file (or synthetic rows) — weight values do not change latency,
the feature pipeline does: with and without a truncated-prompt embedding.

    .venv/bin/python benchmarks/router_latency.py [--n 200] [--router FILE] [--embed-tokens 32]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, set before numpy loads
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "routing"
SAMPLES = [
    "Write a Python function that merges two sorted lists.",
    "A store sells pencils at $2 each. How many pencils can Maria buy with $17?",
    "Summarize the following paragraph in two sentences: the council met on Tuesday to discuss the budget.",
    "Translate 'the invoice is attached' into German.",
    "Hi! How are you today?",
]


def prompts(n: int) -> list[str]:
    from thrifty.routing.data import load_outcomes

    files = [DATA / "routellm_mmlu.jsonl", DATA / "routellm_gsm8k.jsonl"]
    if all(f.exists() for f in files):
        a, b = (load_outcomes(f).prompts for f in files)
        return [p for pair in zip(a, b, strict=False) for p in pair][:n]
    return [SAMPLES[i % len(SAMPLES)] + f" ({i})" for i in range(n)]


def timed(fn: Callable[[str], object], texts: list[str]) -> list[float]:
    for text in texts[:5]:
        fn(text)  # warm up
    out = []
    for text in texts:
        started = time.perf_counter()
        fn(text)
        out.append((time.perf_counter() - started) * 1000)
    return out


def trained_router(embed_tokens: int | None):
    """A router of the shipped shape, trained here (small: the GSM8K file or synthetic rows)."""
    from thrifty.embed import get_embedder
    from thrifty.routing.data import from_rows, load_outcomes
    from thrifty.routing.learned import LearnedRouter
    from thrifty.routing.train import train

    path = DATA / "routellm_gsm8k.jsonl"
    if path.exists():
        data = load_outcomes(path).split()[0]
    else:
        rows = [
            {"prompt": SAMPLES[i % 5] + f" {i}", "fold": i % 4, "outcomes": _outcomes(i)} for i in range(200)
        ]
        data = from_rows(rows)
    embedder = get_embedder(embed_tokens) if embed_tokens else None
    emb = embedder.embed(data.prompts) if embedder else None
    # fixed hyper-parameters (no grid): latency does not depend on them
    model, _ = train(
        data, emb, embed_tokens=embed_tokens, l2_grid=(2.0,), dense_l2_grid=(1.0,), scale_grid=(0.3,)
    )
    return LearnedRouter(model, embedder)


def _outcomes(i: int) -> dict:
    return {
        "cheap": {"score": float(i % 3 > 0), "cost_usd": 1e-4},
        "strong": {"score": 1.0, "cost_usd": 4e-3},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--router", default=None, help="A trained router file to time as well.")
    parser.add_argument("--embed-tokens", type=int, default=32, help="Tokens the embedding router reads.")
    args = parser.parse_args()

    from thrifty.embed import get_embedder
    from thrifty.routing import select
    from thrifty.routing.learned import LearnedRouter
    from thrifty.routing.rules import RulesRouter
    from thrifty.routing.signals import Signals

    texts = prompts(args.n)
    embedder = get_embedder()
    rules = RulesRouter({"code": "strong", "math": "strong", "default": "cheap"})
    routers = {
        "learned, n-grams + lexical (no embedding)": trained_router(None),
        f"learned, + embedding of {args.embed_tokens} tokens": trained_router(args.embed_tokens),
    }
    if args.router:
        routers[f"router file {Path(args.router).name}"] = LearnedRouter.load(args.router)

    def decision(router: LearnedRouter) -> Callable[[str], int]:
        cost = [float(c) for c in router.model.est_cost]
        return lambda text: select.tradeoff(router.quality(Signals.of_prompt(text)), cost, 10.0)

    results = {
        "bare embed_one, whole prompt (baseline)": timed(embedder.embed_one, texts),
        "rules router": timed(lambda t: rules.choose(Signals.of_prompt(t)), texts),
        **{name: timed(decision(r), texts) for name, r in routers.items()},
    }
    base = statistics.median(results["bare embed_one, whole prompt (baseline)"])
    print(f"{len(texts)} prompts (MMLU + GSM8K), one core (OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']})")
    for name, values in results.items():
        p50 = statistics.median(values)
        p99 = sorted(values)[int(0.99 * (len(values) - 1))]
        print(f"{name:44} p50 {p50:8.3f} ms  p99 {p99:8.3f} ms  ratio to baseline {p50 / base:6.3f}")


if __name__ == "__main__":
    main()
