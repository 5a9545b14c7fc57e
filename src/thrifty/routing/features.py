"""Prompt features for the learned router: a local embedding plus a few lexical measurements."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from thrifty.routing.classifier import TASKS, TaskClassifier
from thrifty.routing.signals import Signals

if TYPE_CHECKING:
    import numpy as np

_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_WORD = re.compile(r"\w+")
_MATH = re.compile(r"[-+*/=^<>%$×÷√∑∫]")
_OPTION = re.compile(r"^\s*[A-H][.)]\s", re.MULTILINE)
_CODE = re.compile(r"```|[{};]\s*$|\bdef |\bclass |\breturn\b", re.MULTILINE)

LEXICAL_NAMES = (
    "log_chars",
    "log_words",
    "log_lines",
    "digit_share",
    "log_numbers",
    "math_share",
    "upper_share",
    "non_ascii_share",
    "mean_word_len",
    "questions",
    "options",
    "code_marks",
    *(f"task_{t}" for t in TASKS),
)


def lexical(text: str, classifier: TaskClassifier) -> list[float]:
    """A fixed-length list of cheap measurements of one prompt (see LEXICAL_NAMES)."""
    n = max(len(text), 1)
    words = _WORD.findall(text)
    task = classifier.classify(Signals.of_prompt(text)).task
    return [
        math.log1p(len(text)) / 8,
        math.log1p(len(words)) / 6,
        math.log1p(text.count("\n")) / 3,
        sum(c.isdigit() for c in text) / n * 5,
        math.log1p(len(_NUMBER.findall(text))) / 3,
        len(_MATH.findall(text)) / n * 10,
        sum(c.isupper() for c in text) / n * 5,
        sum(ord(c) > 127 for c in text) / n * 5,
        (sum(len(w) for w in words) / len(words) / 10) if words else 0.0,
        min(text.count("?"), 5) / 5,
        min(len(_OPTION.findall(text)), 8) / 4,
        min(len(_CODE.findall(text)), 10) / 5,
        *(1.0 if task == t else 0.0 for t in TASKS),
    ]


class Featurizer:
    """texts → (n, d) float32: [embedding | lexical | 1]. The same object serves training and routing."""

    def __init__(self, classifier: TaskClassifier | None = None) -> None:
        self.classifier = classifier or TaskClassifier()

    @property
    def lexical_dim(self) -> int:
        return len(LEXICAL_NAMES)

    def lexical_matrix(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        return np.asarray([lexical(t, self.classifier) for t in texts], dtype=np.float32).reshape(
            len(texts), self.lexical_dim
        )

    def combine(
        self, embeddings: np.ndarray | None, texts: Sequence[str], priors: np.ndarray | None = None
    ) -> np.ndarray:
        """[embedding (if given) | lexical | token priors (if given) | 1]."""
        import numpy as np

        parts = [] if embeddings is None else [embeddings.astype(np.float32)]
        parts.append(self.lexical_matrix(texts))
        if priors is not None:
            parts.append(priors.astype(np.float32))
        parts.append(np.ones((len(texts), 1), dtype=np.float32))
        return np.hstack(parts)
