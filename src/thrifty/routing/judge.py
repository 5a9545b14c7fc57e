"""The judge gate: a cheap model grades the tier's answer from 0 to 10.

The grading call goes through the gateway's provider pool (retries, fallbacks) and is booked in the
ledger (status `rejected`, reason `judge`: paid for, not shown to the client). A judge that fails or
answers without a grade fails the gate (the request escalates)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from thrifty.routing.gates import Answer, Verdict

Ask = Callable[[str, list[dict[str, str]]], Awaitable[str]]
"""(model, messages) → the model's answer text."""

PROMPT = (
    "You grade answers. Given a user request and an answer, reply with only an integer from 0 (wrong "
    "or useless) to 10 (fully correct and complete).\n\n### Request\n{prompt}\n\n### Answer\n{answer}\n\n"
    "### Grade (0-10)"
)
_GRADE = re.compile(r"\b(10|[0-9])\b")


def parse_grade(text: str) -> float | None:
    match = _GRADE.search(text or "")
    return float(match.group(1)) if match else None


class JudgeGate:
    name = "judge"

    def __init__(self, model: str, min_score: float = 7.0, max_chars: int = 6000) -> None:
        self.model = model
        self.min_score = min_score
        self.max_chars = max_chars

    async def check(self, answer: Answer) -> Verdict:
        ask = answer.ask
        if ask is None:
            return Verdict(False, 0.0, "no judge connection")
        prompt = PROMPT.format(prompt=answer.prompt[: self.max_chars], answer=answer.text[: self.max_chars])
        try:
            reply = await ask(self.model, [{"role": "user", "content": prompt}])
        except Exception as exc:  # any judge failure escalates
            return Verdict(False, 0.0, f"judge failed: {exc}")
        grade = parse_grade(reply)
        if grade is None:
            return Verdict(False, 0.0, "judge gave no grade")
        return Verdict(grade >= self.min_score, grade / 10, f"judge grade {grade:g}/10")
