"""Lossless normalisation: tokens saved and time per request on real prompts.

    .venv/bin/python benchmarks/compress_normalize.py [--limit N] [--dedupe]

`--dedupe` adds the opt-in duplicate removal (`compression.normalize.dedupe: true`), which is not
lossless.

Workloads built from `<repo>/../shared/data` (nothing synthetic but the framing):

- `routing/routellm_gsm8k.jsonl` prompts as plain user messages (clean prose: expect ~0 saving);
- HotpotQA rows as an agent's tool result, pretty-printed with `json.dumps(indent=2)` (as many tools
  return them), after a short user question;
- the same rows as a markdown-ish RAG prompt with the passages duplicated once (a retriever that
  returns the same chunk twice).

Each line prints tokens after ÷ tokens before (the baseline is the unnormalised request, counted in the
same run) and the CPU time per request against the time to count its tokens.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from thrifty.compress.base import TokenCache
from thrifty.compress.normalize import Normalizer
from thrifty.pricing.tokens import TokenCounter

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def rows(path: Path, limit: int) -> list[dict]:
    with path.open() as fh:
        return [json.loads(line) for _, line in zip(range(limit), fh, strict=False)]


def workloads(limit: int) -> dict[str, list[dict]]:
    gsm = rows(DATA / "routing" / "routellm_gsm8k.jsonl", limit)
    hotpot = rows(DATA / "compression" / "hotpotqa_distractor.jsonl", limit)
    plain = [[{"role": "user", "content": r["prompt"]}] for r in gsm]
    tool = [
        [
            {"role": "user", "content": r["question"]},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function"}]},
            {"role": "tool", "tool_call_id": "c1", "content": json.dumps(r["passages"], indent=2)},
        ]
        for r in hotpot
    ]
    duplicated = []
    for r in hotpot:
        docs = [f"## {p['title']}\n\n{''.join(p['sentences']).strip()}" for p in r["passages"]]
        docs = docs + docs[:3]
        duplicated.append([{"role": "user", "content": "\n\n".join(docs) + f"\n\nQuestion: {r['question']}"}])
    return {"gsm8k prose": plain, "hotpotqa JSON tool result": tool, "RAG with repeated chunks": duplicated}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--dedupe", action="store_true", help="with the opt-in duplicate removal")
    args = parser.parse_args()
    counter = TokenCounter()
    counter.count_text("warm up the encoding")
    for name, conversations in workloads(args.limit).items():
        normalizer = Normalizer(TokenCache(counter), dedupe=args.dedupe)
        before = after = 0
        norm_ms = count_ms = 0.0
        for messages in conversations:
            body = {"model": "m", "messages": messages}
            started = time.thread_time()
            out, _ = normalizer.run(body)
            norm_ms += (time.thread_time() - started) * 1000
            started = time.thread_time()
            b = counter.count_messages(messages)
            count_ms += (time.thread_time() - started) * 1000
            before, after = before + b, after + counter.count_messages(out["messages"])
        n = len(conversations)
        print(
            f"{name:28} {n:4} requests: tokens {before} → {after} (after/before {after / before:.3f}); "
            f"CPU {norm_ms / n:.2f} ms/request = {norm_ms / count_ms:.1f}× counting its tokens"
        )


if __name__ == "__main__":
    main()
