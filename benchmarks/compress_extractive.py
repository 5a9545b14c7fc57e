"""Extractive compression: speed per 1,000 context words on one core, and quality against truncation.

    .venv/bin/python benchmarks/compress_extractive.py [--ratio 0.5] [--limit N] [--embeddings]

Data: `<repo>/../shared/data/compression/{hotpotqa_distractor,covidqa}.jsonl`. The process is pinned
to one core. Baselines measured in the same run on the same prompts:

- speed: counting the context's tokens with tiktoken (the least work a token-budgeted compressor
  does) — the figure is extraction time ÷ tokenisation time;
- quality: keeping the first tokens of every passage up to the same budget ("truncate") — the
  figure is the gold answers kept by extraction ÷ by truncation, at the same context token count.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from thrifty.compress.base import Budget, TokenCache
from thrifty.compress.extractive import Extractor
from thrifty.evaluate.compress import Case, judge, load_cases
from thrifty.pricing.tokens import TokenCounter

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "compression"
FILES = ("hotpotqa_distractor.jsonl", "covidqa.jsonl")


def pin_one_core() -> int:
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def truncate(counter: TokenCounter, original: str, share: float) -> str:
    """Baseline: the first `share` of each passage's tokens."""
    out = []
    for passage in original.split("\n\n"):
        ids = counter._encoding.encode(passage, disallowed_special=())
        out.append(counter._encoding.decode(ids[: int(len(ids) * share)]))
    return "\n\n".join(out)


def run(name: str, cases: list[Case], ratio: float, embeddings: bool) -> None:
    counter = TokenCounter()
    cache = None
    if embeddings:
        from thrifty.compress.embedcache import EmbeddingCache

        cache = EmbeddingCache()
    extractor = Extractor(TokenCache(), embeddings=cache, memo_size=1, min_context_tokens=0)
    extractor.extract(cases[0].prompt + " ", Budget(ratio=ratio))  # warm-up
    ext_ms, tok_ms, kept, kept_trunc, before, after, after_trunc = [], [], [], [], 0, 0, 0
    for case in cases:
        started = time.thread_time()
        result = extractor.extract(case.prompt, Budget(ratio=ratio))
        ext_ms.append((time.thread_time() - started) * 1000 * 1000 / case.words)
        started = time.thread_time()
        TokenCounter().count_text(result.original_context)  # fresh counter: no memo
        tok_ms.append((time.thread_time() - started) * 1000 * 1000 / case.words)
        b, a = counter.count_text(result.original_context), counter.count_text(result.kept_context)
        trunc = truncate(counter, result.original_context, a / b if b else 1.0)
        before, after, after_trunc = before + b, after + a, after_trunc + counter.count_text(trunc)
        for text, sink in ((result.kept_context, kept), (trunc, kept_trunc)):
            verdict = judge(case, result.original_context, text, b, a, 0, 0).answer_kept
            if verdict is not None:
                sink.append(verdict)
    p50, p95 = statistics.median(ext_ms), sorted(ext_ms)[int(0.95 * (len(ext_ms) - 1))]
    base = statistics.median(tok_ms)
    share, share_trunc = sum(kept) / len(kept), sum(kept_trunc) / max(len(kept_trunc), 1)
    print(f"{name}: {len(cases)} prompts, ratio {ratio}, embeddings {'on' if embeddings else 'off'}")
    print(f"  context tokens {before} → {after} ({before / after:.2f}× fewer); truncate → {after_trunc}")
    print(f"  CPU ms per 1,000 words: p50 {p50:.2f}, p95 {p95:.2f}; tokenising alone p50 {base:.2f}"
          f" → extraction/tokenise = {p50 / base:.1f}×")  # fmt: skip
    print(f"  gold answers kept: extraction {100 * share:.1f} %, truncate {100 * share_trunc:.1f} %"
          f" → ratio {share / share_trunc if share_trunc else float('inf'):.2f}×")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--embeddings", action="store_true")
    args = parser.parse_args()
    print(f"pinned to CPU {pin_one_core()}")
    for name in FILES:
        cases = list(load_cases(DATA / name))[: args.limit]
        run(name, cases, args.ratio, args.embeddings)


if __name__ == "__main__":
    main()
