"""`thrifty compress eval`: how many context tokens extraction removes vs. how much of what matters stays.

Reads either shape of `../shared/data/compression/`:

- passages (HotpotQA): `{"id", "question", "answers", "yes_no", "passages": [{"title", "sentences",
  "supporting"}]}` → one user message "Document i: title" sections + "Question: …";
- one long context (COVID-QA): `{"document_id", "context", "questions": [{"id", "question",
  "answers"}]}` → one user message per question: "Context:" + the document + "Question: …".

Each message goes through the production `Extractor` (same segmentation and scoring as the gateway;
normalisation is not applied, so the ratio is extraction's alone). Measured per question: context
tokens before/after (cl100k), whether a gold answer string is still in the kept context (questions
whose answer is not literally in the original context, and yes/no questions, are left out of that
share), for passages the share of supporting sentences kept, and the wall time of the extraction per
1,000 context words.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from thrifty.compress.base import Budget, TokenCache
from thrifty.compress.extractive import Extractor
from thrifty.pricing.tokens import TokenCounter

HOTPOT_LEAD = "Answer the question using only the documents below.\n\n"
CONTEXT_LEAD = "Answer the question using only the context below.\n\n"


@dataclass(slots=True)
class Case:
    id: str
    prompt: str
    words: int
    answers: list[str]
    yes_no: bool = False
    supporting: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Outcome:
    before: int
    after: int
    answer_kept: bool | None
    supporting_total: int
    supporting_kept: int
    ms_per_1k_words: float
    cpu_ms_per_1k_words: float


@dataclass(slots=True)
class Summary:
    data: str
    shape: str
    cases: int
    ratio: float | None
    budget: int | None
    embeddings: bool
    context_tokens_before: int
    context_tokens_after: int
    reduction: float
    answers_judged: int
    answers_kept: float | None
    supporting_sentences: int
    supporting_kept: float | None
    questions_all_supporting_kept: float | None
    p50_ms_per_1k_words: float
    p95_ms_per_1k_words: float
    cpu_p50_ms_per_1k_words: float
    cpu_p95_ms_per_1k_words: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        target = f"ratio {self.ratio}" if self.ratio is not None else ""
        if self.budget is not None:
            target += (", " if target else "") + f"budget {self.budget} tokens"
        return [
            f"data: {self.data} ({self.shape}, {self.cases} questions), target: {target}, "
            f"embeddings: {'on' if self.embeddings else 'off'}",
            f"context tokens: {self.context_tokens_before} → {self.context_tokens_after} "
            f"({self.reduction:.2f}× fewer)",
            f"gold answers kept: {_pct(self.answers_kept)} of {self.answers_judged} questions "
            "whose answer is in the context",
            f"supporting sentences kept: {_pct(self.supporting_kept)} of {self.supporting_sentences}"
            f" (questions with all kept: {_pct(self.questions_all_supporting_kept)})",
            f"latency per 1,000 context words: p50 {self.p50_ms_per_1k_words:.2f} ms, "
            f"p95 {self.p95_ms_per_1k_words:.2f} ms wall; CPU time (one core) p50 "
            f"{self.cpu_p50_ms_per_1k_words:.2f} ms, p95 {self.cpu_p95_ms_per_1k_words:.2f} ms",
        ]


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def load_cases(path: Path) -> Iterator[Case]:
    """Cases from a file of either shape (detected per row)."""
    with path.open("rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = orjson.loads(line)
            if "passages" in row:
                yield _passages_case(row)
            elif "context" in row and "questions" in row:
                yield from _long_context_cases(row)
            else:
                raise ValueError(f"{path}: row has neither 'passages' nor 'context' + 'questions'")


def _passages_case(row: dict[str, Any]) -> Case:
    sections, supporting, words = [], [], 0
    for i, passage in enumerate(row["passages"], 1):
        body = "".join(passage["sentences"]).strip()
        words += len(body.split())
        sections.append(f"Document {i}: {passage['title']}\n{body}")
        supporting.extend(passage["sentences"][j].strip() for j in passage.get("supporting") or ())
    prompt = HOTPOT_LEAD + "\n\n".join(sections) + f"\n\nQuestion: {row['question']}"
    return Case(
        id=str(row["id"]),
        prompt=prompt,
        words=words,
        answers=list(row.get("answers") or []),
        yes_no=bool(row.get("yes_no")),
        supporting=[s for s in supporting if s],
    )


def _long_context_cases(row: dict[str, Any]) -> Iterator[Case]:
    context = row["context"].strip()
    words = len(context.split())
    for q in row["questions"]:
        yield Case(
            id=str(q["id"]),
            prompt=f"{CONTEXT_LEAD}Context:\n{context}\n\nQuestion: {q['question']}",
            words=words,
            answers=list(q.get("answers") or []),
        )


def judge(
    case: Case, original_context: str, kept_context: str, before: int, after: int, ms: float, cpu_ms: float
) -> Outcome:
    kept = _norm(kept_context)
    original = _norm(original_context)
    present = [a for a in case.answers if _norm(a) and _norm(a) in original]
    answer_kept = None if case.yes_no or not present else any(_norm(a) in kept for a in present)
    sup_kept = sum(1 for s in case.supporting if _norm(s) in kept)
    per_1k = 1000 / max(case.words, 1)
    return Outcome(before, after, answer_kept, len(case.supporting), sup_kept, ms * per_1k, cpu_ms * per_1k)


def evaluate(
    path: Path,
    budget: Budget,
    *,
    embeddings: bool = False,
    limit: int | None = None,
) -> Summary:
    """Run the extractor over every case of `path` and sum up."""
    extractor = _extractor(embeddings)
    counter = TokenCounter()
    outcomes: list[Outcome] = []
    shape = "?"
    for n, case in enumerate(load_cases(path)):
        if limit is not None and n >= limit:
            break
        shape = "passages" if case.supporting or case.yes_no else "long_context"
        if n == 0:
            extractor.extract(case.prompt + " ", budget)  # warm-up: tokenizer, numpy, model
        started, cpu_started = time.perf_counter(), time.thread_time()
        result = extractor.extract(case.prompt, budget)
        cpu_ms = (time.thread_time() - cpu_started) * 1000
        ms = (time.perf_counter() - started) * 1000
        before, after = counter.count_text(result.original_context), counter.count_text(result.kept_context)
        outcomes.append(judge(case, result.original_context, result.kept_context, before, after, ms, cpu_ms))
    return _summarise(str(path), shape, budget, embeddings, outcomes)


def _extractor(embeddings: bool) -> Extractor:
    cache = None
    if embeddings:
        from thrifty.compress.embedcache import EmbeddingCache

        cache = EmbeddingCache()
    return Extractor(TokenCache(), embeddings=cache, memo_size=1, min_context_tokens=0)


def _share(values: list[bool]) -> float | None:
    return sum(values) / len(values) if values else None


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _summarise(data: str, shape: str, budget: Budget, embeddings: bool, outcomes: list[Outcome]) -> Summary:
    before = sum(o.before for o in outcomes)
    after = sum(o.after for o in outcomes)
    judged = [o.answer_kept for o in outcomes if o.answer_kept is not None]
    sup_total = sum(o.supporting_total for o in outcomes)
    with_sup = [o for o in outcomes if o.supporting_total]
    latencies = [o.ms_per_1k_words for o in outcomes]
    cpu = [o.cpu_ms_per_1k_words for o in outcomes]
    return Summary(
        data=data,
        shape=shape,
        cases=len(outcomes),
        ratio=budget.ratio,
        budget=budget.tokens,
        embeddings=embeddings,
        context_tokens_before=before,
        context_tokens_after=after,
        reduction=before / after if after else float("inf"),
        answers_judged=len(judged),
        answers_kept=_share([bool(j) for j in judged]),
        supporting_sentences=sup_total,
        supporting_kept=sum(o.supporting_kept for o in outcomes) / sup_total if sup_total else None,
        questions_all_supporting_kept=_share([o.supporting_kept == o.supporting_total for o in with_sup]),
        p50_ms_per_1k_words=statistics.median(latencies) if latencies else 0.0,
        p95_ms_per_1k_words=_percentile(latencies, 0.95),
        cpu_p50_ms_per_1k_words=statistics.median(cpu) if cpu else 0.0,
        cpu_p95_ms_per_1k_words=_percentile(cpu, 0.95),
    )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"
