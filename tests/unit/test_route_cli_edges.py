"""`thrifty route …` on bad arguments and degenerate data: one-line errors (exit 2) instead of
tracebacks, a warning instead of misleading figures when there is nothing to route, and the cascade's
headline on the cost axis with three or more tiers (as the router's)."""

from __future__ import annotations

import json
import random
import warnings
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from thrifty.route_cli import route
from thrifty.routing.classifier import TASKS

TWO = {"tiny": 0.0001, "huge": 0.01}
THREE = {"tiny": 0.0001, "mid": 0.001, "huge": 0.01}
GOOD = {"poetry": {"tiny", "mid", "huge"}, "algebra": {"mid", "huge"}, "quantum": {"huge"}}


def rows_for(
    models: dict[str, float], score: Any = None, n: int = 300, seed: int = 5, task: bool = True
) -> list[dict[str, Any]]:
    """Topic decides who answers well (5 % flipped) unless `score(model, topic)` says otherwise; every
    answer is recorded (a wrong one says so), so the rows work for a cascade too."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        topic = rng.choice(sorted(GOOD))
        outcomes = {}
        for m, c in models.items():
            s = float((m in GOOD[topic]) == (rng.random() > 0.05)) if score is None else score(m, topic)
            text = f"the answer is {i}. " * 40 if s else "I don't know."
            outcomes[m] = {"score": s, "cost_usd": c, "response": text}
        row = {"id": str(i), "fold": i % 5, "prompt": f"question {i} about {topic}", "outcomes": outcomes}
        if task:
            row["task"] = topic
        rows.append(row)
    return rows


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


def invoke(*args: str) -> Result:
    return CliRunner().invoke(route, list(args))


def usage_error(result: Result) -> str:
    """The one-line `error: …` of an exit-2 failure (no traceback)."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# --- classify ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("classify") / "labelled.jsonl", rows_for(TWO))


def test_classify_expect_without_equals_is_a_usage_error(labelled: Path) -> None:
    line = usage_error(invoke("classify", "--data", str(labelled), "--expect", "poetry"))
    assert "--expect" in line and "poetry" in line and "=" in line


def test_classify_expect_unknown_task_lists_the_tasks(labelled: Path) -> None:
    line = usage_error(invoke("classify", "--data", str(labelled), "--expect", "poetry=nonsense"))
    assert "'nonsense'" in line
    assert all(t in line for t in TASKS)


def test_classify_rows_without_task_field(tmp_path: Path) -> None:
    path = write(tmp_path / "untagged.jsonl", rows_for(TWO, task=False))
    line = usage_error(invoke("classify", "--data", str(path), "--expect", "gsm8k=math"))
    assert "task" in line and "gsm8k" in line
    line = usage_error(invoke("classify", "--data", str(path)))
    assert "task" in line


def test_classify_expect_names_no_task_of_the_file(labelled: Path) -> None:
    line = usage_error(invoke("classify", "--data", str(labelled), "--expect", "gsm8k=math"))
    assert "gsm8k" in line and "algebra" in line  # names the tasks the file does carry


def test_classify_still_scores_a_labelled_file(labelled: Path) -> None:
    mapping = ["--expect", "poetry=creative", "--expect", "algebra=math", "--expect", "quantum=reasoning"]
    result = invoke("classify", "--data", str(labelled), *mapping)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("accuracy ") and "on 300 prompts" in result.stdout
    assert result.stderr == ""


# --- cascade headline axis ---------------------------------------------------------------------


def cascade_report(path: Path) -> dict[str, Any]:
    result = invoke("eval", "--data", str(path), "--cascade", "--no-embedding", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_cascade_with_three_tiers_headlines_the_cost_axis(tmp_path: Path) -> None:
    path = write(tmp_path / "three.jsonl", rows_for(THREE))
    report = cascade_report(path)
    assert report["tiers"] == ["tiny", "mid", "huge"]
    assert report["headline_axis"] == "cost"
    gate, rand = report["learned_gate"], report["baselines"]["random"]
    assert gate["headline"]["axis"] == "cost"
    assert gate["headline"]["apgr"] == pytest.approx(gate["apgr_cost"], abs=1e-12)
    assert gate["headline"]["cpt80"] == gate["cpt80_cost"]
    assert rand["headline"]["axis"] == "cost"
    assert rand["headline"]["apgr"] == pytest.approx(rand["apgr_cost"], abs=1e-12)
    text = invoke("eval", "--data", str(path), "--cascade", "--no-embedding").stdout
    assert "axis: cost share" in text
    learned = next(line for line in text.splitlines() if line.strip().startswith("learned gate "))
    head, other = learned.split("|")
    assert f"APGR {gate['apgr_cost']:.3f}" in head
    assert f"calls axis: APGR {gate['apgr']:.3f}" in other
    random_line = next(line for line in text.splitlines() if line.strip().startswith("random router"))
    assert f"APGR {rand['apgr_cost']:.3f}" in random_line.split("|")[0]


def test_cascade_with_two_tiers_keeps_the_calls_axis(tmp_path: Path) -> None:
    path = write(tmp_path / "two.jsonl", rows_for(TWO))
    report = cascade_report(path)
    assert report["headline_axis"] == "calls"
    gate = report["learned_gate"]
    assert gate["headline"]["axis"] == "calls"
    assert gate["headline"]["apgr"] == pytest.approx(gate["apgr"], abs=1e-12)
    assert report["baselines"]["random"]["headline"]["axis"] == "calls"
    text = invoke("eval", "--data", str(path), "--cascade", "--no-embedding").stdout
    assert "axis: cost share" not in text and "| cost axis: APGR" in text


# --- degenerate data -------------------------------------------------------------------------


def cheap_is_best(model: str, topic: str) -> float:
    return 1.0 if model == "tiny" else float(topic == "poetry")


@pytest.mark.parametrize("cascade", [False, True], ids=["router", "cascade"])
def test_cheapest_model_best_warns_and_reports_no_apgr(tmp_path: Path, cascade: bool) -> None:
    path = write(tmp_path / "cheap_best.jsonl", rows_for(TWO, cheap_is_best))
    extra = ["--cascade"] if cascade else []
    result = invoke("eval", "--data", str(path), "--no-embedding", "--json", *extra)
    assert result.exit_code == 0, result.output
    warning = result.stderr.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith("warning: nothing to route"), result.stderr
    assert "tiny" in warning[0] and "cheapest" in warning[0]
    report = json.loads(result.stdout)
    assert report["weak"] == report["strong"] == "tiny"
    assert report["warnings"] and "nothing to route" in report["warnings"][0]
    figures = report["learned_gate" if cascade else "router"]
    for key in ("apgr", "cpt50", "cpt80", "apgr_cost", "cpt50_cost", "cpt80_cost"):
        assert figures[key] is None, key
    assert figures["headline"]["apgr"] is None
    rand = report["baselines"]["random"]
    assert rand["apgr"] is None and rand["headline"]["apgr"] is None
    assert report["baselines"]["oracle"]["pgr"] is None
    if not cascade:
        assert figures["apgr_bootstrap"] is None
    text = invoke("eval", "--data", str(path), "--no-embedding", *extra)
    assert text.exit_code == 0, text.output
    assert "APGR 0.000" not in text.stdout and "never" not in text.stdout
    assert "n/a" in text.stdout
    always = [line for line in text.stdout.splitlines() if line.strip().startswith("always tiny")]
    assert len(always) == 1  # weak and strong are the same model: listed once


def test_all_scores_tie_warns(tmp_path: Path) -> None:
    path = write(tmp_path / "ties.jsonl", rows_for(THREE, lambda m, t: 1.0))
    result = invoke("eval", "--data", str(path), "--no-embedding")
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("warning: nothing to route") and "same mean score" in result.stderr
    assert "APGR 0.000" not in result.stdout and "random router" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["eval"],
        ["eval", "--cascade", "--no-embedding"],
        ["train", "--out", "OUT"],
        ["train-gate", "--out", "OUT", "--no-embedding"],
    ],
    ids=["eval", "eval-cascade", "train", "train-gate"],
)
def test_one_model_is_an_error(tmp_path: Path, args: list[str]) -> None:
    path = write(tmp_path / "one.jsonl", rows_for({"solo": 0.001}))
    args = [str(tmp_path / "out.npz") if a == "OUT" else a for a in args]
    line = usage_error(invoke(*args, "--data", str(path)))
    assert "needs at least two models" in line and "solo" in line
    assert not (tmp_path / "out.npz").exists()


def test_reference_routable_and_why_not() -> None:
    import numpy as np

    from thrifty.evaluate.metrics import Reference, nothing_to_route

    scores = np.array([[0.0, 1.0], [1.0, 1.0]])
    gap = Reference.of(scores, np.array([[1.0, 2.0], [1.0, 2.0]]))
    assert gap.routable and nothing_to_route(gap, scores, ["a", "b"]) is None
    same_price = Reference.of(scores, np.ones((2, 2)))
    assert "costs no more than the cheapest" in (nothing_to_route(same_price, scores, ["a", "b"]) or "")
    tied = Reference.of(np.ones((2, 2)), np.array([[1.0, 2.0], [1.0, 2.0]]))
    assert not tied.routable and tied.weak == tied.strong == 0


# --- files without training or test rows ------------------------------------------------------


def only_folds(rows: list[dict[str, Any]], folds: set[int]) -> list[dict[str, Any]]:
    return [r for r in rows if r["fold"] in folds]


@pytest.mark.parametrize(
    "args",
    [
        ["eval", "--no-embedding"],
        ["eval", "--cascade", "--no-embedding"],
        ["calibrate", "--target", "quality:0.9", "--no-embedding"],
        ["calibrate", "--cascade", "--target", "quality:0.9", "--no-embedding"],
    ],
    ids=["eval", "eval-cascade", "calibrate", "calibrate-cascade"],
)
def test_no_test_rows_is_a_one_line_error(tmp_path: Path, args: list[str]) -> None:
    path = write(tmp_path / "no4.jsonl", only_folds(rows_for(TWO), {0, 1, 2, 3}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy RuntimeWarning on an empty split would be a bug
        line = usage_error(invoke(*args, "--data", str(path)))
    assert "the data needs rows in folds 0–3 (train) and fold 4 (test)" in line
    assert "240 train and 0 test rows" in line


@pytest.mark.parametrize(
    "args",
    [
        ["eval", "--no-embedding"],
        ["train", "--out", "OUT"],
        ["train-gate", "--out", "OUT", "--no-embedding"],
        ["calibrate", "--cascade", "--target", "quality:0.9", "--no-embedding"],
    ],
    ids=["eval", "train", "train-gate", "calibrate-cascade"],
)
def test_no_training_rows_is_a_one_line_error(tmp_path: Path, args: list[str]) -> None:
    path = write(tmp_path / "only4.jsonl", only_folds(rows_for(TWO), {4}))
    args = [str(tmp_path / "out.npz") if a == "OUT" else a for a in args]
    line = usage_error(invoke(*args, "--data", str(path)))
    assert "the data needs rows in folds 0–3 (train)" in line and "0 train and 60 test rows" in line
    assert not (tmp_path / "out.npz").exists()


def test_train_gate_needs_no_test_rows(tmp_path: Path) -> None:
    path = write(tmp_path / "no4.jsonl", only_folds(rows_for(TWO), {0, 1, 2, 3}))
    result = invoke("train-gate", "--data", str(path), "--out", str(tmp_path / "g.npz"), "--no-embedding")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "g.npz").exists()


# --- calibration on data with nothing to route ------------------------------------------------


def test_calibrate_on_tied_scores_warns_and_serves_the_cheapest(tmp_path: Path) -> None:
    dear_first = {"huge": 0.01, "tiny": 0.0001}  # the dear model first in file order
    path = write(tmp_path / "ties.jsonl", rows_for(dear_first, lambda m, t: 1.0))
    result = invoke("calibrate", "--data", str(path), "--target", "quality:0.9", "--no-embedding", "--json")
    assert result.exit_code == 0, result.output
    warning = result.stderr.strip().splitlines()
    assert len(warning) == 1 and warning[0].startswith("warning: nothing to route"), result.stderr
    assert "240 calibration prompts" in warning[0]
    report = json.loads(result.stdout)
    assert report["warnings"] == [warning[0].removeprefix("warning: ")]
    # ties go to the cheaper model, as the gateway's tradeoff policy sends them: cost of always-tiny
    assert report["calibration"]["cost_share_of_strong"] == pytest.approx(1.0)
    assert report["held_out"]["cost_share_of_strong"] == pytest.approx(1.0)
