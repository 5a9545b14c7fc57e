"""Recorded routing outcomes: the JSONL format of `../shared/data/README.md`, as arrays.

Each row is one prompt with, per model, a quality `score` in [0, 1] and the `cost_usd` of that call (and
optionally the model's `response`). Any number of models and any model names; a row missing a model
is an error (every model must be scored on every prompt for replay to be fair).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    import numpy as np

TRAIN_FOLDS = (0, 1, 2, 3)
TEST_FOLD = 4


class OutcomeDataError(ValueError):
    """The outcome file is not in the expected format; the message names the line."""


@dataclass(slots=True)
class OutcomeSet:
    """Prompts × models: scores and costs as (n, m) arrays, in the order of `models`."""

    ids: list[str]
    prompts: list[str]
    tasks: list[str]
    folds: np.ndarray
    models: list[str]
    scores: np.ndarray
    costs: np.ndarray
    input_tokens: np.ndarray
    responses: list[dict[str, str]]
    """Per row: model → recorded response text (only models whose response was recorded)."""
    rows: np.ndarray
    """Index of each row in the file it was read from (subsets keep them)."""

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, mask: np.ndarray) -> OutcomeSet:
        import numpy as np

        idx = np.flatnonzero(mask)
        return OutcomeSet(
            ids=[self.ids[i] for i in idx],
            prompts=[self.prompts[i] for i in idx],
            tasks=[self.tasks[i] for i in idx],
            folds=self.folds[idx],
            models=list(self.models),
            scores=self.scores[idx],
            costs=self.costs[idx],
            input_tokens=self.input_tokens[idx],
            responses=[self.responses[i] for i in idx],
            rows=self.rows[idx],
        )

    def folds_in(self, folds: Sequence[int]) -> OutcomeSet:
        import numpy as np

        return self.subset(np.isin(self.folds, list(folds)))

    def split(self) -> tuple[OutcomeSet, OutcomeSet]:
        """(train = folds 0–3, test = fold 4), the convention for headline numbers."""
        return self.folds_in(TRAIN_FOLDS), self.folds_in([TEST_FOLD])

    def model_index(self, model: str) -> int:
        try:
            return self.models.index(model)
        except ValueError:
            raise OutcomeDataError(f"model {model!r} is not in the data (models: {self.models})") from None


def _row_fields(row: Any, line: int, models: list[str] | None) -> tuple[list[str], dict[str, Any]]:
    if not isinstance(row, dict):
        raise OutcomeDataError(f"line {line}: expected a JSON object")
    if not isinstance(row.get("prompt"), str):
        raise OutcomeDataError(f"line {line}: 'prompt' must be a string")
    outcomes = row.get("outcomes")
    if not isinstance(outcomes, dict) or not outcomes:
        raise OutcomeDataError(f"line {line}: 'outcomes' must be a non-empty object")
    names = sorted(outcomes)
    if models is not None and set(names) != set(models):
        raise OutcomeDataError(f"line {line}: models {names} differ from the first row's {models}")
    for name in names:
        out = outcomes[name]
        if not isinstance(out, dict) or not isinstance(out.get("score"), int | float):
            raise OutcomeDataError(f"line {line}: outcomes.{name}.score must be a number")
        if not isinstance(out.get("cost_usd"), int | float):
            raise OutcomeDataError(f"line {line}: outcomes.{name}.cost_usd must be a number")
    return names, outcomes


def from_rows(rows: Iterable[Any]) -> OutcomeSet:
    """Build an OutcomeSet from parsed rows (validating each)."""
    import numpy as np

    models: list[str] | None = None
    ids: list[str] = []
    prompts: list[str] = []
    tasks: list[str] = []
    folds: list[int] = []
    scores: list[list[float]] = []
    costs: list[list[float]] = []
    tokens: list[int] = []
    responses: list[dict[str, str]] = []
    for line, row in enumerate(rows, 1):
        names, outcomes = _row_fields(row, line, models)
        models = models or names
        ids.append(str(row.get("id", line)))
        prompts.append(row["prompt"])
        tasks.append(str(row.get("task") or ""))
        fold = row.get("fold")
        folds.append(int(fold) if isinstance(fold, int) else line % 5)
        scores.append([float(outcomes[m]["score"]) for m in models])
        costs.append([float(outcomes[m]["cost_usd"]) for m in models])
        tokens.append(int(outcomes[models[0]].get("prompt_tokens") or 0))
        responses.append(
            {m: outcomes[m]["response"] for m in models if isinstance(outcomes[m].get("response"), str)}
        )
    if models is None:
        raise OutcomeDataError("the file has no rows")
    return OutcomeSet(
        ids=ids,
        prompts=prompts,
        tasks=tasks,
        folds=np.asarray(folds, dtype=np.int64),
        models=models,
        scores=np.asarray(scores, dtype=np.float64),
        costs=np.asarray(costs, dtype=np.float64),
        input_tokens=np.asarray(tokens, dtype=np.int64),
        responses=responses,
        rows=np.arange(len(prompts)),
    )


def load_outcomes(path: str | Path) -> OutcomeSet:
    """Read an outcome JSONL file; errors name the file and line."""
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise OutcomeDataError(f"cannot read {path}: {exc.strerror}") from None
    rows = []
    for line, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            rows.append(orjson.loads(raw))
        except orjson.JSONDecodeError as exc:
            raise OutcomeDataError(f"{path}: line {line}: invalid JSON ({exc})") from None
    try:
        return from_rows(rows)
    except OutcomeDataError as exc:
        raise OutcomeDataError(f"{path}: {exc}") from None
