"""The learned router on synthetic outcomes with three models: training, selection, file round trip,
and `thrifty route eval/train/calibrate` on a file of the documented format (no embeddings: fast)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from thrifty.route_cli import route
from thrifty.routing.data import OutcomeDataError, from_rows, load_outcomes
from thrifty.routing.learned import LearnedModel, LearnedRouter, RouterFileError
from thrifty.routing.signals import Signals
from thrifty.routing.train import train

MODELS = {"tiny": 0.0001, "mid": 0.001, "huge": 0.01}


def synthetic_rows(n: int = 600, seed: int = 7) -> list[dict]:
    """Topic decides who answers well: 'poetry' everyone, 'algebra' mid+huge, 'quantum' only huge."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        topic = rng.choice(["poetry", "algebra", "quantum"])
        good = {"poetry": {"tiny", "mid", "huge"}, "algebra": {"mid", "huge"}, "quantum": {"huge"}}[topic]
        outcomes = {
            m: {"score": float(m in good if rng.random() > 0.05 else m not in good), "cost_usd": c}
            for m, c in MODELS.items()
        }
        rows.append(
            {
                "id": str(i),
                "task": topic,
                "fold": i % 5,
                "prompt": f"question {i} about {topic} word{rng.randint(0, 50)}",
                "outcomes": outcomes,
            }
        )
    return rows


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("routing") / "synthetic.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in synthetic_rows()))
    return path


def test_train_predict_and_choose(tmp_path, data_file):
    data = load_outcomes(data_file)
    assert data.models == sorted(MODELS) and data.scores.shape == (600, 3)
    train_set, _ = data.split()
    model, report = train(train_set, None)
    assert report.cv_apgr > 0.8
    path = model.save(tmp_path / "r.npz")
    router = LearnedRouter.load(path)
    q = dict(
        zip(
            router.models, router.quality(Signals.of_prompt("question 9999 about quantum word3")), strict=True
        )
    )
    assert q["huge"] > 0.8 and q["tiny"] < 0.3
    from thrifty.routing import select

    cost = list(router.model.est_cost)
    for topic, expected in (("poetry", "tiny"), ("algebra", "mid"), ("quantum", "huge")):
        quality = router.quality(Signals.of_prompt(f"question 1 about {topic} word1"))
        assert router.models[select.cheapest_meeting(quality, cost, 0.8)] == expected


def test_router_file_errors(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(RouterFileError):
        LearnedModel.load(bad)
    with pytest.raises(RouterFileError):
        LearnedModel.load(tmp_path / "missing.npz")


def test_data_errors(tmp_path):
    with pytest.raises(OutcomeDataError, match="line 1"):
        from_rows([{"prompt": "x", "outcomes": {"a": {"score": "high", "cost_usd": 1}}}])
    with pytest.raises(OutcomeDataError, match="line 2"):
        from_rows(
            [
                {"prompt": "x", "outcomes": {"a": {"score": 1, "cost_usd": 1}}},
                {"prompt": "y", "outcomes": {"b": {"score": 1, "cost_usd": 1}}},
            ]
        )
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"prompt": "x"\n')
    with pytest.raises(OutcomeDataError, match="invalid JSON"):
        load_outcomes(broken)


def test_cli_eval_json_train_and_calibrate(tmp_path, data_file):
    runner = CliRunner()
    result = runner.invoke(route, ["eval", "--data", str(data_file), "--no-embedding", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["weak"] == "tiny" and report["strong"] == "huge"
    router, base = report["router"], report["baselines"]
    assert base["random"]["apgr"] == pytest.approx(0.5, abs=0.01)
    assert router["apgr_cost"] > 0.8 > base["random"]["apgr_cost"]
    assert router["cost_at_95_share"] < 0.6
    assert base["oracle"]["quality"] >= base["best_single"]["quality"]
    out = tmp_path / "router.npz"
    assert (
        runner.invoke(
            route, ["train", "--data", str(data_file), "--out", str(out), "--no-embedding"]
        ).exit_code
        == 0
    )
    again = runner.invoke(route, ["eval", "--data", str(data_file), "--router", str(out), "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["router"]["apgr"] == pytest.approx(router["apgr"], abs=1e-9)
    cal = runner.invoke(
        route, ["calibrate", "--data", str(data_file), "--target", "quality:0.95", "--no-embedding", "--json"]
    )
    assert cal.exit_code == 0, cal.output
    figures = json.loads(cal.output)
    assert figures["confidence"] == 0.9
    assert figures["calibration"]["quality_share_of_strong"] >= figures["calibration"]["bound"] >= 0.95
    assert figures["held_out"]["cost_share_of_strong"] < 0.8
    assert "met_on_held_out" in figures
    args = ["calibrate", "--data", str(data_file), "--target", "quality:0.95", "--no-embedding"]
    point = runner.invoke(route, [*args, "--confidence", "0.5", "--json"])
    assert point.exit_code == 0, point.output
    loose = json.loads(point.output)["calibration"]
    assert loose["bound"] == pytest.approx(loose["quality_share_of_strong"])  # the point estimate
    assert loose["cost_share_of_strong"] <= figures["calibration"]["cost_share_of_strong"]
    bad = runner.invoke(
        route, ["calibrate", "--data", str(data_file), "--target", "quality:0.95", "--confidence", "1.2"]
    )
    assert bad.exit_code == 2 and "confidence" in bad.output


def test_cli_bad_file_is_a_clear_error(tmp_path):
    missing = CliRunner().invoke(route, ["eval", "--data", str(tmp_path / "nope.jsonl"), "--no-embedding"])
    assert missing.exit_code == 2 and "cannot read" in missing.output


def test_cli_router_with_truncated_embedding(tmp_path, data_file):
    """`--embed-tokens N`: the dense head embeds the first N tokens; the router file remembers N and a
    reloaded router embeds the same way (same figures)."""
    runner = CliRunner()
    env: dict[
        str, str
    ] = {}  # default caches: vectors keyed by embedder id + prompts, the ONNX model built once
    out = tmp_path / "router.npz"
    trained = runner.invoke(
        route, ["train", "--data", str(data_file), "--out", str(out), "--embed-tokens", "8"], env=env
    )
    assert trained.exit_code == 0, trained.output
    model = LearnedModel.load(out)
    assert model.embed_tokens == 8 and model.use_embedding
    router = LearnedRouter(model)
    assert router.embedder.max_tokens == 8
    quality = dict(
        zip(router.models, router.quality(Signals.of_prompt("question 3 about quantum word2")), strict=True)
    )
    assert quality["huge"] > 0.8 > quality["tiny"]
    first = runner.invoke(route, ["eval", "--data", str(data_file), "--router", str(out), "--json"], env=env)
    again = runner.invoke(route, ["eval", "--data", str(data_file), "--router", str(out), "--json"], env=env)
    assert first.exit_code == 0, first.output
    a, b = json.loads(first.output)["router"], json.loads(again.output)["router"]
    assert a["embed_tokens"] == 8 and a["apgr"] == pytest.approx(b["apgr"], abs=1e-12)
    # three models: the interval is on the headline (cost) axis, not the calls axis of `apgr`
    assert a["apgr_bootstrap"]["low"] <= a["headline"]["apgr"] <= a["apgr_bootstrap"]["high"]


def test_bootstrap_interval_brackets_the_figure():
    import numpy as np

    from thrifty.evaluate.bootstrap import apgr_interval
    from thrifty.evaluate.metrics import Reference, sweep

    rng = np.random.default_rng(3)
    n = 400
    scores = np.stack([rng.random(n) < 0.85, rng.random(n) < 0.6], axis=1).astype(float)
    costs = np.tile([0.01, 0.0002], (n, 1))
    probs = scores + rng.normal(0, 0.8, scores.shape)  # an informative, noisy router
    est = costs.mean(axis=0)
    figure = sweep(probs, est, scores, costs, Reference.of(scores, costs)).apgr("calls")
    noise = apgr_interval(probs, est, scores, costs, resamples=60)
    assert noise["low"] < figure < noise["high"] and 0.005 < noise["std"] < 0.1
    assert figure > 0.55  # better than random (0.5)
