"""Rule-based task classifier: code, math, reasoning, summarize, translate, extract, classify,
creative, chat.

Each task has weighted cues over the last user turn — keyword sets (one set lookup per word),
phrases (substring search) and a few structural regexes — plus shape signals: length, conversation
depth, requested output format, tools, non-Latin script, the system prompt. The highest score wins;
below the floor the request is `chat`. One lowercase + one word split per request: tens of µs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from thrifty.routing.signals import Signals

TASKS = ("code", "math", "reasoning", "summarize", "translate", "extract", "classify", "creative", "chat")
FLOOR = 1.0
_WORDS = re.compile(r"[a-z_#+]+")
_NON_LATIN = re.compile(r"[\u0400-\u04ff\u0600-\u06ff\u0900-\u097f\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7af]")


@dataclass(slots=True, frozen=True)
class Cue:
    weight: float
    words: frozenset[str] = frozenset()
    phrases: tuple[str, ...] = ()
    pattern: re.Pattern[str] | None = None
    need: tuple[str, ...] = ()
    """The pattern only runs when one of these substrings is in the lowercased text."""
    lower: bool = False
    """Run the pattern on the lowercased text."""

    def hit(self, words: set[str], lowered: str, text: str) -> bool:
        if self.words and not self.words.isdisjoint(words):
            return True
        if any(p in lowered for p in self.phrases):
            return True
        if self.pattern is None or (self.need and not any(n in lowered for n in self.need)):
            return False
        return self.pattern.search(lowered if self.lower else text) is not None


def _w(
    weight: float,
    words: str = "",
    phrases: tuple[str, ...] = (),
    pattern: str | None = None,
    need: tuple[str, ...] = (),
    lower: bool = False,
) -> Cue:
    compiled = re.compile(pattern, re.MULTILINE) if pattern else None
    return Cue(weight, frozenset(words.split()), phrases, compiled, need, lower)


CUES: dict[str, list[Cue]] = {
    "code": [
        _w(2.5, phrases=("```",)),
        _w(
            2.0,
            pattern=r"^\s*(?:def|class|import|#include|package|public|private|fn|func) \w",
            need=("def ", "class ", "import ", "#include", "package ", "public ", "private ", "fn ", "func "),
        ),
        _w(1.2, phrases=("();", "){", ") {", "=>", "->", "!=", "==", "[]", "self.", "this.")),
        _w(1.5, "python javascript typescript java rust golang c++ c# sql bash regex html css kotlin swift"),
        _w(1.0, "code bug debug compile stacktrace exception refactor function api script repo git npm pip"),
        _w(2.0, "traceback typeerror valueerror nullpointerexception segfault syntaxerror keyerror"),
    ],
    "math": [
        _w(1.2, pattern=r"\d\s*[-+*/×÷^=]\s*\d", need=("+", "-", "*", "/", "×", "÷", "^", "=")),
        _w(
            1.4,
            phrases=(
                "how many",
                "how much",
                "what is the total",
                "what is the sum",
                "calculate",
                "compute",
                "what is the probability",
                "what is the value",
            ),
        ),
        _w(1.2, "solve equation integral derivative percent percentage ratio average remainder prime"),
        _w(1.0, "dollars cents hours minutes miles km meters pounds kg cups apples per"),
        _w(1.0, pattern=r"\$\d|\d%", need=("$", "%")),
        _w(1.5, phrases=("\\frac", "\\sqrt", "x^2", "\\int")),
    ],
    "reasoning": [
        _w(1.0, "why explain prove derive reasoning analyze analyse compare tradeoffs tradeoff"),
        _w(
            1.0,
            "implications evaluate critique argue justify",
            ("step by step", "pros and cons", "which is better"),
        ),
        _w(0.8, pattern=r"^\s*[A-D][.)] \S", need=("a.", "a)", "b.", "b)")),
        _w(0.6, "design architecture strategy plan"),
    ],
    "summarize": [
        _w(
            3.0,
            "summarize summarise summary tldr recap gist condense shorten",
            ("tl;dr", "key points", "main points"),
        ),
        _w(
            1.2,
            pattern=r"\bin (?:one|two|three|a few|\d+) (?:sentences?|bullets?|words)\b",
            need=("sentence", "bullet", "words"),
            lower=True,
        ),
    ],
    "translate": [
        _w(3.0, "translate translation translating"),
        _w(
            1.5,
            "english french german spanish italian portuguese chinese japanese korean russian arabic "
            "hindi dutch polish turkish",
        ),
    ],
    "extract": [
        _w(2.0, "extract parse", ("pull out", "list all", "find all", "identify all", "fill in")),
        _w(1.0, "json yaml csv fields entities table", ("key-value",)),
    ],
    "classify": [
        _w(2.5, "classify categorize categorise label sentiment", ("which category", "is this spam")),
        _w(1.2, "positive negative neutral", ("yes or no", "true or false")),
    ],
    "creative": [
        _w(1.2, "poem haiku lyrics brainstorm creative limerick slogan story"),
        _w(
            1.8,
            pattern=r"\b(?:write|compose) (?:a|an|me a) (?:poem|story|song|haiku|essay|joke)",
            need=("write", "compose"),
            lower=True,
        ),
    ],
    "chat": [
        _w(
            1.5,
            pattern=r"\A\s*(?:hi|hello|hey|thanks|thank you|good (?:morning|evening)|how are you)\b",
            lower=True,
        ),
    ],
}


@dataclass(slots=True, frozen=True)
class TaskGuess:
    task: str
    scores: dict[str, float] = field(default_factory=dict)


class TaskClassifier:
    """`classify(signals)` → TaskGuess. Holds only its read-only cue table."""

    def __init__(self, cues: dict[str, list[Cue]] | None = None) -> None:
        self.cues = cues or CUES

    def scores(self, s: Signals) -> dict[str, float]:
        text = s.text
        lowered = text.lower()
        words = set(_WORDS.findall(lowered))
        out = {
            task: sum(c.weight for c in cues if c.hit(words, lowered, text))
            for task, cues in self.cues.items()
        }
        self._shape(s, out)
        return out

    def _shape(self, s: Signals, out: dict[str, float]) -> None:
        if s.response_format in ("json_object", "json_schema"):
            out["extract"] += 1.5
        if s.has_tools:
            out["extract"] += 0.5
        if len(s.text) > 2500:
            out["summarize"] += 0.8
            out["extract"] += 0.3
        if out["translate"] > 0 and _NON_LATIN.search(s.text[:500]):
            out["translate"] += 1.0
        if s.system and any(w in s.system.lower() for w in ("code", "programmer", "developer", "engineer")):
            out["code"] += 1.0
        if s.depth >= 4:
            out["chat"] += 0.5
        if len(s.text) < 60 and max(out.values()) < FLOOR:
            out["chat"] += 1.0

    def classify(self, s: Signals) -> TaskGuess:
        scores = self.scores(s)
        task = max(TASKS, key=lambda t: scores.get(t, 0.0))
        if scores[task] < FLOOR:
            task = "chat"
        return TaskGuess(task, scores)
