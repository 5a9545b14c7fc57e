"""Validation of recorded routing outcome files (`thrifty.routing.data`) and how errors reach the CLI."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from thrifty.route_cli import route
from thrifty.routing.data import TEST_FOLD, OutcomeDataError, from_rows, load_outcomes

MODELS = ("model-x", "model-y", "model-z")


def row(i: int, **fields: Any) -> dict[str, Any]:
    """A valid row over three models; `fields` override or add top-level keys (None removes one)."""
    base: dict[str, Any] = {
        "id": f"t/{i}",
        "task": "t",
        "prompt": f"prompt number {i}",
        "outcomes": {
            m: {"score": 1.0, "prompt_tokens": 10, "completion_tokens": 5, "cost_usd": 0.001 * (k + 1)}
            for k, m in enumerate(MODELS)
        },
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not None}


def with_outcome(r: dict[str, Any], model: str, **fields: Any) -> dict[str, Any]:
    r["outcomes"][model].update(fields)
    return r


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# --- defect 1: a `split` field decides test membership ---------------------------------------------


def test_split_test_rows_are_held_out_even_with_a_training_fold():
    rows = [row(i, fold=i % 4, split="test" if i < 3 else "train") for i in range(10)]
    train, test = from_rows(rows).split()
    assert sorted(test.ids) == ["t/0", "t/1", "t/2"]
    assert len(train) == 7 and not set(train.ids) & set(test.ids)


@pytest.mark.parametrize("name", ["train", "dev", "calibration", "validation"])
def test_training_splits_without_fold_get_folds_0_to_3_by_prompt_hash(name):
    rows = [row(i, split=name) for i in range(60)]
    data = from_rows(rows)
    assert set(data.folds.tolist()) == {0, 1, 2, 3}  # every fold used: CV inside training works
    # Deterministic and tied to the prompt, not the row's position.
    again = from_rows(list(reversed(rows)))
    assert dict(zip(again.ids, again.folds.tolist(), strict=True)) == dict(
        zip(data.ids, data.folds.tolist(), strict=True)
    )
    assert len(data.split()[1]) == 0


def test_training_split_keeps_a_cv_fold_but_never_lands_in_test():
    rows = [row(0, split="train", fold=2), row(1, split="dev", fold=TEST_FOLD)]
    data = from_rows(rows)
    assert data.folds[0] == 2
    assert data.folds[1] in (0, 1, 2, 3)


def test_split_null_is_like_no_split():
    data = from_rows([row(i, split=None, fold=4) for i in range(3)])
    assert data.folds.tolist() == [4, 4, 4]


@pytest.mark.parametrize("value", ["holdout", "Test", 4, True])
def test_unknown_split_names_the_line_and_the_allowed_values(value):
    rows = [row(0, split="train"), row(1, split=value)]
    with pytest.raises(OutcomeDataError, match=r"line 2: split") as err:
        from_rows(rows)
    assert "train, dev, calibration, validation, test" in str(err.value)


# --- defects 2 and 3: fold must be an integer 0–4 ------------------------------------------------


@pytest.mark.parametrize("value", ["4", 4.0, True, [4], "four"])
def test_non_integer_fold_is_an_error_naming_the_line(value):
    rows = [row(0, fold=1), row(1, fold=value)]
    with pytest.raises(OutcomeDataError, match=r"line 2: fold must be an integer 0–4"):
        from_rows(rows)


def test_string_fold_error_says_how_to_fix_it():
    with pytest.raises(OutcomeDataError, match=r"without quotes"):
        from_rows([row(0, fold="4")])


@pytest.mark.parametrize("value", [7, 5, -1])
def test_fold_outside_0_to_4_is_an_error_naming_the_line(value):
    rows = [row(0, fold=0), row(1, fold=1), row(2, fold=value)]
    with pytest.raises(OutcomeDataError, match=rf"line 3: fold {value} is outside 0–4"):
        from_rows(rows)


# --- defect 4: scores, costs and token counts -----------------------------------------------------


@pytest.mark.parametrize("value", [10.0, -0.5, 1.0001, True, False, "1", None, float("nan")])
def test_score_must_be_a_number_in_0_1(value):
    rows = [row(0), with_outcome(row(1), "model-y", score=value)]
    with pytest.raises(
        OutcomeDataError, match=r"line 2: model 'model-y': score must be a number in \[0, 1\]"
    ):
        from_rows(rows)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cost_usd", -0.01),
        ("cost_usd", True),
        ("cost_usd", "0.1"),
        ("cost_usd", float("inf")),
        ("prompt_tokens", -3),
        ("prompt_tokens", True),
        ("prompt_tokens", 1.5),
        ("completion_tokens", -1),
        ("completion_tokens", "7"),
    ],
)
def test_costs_and_token_counts_must_be_non_negative_numbers(field, value):
    rows = [row(0), row(1), with_outcome(row(2), "model-z", **{field: value})]
    with pytest.raises(OutcomeDataError, match=rf"line 3: model 'model-z': {field} must be a non-negative"):
        from_rows(rows)


def test_cost_is_required_and_token_counts_are_optional():
    data = from_rows([with_outcome(row(0), "model-x", prompt_tokens=None, completion_tokens=None)])
    assert data.input_tokens.tolist() == [0]
    bare = row(0)
    del bare["outcomes"]["model-x"]["cost_usd"]
    with pytest.raises(OutcomeDataError, match=r"line 1: model 'model-x': cost_usd"):
        from_rows([bare])


def test_integral_numbers_are_accepted_everywhere():
    data = from_rows([with_outcome(row(0, fold=3), "model-x", score=1, cost_usd=0, prompt_tokens=12.0)])
    assert data.scores[0, 0] == 1.0 and data.costs[0, 0] == 0.0 and data.input_tokens[0] == 12


def test_outcome_entry_must_be_an_object():
    r = row(0)
    r["outcomes"]["model-y"] = 0.5
    with pytest.raises(OutcomeDataError, match=r"line 1: model 'model-y': outcome must be an object"):
        from_rows([r])


# --- defect 5: behaviour that stays ----------------------------------------------------------------


def test_rows_without_fold_get_deterministic_position_folds():
    data = from_rows([row(i) for i in range(12)])
    assert data.folds.tolist() == [(i + 1) % 5 for i in range(12)]
    assert from_rows([row(i) for i in range(12)]).folds.tolist() == data.folds.tolist()


def test_models_any_number_and_any_names_sorted():
    data = from_rows([row(0, fold=0), row(1, fold=4)])
    assert data.models == sorted(MODELS) and data.scores.shape == (2, 3)


def test_a_model_missing_from_a_row_rejects_the_file():
    r = row(1)
    del r["outcomes"]["model-z"]
    with pytest.raises(OutcomeDataError, match=r"line 2: models \['model-x', 'model-y'\] differ"):
        from_rows([row(0), r])


def test_malformed_json_names_the_file_line(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(row(0)) + "\n\n" + '{"prompt": "x"\n')
    with pytest.raises(OutcomeDataError, match=r"broken.jsonl: line 3: invalid JSON"):
        load_outcomes(path)


def test_field_errors_name_the_file_line_across_blank_lines(tmp_path):
    path = tmp_path / "gaps.jsonl"
    path.write_text(json.dumps(row(0)) + "\n\n\n" + json.dumps(row(1, fold=9)) + "\n")
    with pytest.raises(OutcomeDataError, match=r"gaps.jsonl: line 4: fold 9"):
        load_outcomes(path)


# --- how errors surface in `thrifty route …` ------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (row(3, fold=7), "line 4: fold 7 is outside 0–4"),
        (row(3, fold="4"), "line 4: fold must be an integer"),
        (row(3, split="holdout"), 'line 4: split "holdout" is not one of'),
        (with_outcome(row(3), "model-x", score=10.0), "line 4: model 'model-x': score must be"),
        (with_outcome(row(3), "model-y", cost_usd=-1), "line 4: model 'model-y': cost_usd must be"),
    ],
)
@pytest.mark.parametrize(
    "command", [["eval"], ["train", "--out", "{tmp}/r.npz"], ["calibrate", "--target", "strong:0.3"]]
)
def test_cli_prints_one_error_line_and_exits_2(tmp_path, bad, message, command):
    path = write(tmp_path / "bad.jsonl", [row(0, fold=0), row(1, fold=1), row(2, fold=4), bad])
    args = [command[0], "--data", str(path), *(a.format(tmp=tmp_path) for a in command[1:])]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. numpy RuntimeWarnings from a score of 10
        result = CliRunner().invoke(route, args)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: ") and message in lines[0]
    assert "Traceback" not in result.output
    assert not (tmp_path / "r.npz").exists()
