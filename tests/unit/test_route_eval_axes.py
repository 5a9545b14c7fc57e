"""`thrifty route eval`: the headline axis is the calls axis for two models and the cost axis for more,
the bootstrap interval and the random router are on that axis, and `--json` keeps both axes' figures."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from thrifty.route_cli import route

FOUR = {"tiny": 0.0001, "small": 0.0003, "mid": 0.002, "huge": 0.01}
TWO = {"tiny": 0.0001, "huge": 0.01}
GOOD = {
    "poetry": {"tiny", "small", "mid", "huge"},
    "trivia": {"small", "mid", "huge"},
    "algebra": {"mid", "huge"},
    "quantum": {"huge"},
}


def rows_for(models: dict[str, float], n: int = 600, seed: int = 11) -> list[dict[str, Any]]:
    """Topic decides who answers well (5 % of scores flipped); every model of `models` is scored."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        topic = rng.choice(sorted(GOOD))
        outcomes = {
            m: {"score": float((m in GOOD[topic]) == (rng.random() > 0.05)), "cost_usd": c}
            for m, c in models.items()
        }
        prompt = f"question {i} about {topic} word{rng.randint(0, 50)}"
        rows.append({"id": str(i), "fold": i % 5, "prompt": prompt, "outcomes": outcomes})
    return rows


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


def run_eval(path: Path, *extra: str) -> str:
    result = CliRunner().invoke(route, ["eval", "--data", str(path), "--no-embedding", *extra])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def four_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("axes") / "four.jsonl", rows_for(FOUR))


@pytest.fixture(scope="module")
def four_report(four_models: Path) -> dict[str, Any]:
    return json.loads(run_eval(four_models, "--json"))


def test_more_than_two_models_headline_on_cost_axis(four_report: dict[str, Any]) -> None:
    assert four_report["headline_axis"] == "cost"
    router, random_router = four_report["router"], four_report["baselines"]["random"]
    head = router["headline"]
    assert head["axis"] == "cost"
    assert head["apgr"] == pytest.approx(router["apgr_cost"], abs=1e-12)
    assert head["cpt50"] == router["cpt50_cost"] and head["cpt80"] == router["cpt80_cost"]
    assert router["apgr"] < head["apgr"]  # the calls axis undersells a router that uses the mid models
    noise = router["apgr_bootstrap"]
    assert noise["axis"] == "cost" and noise["low"] <= head["apgr"] <= noise["high"]
    assert random_router["headline"]["axis"] == "cost"
    assert random_router["headline"]["apgr"] == pytest.approx(random_router["apgr_cost"], abs=1e-12)
    assert head["apgr"] > 0.8 > random_router["headline"]["apgr"]


def test_more_than_two_models_text_names_the_axis(four_models: Path, four_report: dict[str, Any]) -> None:
    text = run_eval(four_models)
    assert "axis: cost share" in text
    head = four_report["router"]["headline"]
    learned = next(line for line in text.splitlines() if line.strip().startswith("learned"))
    assert f"APGR {head['apgr']:.3f}" in learned.split("|")[0]
    assert f"calls axis: APGR {four_report['router']['apgr']:.3f}" in learned
    rand = next(line for line in text.splitlines() if line.strip().startswith("random router"))
    assert f"APGR {four_report['baselines']['random']['apgr_cost']:.3f}" in rand.split("|")[0]
    assert "calls axis:" in rand
    interval = next(line for line in text.splitlines() if "interval" in line)
    assert "cost" in interval


def test_two_models_keep_the_calls_axis(tmp_path: Path) -> None:
    path = write(tmp_path / "two.jsonl", rows_for(TWO))
    report = json.loads(run_eval(path, "--json"))
    assert report["headline_axis"] == "calls"
    router = report["router"]
    assert router["headline"]["axis"] == "calls"
    assert router["headline"]["apgr"] == pytest.approx(router["apgr"], abs=1e-12)
    assert router["headline"]["cpt80"] == router["cpt80"]
    assert router["apgr_bootstrap"]["axis"] == "calls"
    assert router["apgr_bootstrap"]["low"] <= router["apgr"] <= router["apgr_bootstrap"]["high"]
    assert report["baselines"]["random"]["headline"]["axis"] == "calls"
    text = run_eval(path)
    assert "axis: cost share" not in text and "| cost axis: APGR" in text
