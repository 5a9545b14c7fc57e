"""Recorded routing outcomes: the JSONL format of `../shared/data/README.md`, as arrays.

Each row is one prompt with, per model, a quality `score` in [0, 1] and the `cost_usd` of that call (and
optionally the model's `response`). Any number of models and any model names; a row missing a model
is an error (every model must be scored on every prompt for replay to be fair).

Folds (0–3 train/calibrate, 4 test): a row's `split`, when present, decides test membership — `test`
rows are fold 4 whatever their `fold`; `train`/`dev`/`calibration`/`validation` rows keep a `fold` of
0–3 (for cross-validation) and otherwise get one from a hash of the prompt. Without `split`, `fold` is
used as is; rows with neither get their 1-based row number mod 5. Malformed values are errors naming the
line (and the model and field), never silently replaced.
"""

from __future__ import annotations

import hashlib
import math
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
    completion_tokens: np.ndarray
    """(n, m) recorded answer lengths in tokens, NaN where a row does not record one."""
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
            completion_tokens=self.completion_tokens[idx],
            responses=[self.responses[i] for i in idx],
            rows=self.rows[idx],
        )

    def folds_in(self, folds: Sequence[int]) -> OutcomeSet:
        import numpy as np

        return self.subset(np.isin(self.folds, list(folds)))

    def split(self) -> tuple[OutcomeSet, OutcomeSet]:
        """(train = folds 0–3, test = fold 4), the convention for headline numbers."""
        return self.folds_in(TRAIN_FOLDS), self.folds_in([TEST_FOLD])

    def checked_split(self, *, need_test: bool = True) -> tuple[OutcomeSet, OutcomeSet]:
        """`split()` for a command that trains on folds 0–3 and (with `need_test`) reports on fold 4:
        a file without those rows is an OutcomeDataError (one line and exit status 2 in the CLI), not
        an empty array failing somewhere inside."""
        train, test = self.split()
        if len(train) == 0 or (need_test and len(test) == 0):
            need = "rows in folds 0–3 (train)" + (" and fold 4 (test)" if need_test else "")
            raise OutcomeDataError(
                f"the data needs {need}; it has {len(train)} train and {len(test)} test rows"
            )
        return train, test

    def model_index(self, model: str) -> int:
        try:
            return self.models.index(model)
        except ValueError:
            raise OutcomeDataError(f"model {model!r} is not in the data (models: {self.models})") from None


SPLITS = ("train", "dev", "calibration", "validation", "test")
"""Allowed `split` values: `test` rows are the held-out fold 4, the others training/calibration rows."""
TEST_SPLIT = "test"


def _shown(value: Any) -> str:
    """A field's value as it would read in the file, cut short."""
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_number(value: Any) -> bool:
    """A finite int or float; JSON `true`/`false` are not numbers."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _score(out: dict[str, Any], where: str) -> float:
    value = out.get("score")
    if not _is_number(value) or not 0 <= value <= 1:
        raise OutcomeDataError(f"{where}: score must be a number in [0, 1], got {_shown(value)}")
    return float(value)


def _cost(out: dict[str, Any], where: str) -> float:
    value = out.get("cost_usd")
    if not _is_number(value) or value < 0:
        raise OutcomeDataError(f"{where}: cost_usd must be a non-negative number (USD), got {_shown(value)}")
    return float(value)


def _tokens(out: dict[str, Any], field: str, where: str) -> int:
    """An optional token count (absent or null: 0); integral floats such as 12.0 are accepted."""
    value = out.get(field)
    if value is None:
        return 0
    if not _is_number(value) or value < 0 or value != int(value):
        raise OutcomeDataError(f"{where}: {field} must be a non-negative integer, got {_shown(value)}")
    return int(value)


def _fold(row: dict[str, Any], line: int) -> int | None:
    """The row's `fold` (absent or null: None): an integer 0–4, nothing else."""
    value = row.get("fold")
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        hint = f" (write {value} without quotes)" if isinstance(value, str) and value.isdigit() else ""
        raise OutcomeDataError(
            f"line {line}: fold must be an integer 0–{TEST_FOLD}, got {_shown(value)}{hint}"
        )
    if not 0 <= value <= TEST_FOLD:
        raise OutcomeDataError(
            f"line {line}: fold {value} is outside 0–{TEST_FOLD} "
            f"(folds {TRAIN_FOLDS[0]}–{TRAIN_FOLDS[-1]} train, {TEST_FOLD} is the test fold)"
        )
    return value


def _split(row: dict[str, Any], line: int) -> str | None:
    """The row's `split` (absent or null: None), one of `SPLITS`."""
    value = row.get("split")
    if value is None or value in SPLITS:
        return value
    raise OutcomeDataError(f"line {line}: split {_shown(value)} is not one of: {', '.join(SPLITS)}")


def _hash_fold(prompt: str) -> int:
    """A training fold 0–3 from the prompt (stable across runs; equal prompts share a fold)."""
    digest = hashlib.blake2b(prompt.encode(), digest_size=8).digest()
    return TRAIN_FOLDS[int.from_bytes(digest, "big") % len(TRAIN_FOLDS)]


def _assign_fold(fold: int | None, split: str | None, prompt: str, position: int) -> int:
    """`split` decides test membership; `fold` is kept where it agrees; rows with neither: position % 5."""
    if split == TEST_SPLIT:
        return TEST_FOLD
    if split is not None:
        return fold if fold in TRAIN_FOLDS else _hash_fold(prompt)
    return fold if fold is not None else position % (TEST_FOLD + 1)


@dataclass(slots=True)
class _Row:
    id: str
    prompt: str
    task: str
    fold: int
    scores: list[float]
    costs: list[float]
    input_tokens: int
    completion_tokens: list[float]
    responses: dict[str, str]


def _outcomes(row: dict[str, Any], line: int, models: list[str] | None) -> dict[str, dict[str, Any]]:
    outcomes = row.get("outcomes")
    if not isinstance(outcomes, dict) or not outcomes:
        raise OutcomeDataError(f"line {line}: 'outcomes' must be a non-empty object")
    names = sorted(outcomes)
    if models is not None and names != models:
        raise OutcomeDataError(f"line {line}: models {names} differ from the first row's {models}")
    for name in names:
        if not isinstance(outcomes[name], dict):
            raise OutcomeDataError(f"line {line}: model {name!r}: outcome must be an object")
    return outcomes


def _parse_row(row: Any, line: int, position: int, models: list[str] | None) -> tuple[list[str], _Row]:
    """Validate one row; `line` is what errors name, `position` (1-based) the fallback fold's source."""
    if not isinstance(row, dict):
        raise OutcomeDataError(f"line {line}: expected a JSON object")
    prompt = row.get("prompt")
    if not isinstance(prompt, str):
        raise OutcomeDataError(f"line {line}: 'prompt' must be a string")
    outcomes = _outcomes(row, line, models)
    names = models or sorted(outcomes)
    scores, costs, tokens, completion = [], [], [], []
    for name in names:
        out, where = outcomes[name], f"line {line}: model {name!r}"
        scores.append(_score(out, where))
        costs.append(_cost(out, where))
        tokens.append(_tokens(out, "prompt_tokens", where))
        length = _tokens(out, "completion_tokens", where)
        completion.append(math.nan if out.get("completion_tokens") is None else float(length))
    return names, _Row(
        id=str(row.get("id", position)),
        prompt=prompt,
        task=str(row.get("task") or ""),
        fold=_assign_fold(_fold(row, line), _split(row, line), prompt, position),
        scores=scores,
        costs=costs,
        input_tokens=tokens[0],
        completion_tokens=completion,
        responses={m: outcomes[m]["response"] for m in names if isinstance(outcomes[m].get("response"), str)},
    )


def _from_numbered(numbered: Iterable[tuple[int, Any]]) -> OutcomeSet:
    """Build an OutcomeSet from (line, row) pairs; errors name `line`."""
    import numpy as np

    models: list[str] | None = None
    parsed: list[_Row] = []
    for position, (line, row) in enumerate(numbered, 1):
        models, item = _parse_row(row, line, position, models)
        parsed.append(item)
    if models is None:
        raise OutcomeDataError("the file has no rows")
    return OutcomeSet(
        ids=[r.id for r in parsed],
        prompts=[r.prompt for r in parsed],
        tasks=[r.task for r in parsed],
        folds=np.asarray([r.fold for r in parsed], dtype=np.int64),
        models=models,
        scores=np.asarray([r.scores for r in parsed], dtype=np.float64),
        costs=np.asarray([r.costs for r in parsed], dtype=np.float64),
        input_tokens=np.asarray([r.input_tokens for r in parsed], dtype=np.int64),
        completion_tokens=np.asarray([r.completion_tokens for r in parsed], dtype=np.float64),
        responses=[r.responses for r in parsed],
        rows=np.arange(len(parsed)),
    )


def from_rows(rows: Iterable[Any]) -> OutcomeSet:
    """Build an OutcomeSet from parsed rows (validating each; errors name the 1-based row number)."""
    return _from_numbered(enumerate(rows, 1))


def load_outcomes(path: str | Path) -> OutcomeSet:
    """Read an outcome JSONL file; errors name the file and line."""
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise OutcomeDataError(f"cannot read {path}: {exc.strerror}") from None
    rows: list[tuple[int, Any]] = []
    for line, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            rows.append((line, orjson.loads(raw)))
        except orjson.JSONDecodeError as exc:
            raise OutcomeDataError(f"{path}: line {line}: invalid JSON ({exc})") from None
    try:
        return _from_numbered(rows)
    except OutcomeDataError as exc:
        raise OutcomeDataError(f"{path}: {exc}") from None
