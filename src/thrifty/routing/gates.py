"""The QualityGate seam: is a cascade tier's answer good enough to return?

A gate looks at the request and one answer (one choice of the tier's response) and returns a Verdict
(pass/fail, a score in [0, 1], a reason). Gates: heuristic (length, hedging, refusal), format (empty,
truncated, JSON / JSON schema for `response_format`), logprob confidence, judge (a cheap model grades
the answer; see judge.py) and learned (see learned_gate.py). `AllGates` / `AnyGate` combine them.

A response with several choices (`n > 1`) passes only when every choice passes (`check_choices`):
each gate checks each choice on its own — format, heuristic and logprob per choice, the judge grades
each (one call per choice) and the learned gate scores each — and the first failing choice fails
the tier (later choices are not checked, so a judge is not asked about them).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from thrifty.routing import jsonschema_lite
from thrifty.routing.signals import last_user_text
from thrifty.types import Body

OK = "ok"
"""The reason of a passing verdict with nothing more to say."""


@dataclass(slots=True, frozen=True)
class Verdict:
    ok: bool
    score: float
    reason: str


@dataclass(slots=True)
class Answer:
    """What a gate sees: the request as sent and one answer (one choice of the tier's response)."""

    request: Body
    text: str
    """What graders read: the message content, then each tool call's name and arguments."""
    finish_reason: str | None = None
    logprobs: list[float] | None = None
    """Per-token log-probabilities of the answer, when the provider returned them."""
    ask: Any = None
    """For the judge gate: `async (model, messages) -> text`, booked by the cascade."""
    tool_calls: int = 0
    """How many tool calls the answer makes."""
    content: str | None = None
    """The message content alone, when the answer also calls tools (None: `text` is the content)."""

    @classmethod
    def of_choice(cls, request: Body, choice: Body) -> Answer:
        """The answer of one `choices[i]` of a chat.completion."""
        message = choice.get("message") or {}
        content = message.get("content") if isinstance(message.get("content"), str) else ""
        calls = [c for c in message.get("tool_calls") or () if isinstance(c, dict)]
        text = content
        for call in calls:
            fn = call.get("function") or {}
            text += str(fn.get("name") or "") + str(fn.get("arguments") or "")
        lp = (choice.get("logprobs") or {}).get("content")
        logprobs = [float(t["logprob"]) for t in lp if "logprob" in t] if lp else None
        return cls(
            request,
            text,
            choice.get("finish_reason"),
            logprobs,
            tool_calls=len(calls),
            content=content if calls else None,
        )

    @classmethod
    def each(cls, request: Body, response: Body) -> list[Answer]:
        """One answer per choice of a chat.completion (a response without choices: one empty answer)."""
        choices = [c for c in response.get("choices") or () if isinstance(c, dict)]
        return [cls.of_choice(request, c) for c in choices or [{}]]

    @property
    def message(self) -> str:
        """The message content without tool calls: what `response_format` constrains."""
        return self.text if self.content is None else self.content

    @property
    def prompt(self) -> str:
        """The last user message's text (its text parts, when its content is a list of parts)."""
        return last_user_text(self.request.get("messages"))


class QualityGate(Protocol):
    """A gate may also set `needs_logprobs = True`: the cascade then asks the tiers it checks for
    token logprobs (and drops them from an answer whose client did not ask)."""

    name: str

    async def check(self, answer: Answer) -> Verdict: ...


def needs_logprobs(gate: QualityGate) -> bool:
    return bool(getattr(gate, "needs_logprobs", False))


async def check_choices(gate: QualityGate, answers: Sequence[Answer]) -> Verdict:
    """A response (its `answers`, one per choice: at least one) passes only when every choice passes:
    the first failing choice's verdict (later choices are not checked); when all pass, the
    lowest-scoring choice's (the first of equals)."""
    passed: list[Verdict] = []
    for answer in answers:
        verdict = await gate.check(answer)
        if not verdict.ok:
            return _naming_choice(verdict, len(passed), len(answers))
        passed.append(verdict)
    weakest = min(range(len(passed)), key=lambda i: passed[i].score)
    return _naming_choice(passed[weakest], weakest, len(answers))


def _naming_choice(verdict: Verdict, index: int, choices: int) -> Verdict:
    """A choice's verdict as the response's: with several choices, the reason names the choice."""
    if choices == 1 or verdict.reason == OK:
        return verdict
    return Verdict(verdict.ok, verdict.score, f"choice {index}: {verdict.reason}")


HEDGES = (
    r"i don'?t know",
    r"i'?m not (sure|certain|able)",
    r"i cannot|i can'?t (help|answer|assist|provide|determine)",
    r"as an ai\b",
    r"i'?m sorry,? but",
    r"unable to (answer|determine|help)",
    r"it is (impossible|not possible) to (say|determine|know)",
    r"not enough information",
)


class HeuristicGate:
    """Fails short answers and answers that open by hedging or refusing. A hedge starts at a word
    boundary: "The API cannot…" and "Taxis in Hawaii don't know…" are not "I cannot" / "I don't know"."""

    name = "heuristic"

    def __init__(self, min_chars: int = 1, hedges: Sequence[str] = HEDGES, scan_chars: int = 200) -> None:
        self.min_chars = min_chars
        self.pattern = re.compile("|".join(rf"\b(?:{h})" for h in hedges), re.IGNORECASE)
        self.scan_chars = scan_chars

    async def check(self, answer: Answer) -> Verdict:
        text = answer.text.strip()
        if len(text) < self.min_chars:
            return Verdict(False, 0.0, f"answer shorter than {self.min_chars} chars")
        if self.pattern.search(text[: self.scan_chars]):
            return Verdict(False, 0.1, "answer hedges or refuses")
        return Verdict(True, 1.0, OK)


class FormatGate:
    """Fails empty or truncated answers and answers that break the requested `response_format`. The
    JSON (and schema) check reads the message content only: an answer that calls tools and says
    nothing else passes it (the calls' arguments are the tools' business)."""

    name = "format"

    async def check(self, answer: Answer) -> Verdict:
        if answer.finish_reason == "length":
            return Verdict(False, 0.0, "answer cut off (finish_reason=length)")
        if not answer.text.strip():
            return Verdict(False, 0.0, "empty answer")
        fmt = answer.request.get("response_format")
        if not isinstance(fmt, dict) or fmt.get("type") not in ("json_object", "json_schema"):
            return Verdict(True, 1.0, OK)
        if answer.tool_calls and not answer.message.strip():
            return Verdict(True, 1.0, OK)
        return _json_verdict(answer.message, fmt)


def _json_verdict(content: str, fmt: Body) -> Verdict:
    """Whether `content` is what a json_object / json_schema `response_format` asks for."""
    try:
        value: Any = orjson.loads(content)
    except orjson.JSONDecodeError:
        return Verdict(False, 0.0, "answer is not valid JSON")
    if fmt["type"] == "json_object" and not isinstance(value, dict):
        return Verdict(False, 0.0, "answer is JSON but not an object")
    schema = (fmt.get("json_schema") or {}).get("schema")
    problems = jsonschema_lite.errors(value, schema) if schema else []
    if problems:
        return Verdict(False, 0.2, "JSON does not match the schema: " + "; ".join(problems[:3]))
    return Verdict(True, 1.0, OK)


class LogprobGate:
    """Passes when the answer's mean token probability is at least `min_confidence`.
    Without logprobs from the provider it cannot judge, and passes (reason says so)."""

    name = "logprob"
    needs_logprobs = True

    def __init__(self, min_confidence: float = 0.8) -> None:
        self.min_confidence = min_confidence

    async def check(self, answer: Answer) -> Verdict:
        if not answer.logprobs:
            return Verdict(True, 1.0, "no logprobs returned: not judged")
        confidence = math.exp(sum(answer.logprobs) / len(answer.logprobs))
        ok = confidence >= self.min_confidence
        return Verdict(ok, confidence, f"mean token probability {confidence:.3f}")


class AllGates:
    """Passes when every gate passes (stops at the first failure); score = the lowest. A passing
    verdict keeps what the gates said beyond "ok" (`logprob: no logprobs returned: not judged;
    judge: judge grade 8/10`), so the ledger shows it."""

    def __init__(self, gates: Sequence[QualityGate]) -> None:
        self.gates = list(gates)
        self.name = "all(" + ",".join(g.name for g in self.gates) + ")"
        self.needs_logprobs = any(needs_logprobs(g) for g in self.gates)

    async def check(self, answer: Answer) -> Verdict:
        score, notes = 1.0, []
        for gate in self.gates:
            verdict = await gate.check(answer)
            if not verdict.ok:
                return Verdict(False, verdict.score, f"{gate.name}: {verdict.reason}")
            score = min(score, verdict.score)
            if verdict.reason != OK:
                notes.append(f"{gate.name}: {verdict.reason}")
        return Verdict(True, score, "; ".join(notes) or OK)


class AnyGate:
    """Passes when at least one gate passes; score = the highest."""

    def __init__(self, gates: Sequence[QualityGate]) -> None:
        self.gates = list(gates)
        self.name = "any(" + ",".join(g.name for g in self.gates) + ")"
        self.needs_logprobs = any(needs_logprobs(g) for g in self.gates)

    async def check(self, answer: Answer) -> Verdict:
        reasons = []
        best = Verdict(False, 0.0, "no gate passed")
        for gate in self.gates:
            verdict = await gate.check(answer)
            if verdict.ok:
                return Verdict(True, verdict.score, f"{gate.name}: {verdict.reason}")
            reasons.append(f"{gate.name}: {verdict.reason}")
            if verdict.score > best.score:
                best = verdict
        return Verdict(False, best.score, "; ".join(reasons))
