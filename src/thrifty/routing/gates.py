"""The QualityGate seam: is a cascade tier's answer good enough to return?

A gate looks at the request and the tier's answer and returns a Verdict (pass/fail, a score in
[0, 1], a reason). Gates: heuristic (length, hedging, refusal), format (empty, truncated, JSON /
JSON schema for `response_format`), logprob confidence, judge (a cheap model grades the answer; see
judge.py) and learned (see learned_gate.py). `AllGates` / `AnyGate` combine them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from thrifty.routing import jsonschema_lite
from thrifty.types import Body


@dataclass(slots=True, frozen=True)
class Verdict:
    ok: bool
    score: float
    reason: str


@dataclass(slots=True)
class Answer:
    """What a gate sees: the request as sent and the tier's answer."""

    request: Body
    text: str
    finish_reason: str | None = None
    logprobs: list[float] | None = None
    """Per-token log-probabilities of the answer, when the provider returned them."""
    ask: Any = None
    """For the judge gate: `async (model, messages) -> text`, booked by the cascade."""

    @classmethod
    def of(cls, request: Body, response: Body) -> Answer:
        choice = (response.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        text = message.get("content") if isinstance(message.get("content"), str) else ""
        for call in message.get("tool_calls") or ():
            fn = call.get("function") or {}
            text += str(fn.get("name") or "") + str(fn.get("arguments") or "")
        content = (choice.get("logprobs") or {}).get("content")
        logprobs = [float(t["logprob"]) for t in content if "logprob" in t] if content else None
        return cls(request, text, choice.get("finish_reason"), logprobs)

    @property
    def prompt(self) -> str:
        for message in reversed(self.request.get("messages") or []):
            if message.get("role") == "user" and isinstance(message.get("content"), str):
                return message["content"]
        return ""


class QualityGate(Protocol):
    """A gate may also set `needs_logprobs = True`: the cascade then asks the tiers it checks for
    token logprobs (and drops them from an answer whose client did not ask)."""

    name: str

    async def check(self, answer: Answer) -> Verdict: ...


def needs_logprobs(gate: QualityGate) -> bool:
    return bool(getattr(gate, "needs_logprobs", False))


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
    """Fails short answers and answers that open by hedging or refusing."""

    name = "heuristic"

    def __init__(self, min_chars: int = 1, hedges: Sequence[str] = HEDGES, scan_chars: int = 200) -> None:
        self.min_chars = min_chars
        self.pattern = re.compile("|".join(f"(?:{h})" for h in hedges), re.IGNORECASE)
        self.scan_chars = scan_chars

    async def check(self, answer: Answer) -> Verdict:
        text = answer.text.strip()
        if len(text) < self.min_chars:
            return Verdict(False, 0.0, f"answer shorter than {self.min_chars} chars")
        if self.pattern.search(text[: self.scan_chars]):
            return Verdict(False, 0.1, "answer hedges or refuses")
        return Verdict(True, 1.0, "ok")


class FormatGate:
    """Fails empty or truncated answers and answers that break the requested `response_format`."""

    name = "format"

    async def check(self, answer: Answer) -> Verdict:
        if answer.finish_reason == "length":
            return Verdict(False, 0.0, "answer cut off (finish_reason=length)")
        if not answer.text.strip():
            return Verdict(False, 0.0, "empty answer")
        fmt = answer.request.get("response_format")
        if not isinstance(fmt, dict) or fmt.get("type") not in ("json_object", "json_schema"):
            return Verdict(True, 1.0, "ok")
        try:
            value: Any = orjson.loads(answer.text)
        except orjson.JSONDecodeError:
            return Verdict(False, 0.0, "answer is not valid JSON")
        if fmt["type"] == "json_object" and not isinstance(value, dict):
            return Verdict(False, 0.0, "answer is JSON but not an object")
        schema = (fmt.get("json_schema") or {}).get("schema")
        problems = jsonschema_lite.errors(value, schema) if schema else []
        if problems:
            return Verdict(False, 0.2, "JSON does not match the schema: " + "; ".join(problems[:3]))
        return Verdict(True, 1.0, "ok")


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
    """Passes when every gate passes (stops at the first failure); score = the lowest."""

    def __init__(self, gates: Sequence[QualityGate]) -> None:
        self.gates = list(gates)
        self.name = "all(" + ",".join(g.name for g in self.gates) + ")"
        self.needs_logprobs = any(needs_logprobs(g) for g in self.gates)

    async def check(self, answer: Answer) -> Verdict:
        lowest = Verdict(True, 1.0, "ok")
        for gate in self.gates:
            verdict = await gate.check(answer)
            if not verdict.ok:
                return Verdict(False, verdict.score, f"{gate.name}: {verdict.reason}")
            if verdict.score < lowest.score:
                lowest = verdict
        return lowest


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
