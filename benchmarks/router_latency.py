"""Router decision latency on one CPU core: rules router, learned router (embedding included).

Prints p50/p95 per decision and the ratio against a baseline measured in the same run: a bare
`embed_one` call of the bundled MiniLM embedder (the floor of any embedding router). Prompts: the
GSM8K prompts of ../shared/data/routing when present, else built-in samples.

    .venv/bin/python benchmarks/router_latency.py [--n 200] [--router FILE]
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

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "routing" / "routellm_gsm8k.jsonl"
SAMPLES = [
    "Write a Python function that merges two sorted lists.",
    "A store sells pencils at $2 each. How many pencils can Maria buy with $17?",
    "Summarize the following paragraph in two sentences: the council met on Tuesday to discuss the budget.",
    "Translate 'the invoice is attached' into German.",
    "Hi! How are you today?",
]


def prompts(n: int) -> list[str]:
    if DATA.exists():
        from thrifty.routing.data import load_outcomes

        return load_outcomes(DATA).prompts[:n]
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


def learned_router(path: str | None, use_embedding: bool = True):
    import numpy as np

    from thrifty.routing.features import LEXICAL_NAMES
    from thrifty.routing.learned import LearnedModel, LearnedRouter
    from thrifty.routing.token_prior import DIM

    if path:
        return LearnedRouter.load(path)
    # latency does not depend on the weight values: a two-model router of the trained shape
    rng = np.random.default_rng(0)
    d = (384 if use_embedding else 0) + len(LEXICAL_NAMES) + 2 + 1
    model = LearnedModel(
        models=["cheap", "strong"],
        weights=rng.normal(size=(2, d)).astype(np.float32) * 0.01,
        est_cost=np.array([0.0001, 0.004]),
        prior_table=rng.normal(size=(DIM, 2)).astype(np.float32) * 0.01,
        use_embedding=use_embedding,
    )
    return LearnedRouter(model)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--router", default=None, help="A router file (default: a two-model router shape).")
    args = parser.parse_args()

    from thrifty.embed import get_embedder
    from thrifty.routing import select
    from thrifty.routing.rules import RulesRouter
    from thrifty.routing.signals import Signals

    texts = prompts(args.n)
    embedder = get_embedder()
    rules = RulesRouter({"code": "strong", "math": "strong", "default": "cheap"})
    router = learned_router(args.router)
    router._embedder = embedder
    cost = [float(c) for c in router.model.est_cost]

    lexical = learned_router(None, use_embedding=False)

    def learned_decision(text: str) -> int:
        return select.tradeoff(router.quality(Signals.of_prompt(text)), cost, 10.0)

    def lexical_decision(text: str) -> int:
        return select.tradeoff(lexical.quality(Signals.of_prompt(text)), cost, 10.0)

    results = {
        "bare embed_one (baseline)": timed(embedder.embed_one, texts),
        "rules router": timed(lambda t: rules.choose(Signals.of_prompt(t)), texts),
        "learned router (embedding incl.)": timed(learned_decision, texts),
        "learned router (no embedding)": timed(lexical_decision, texts),
    }
    base = statistics.median(results["bare embed_one (baseline)"])
    print(f"{len(texts)} prompts, one core (OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']})")
    for name, values in results.items():
        p50 = statistics.median(values)
        p95 = sorted(values)[int(0.95 * (len(values) - 1))]
        print(f"{name:34} p50 {p50:8.3f} ms  p95 {p95:8.3f} ms  ratio to baseline {p50 / base:6.3f}")


if __name__ == "__main__":
    main()
