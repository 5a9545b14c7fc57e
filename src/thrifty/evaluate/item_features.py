"""Item-level lexical measurements of a prompt, for routing experiments (not in the shipped router).

General signals, not tied to one benchmark: the structure of multiple-choice options when present
(count, mean length and spread, numeric options, "all / none of the above"), negated stems
("NOT", "EXCEPT", "LEAST"), numbers / operators / units in the stem, formulas, "Statement 1 / I and
II" items, the stem's length, the context (passage) before the question sentence and its share, the
sentence count and the magnitude of the largest number. Measured in `route_experiments` as extra
columns of the dense head (cross-validated inside folds 0–3: below the bar for shipping; see
docs/routing.md).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

_OPTION_LINE = re.compile(r"^\s*\(?([A-Ha-h])[.)]\s*(.*)$", re.MULTILINE)
_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)*(?:/\d+)?")
_PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_NUMERIC_OPTION = re.compile(r"^[\s$€£-]*\d[\d.,/%\s×x^*+\-−eE]*[a-zA-Z%°]{0,4}\s*$")
_ABOVE = re.compile(r"\b(?:all|none|both|neither) of (?:the )?(?:above|these|them)\b", re.I)
_NEGATED = re.compile(r"\b(?:NOT|EXCEPT|LEAST|FALSE|INCORRECT|NEVER)\b")
_NEGATED_ANY_CASE = re.compile(r"\b(?:not|except|least|false|incorrect|never)\b", re.I)
_OPERATOR = re.compile(r"[+\-*/=^×÷<>≤≥]")
_UNIT = re.compile(
    r"\b(?:kg|g|mg|km|cm|mm|m|s|ms|h|hr|hours?|minutes?|seconds?|days?|weeks?|months?|years?|miles?"
    r"|mph|feet|foot|ft|inch(?:es)?|pounds?|lbs?|ounces?|oz|liters?|litres?|gallons?|dollars?|cents?"
    r"|J|N|W|V|A|K|mol|Hz|Pa|percent)\b|[$%°€£]"
)
_FORMULA = re.compile(
    r"\\frac|\\sqrt|sqrt\(|\^\d|\b[a-z]\s*=\s*[-\d(]|\bx\^|\bf\(x\)|\bd[xy]/d[xy]|∫|∑|√|\|\s*[a-z]\s*\|"
)
_STATEMENTS = re.compile(r"Statement \d|\bI\s*(?:only|and II)\b|\bII\b")
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+")
_ANSWER_CUE = re.compile(r"\n?Answer:\s*$")
_WORD = re.compile(r"\w+")

ITEM_NAMES = (
    "options",
    "option_words_mean",
    "option_words_spread",
    "numeric_options",
    "all_none_of_above",
    "negated_stem_upper",
    "negated_question",
    "stem_numbers",
    "stem_distinct_numbers",
    "stem_operators",
    "stem_units",
    "formula",
    "statements",
    "stem_words",
    "option_words",
    "context_words",
    "question_share",
    "sentences",
    "largest_number",
)


def split_item(text: str) -> tuple[str, list[str]]:
    """(stem, options): options are lines "A. …" / "(b) …" when there are at least two of them."""
    options = [m.group(2).strip() for m in _OPTION_LINE.finditer(text)]
    first = _OPTION_LINE.search(text)
    if first is None or len(options) < 2:
        return _ANSWER_CUE.sub("", text).strip(), []
    return _ANSWER_CUE.sub("", text[: first.start()]).strip(), options


def _largest(numbers: Sequence[str]) -> float:
    values = [float(n.replace(",", "")) for n in numbers if _PLAIN_NUMBER.fullmatch(n.replace(",", ""))]
    return max((abs(v) for v in values), default=0.0)


def item_features(text: str) -> list[float]:
    """A fixed-length list of measurements of one prompt (see ITEM_NAMES), each roughly in [0, 2]."""
    stem, options = split_item(text)
    lengths = [len(_WORD.findall(o)) for o in options]
    mean = sum(lengths) / len(lengths) if lengths else 0.0
    spread = (max(lengths) - min(lengths)) / (mean + 1) if lengths else 0.0
    numeric = sum(bool(_NUMERIC_OPTION.match(o)) for o in options) / len(options) if options else 0.0
    numbers = _NUMBER.findall(stem)
    words = _WORD.findall(stem)
    sentences = [s for s in _SENTENCE_SPLIT.split(stem) if s.strip()]
    question = sentences[-1] if sentences else stem
    question_words = len(_WORD.findall(question))
    return [
        min(len(options), 8) / 4,
        math.log1p(mean) / 3,
        min(spread, 4.0) / 2,
        numeric,
        float(any(_ABOVE.search(o) for o in options) or bool(_ABOVE.search(stem))),
        float(bool(_NEGATED.search(stem))),
        float(bool(_NEGATED_ANY_CASE.search(question))),
        math.log1p(len(numbers)) / 3,
        math.log1p(len(set(numbers))) / 3,
        math.log1p(len(_OPERATOR.findall(stem))) / 3,
        math.log1p(len(_UNIT.findall(stem))) / 3,
        float(bool(_FORMULA.search(text))),
        float(bool(_STATEMENTS.search(text))),
        math.log1p(len(words)) / 6,
        math.log1p(sum(lengths)) / 5,
        math.log1p(max(len(words) - question_words, 0)) / 6,
        question_words / (len(words) + 1),
        math.log1p(len(_SENTENCE_END.findall(stem))) / 3,
        math.log1p(_largest(numbers)) / 10,
    ]


def item_matrix(texts: Sequence[str]) -> np.ndarray:
    """(n, len(ITEM_NAMES)) float64."""
    import numpy as np

    return np.asarray([item_features(t) for t in texts], dtype=np.float64).reshape(
        len(texts), len(ITEM_NAMES)
    )
