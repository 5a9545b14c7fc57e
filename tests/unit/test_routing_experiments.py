"""Routing experiments inside the training folds: item-level features, weighted logistic fits and the
variant runner (its baseline must equal what `train` reports as cv_apgr)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from thrifty.evaluate.item_features import ITEM_NAMES, item_features, item_matrix, split_item
from thrifty.evaluate.route_experiments import experiment, main, quadratic
from thrifty.routing import logistic
from thrifty.routing.data import from_rows
from thrifty.routing.ngrams import NgramFeaturizer
from thrifty.routing.sparse_logistic import Design
from thrifty.routing.sparse_logistic import fit as sparse_fit
from thrifty.routing.train import train

MC = "Which of the following is NOT a prime number?\nA. 2\nB. 3\nC. 9\nD. None of the above\nAnswer:"
WORD_PROBLEM = (
    "Tom buys 3 apples for $2 each and 4 pears for 150 cents each. "
    "He walks 2 miles home in 40 minutes. How much did he spend?"
)


def named(text: str) -> dict[str, float]:
    return dict(zip(ITEM_NAMES, item_features(text), strict=True))


def test_item_features_read_options_negation_and_numbers():
    stem, options = split_item(MC)
    assert stem == "Which of the following is NOT a prime number?"
    assert options == ["2", "3", "9", "None of the above"]
    mc = named(MC)
    assert mc["options"] == 1.0  # four options / 4
    assert mc["numeric_options"] == 0.75
    assert mc["all_none_of_above"] == 1.0 and mc["negated_stem_upper"] == 1.0
    assert mc["negated_question"] == 1.0
    word = named(WORD_PROBLEM)
    assert word["options"] == 0.0 and word["numeric_options"] == 0.0 and word["negated_stem_upper"] == 0.0
    assert word["stem_numbers"] > mc["stem_numbers"] and word["stem_units"] > 0
    assert word["sentences"] > mc["sentences"] and word["context_words"] > mc["context_words"]
    assert 0 < word["question_share"] < 0.5
    assert word["largest_number"] == pytest.approx(np.log1p(150) / 10)
    assert named("What is f(x) = x^2 at x = 3?")["formula"] == 1.0
    assert named("Statement 1 | Every group is abelian.")["statements"] == 1.0
    matrix = item_matrix([MC, WORD_PROBLEM, ""])
    assert matrix.shape == (3, len(ITEM_NAMES)) and np.isfinite(matrix).all()
    assert matrix[2].sum() == 0.0  # an empty prompt measures nothing


def test_sample_weights_equal_duplicated_rows():
    """An integer weight is the same as repeating the row (the L2 term scales with the row count, so
    the same `l2` gives the same optimum): Newton and L-BFGS, dense and sparse."""
    rng = np.random.default_rng(1)
    n = 120
    x = np.hstack([rng.normal(size=(n, 3)), np.ones((n, 1))])
    y = (rng.random(n) < 1 / (1 + np.exp(-x[:, 0]))).astype(float)
    weight = rng.integers(1, 4, n).astype(float)
    repeat = np.repeat(np.arange(n), weight.astype(int))
    weighted = logistic.fit(x, y, 2.0, sample_weight=weight, iterations=60, tol=1e-12)
    duplicated = logistic.fit(x[repeat], y[repeat], 2.0, iterations=60, tol=1e-12)
    assert weighted == pytest.approx(duplicated, abs=1e-6)
    assert not np.allclose(weighted, logistic.fit(x, y, 2.0, iterations=60, tol=1e-12), atol=1e-3)
    texts = [f"about {'quantum' if v else 'poetry'} item {i % 7}" for i, v in enumerate(y)]
    rows = NgramFeaturizer(dim=1 << 10).fit(texts).transform(texts)
    design = Design(x, rows)
    sparse_weighted = sparse_fit(design, y, 2.0, sample_weight=weight, tol=1e-10)
    sparse_dup = sparse_fit(design.take(repeat), y[repeat], 2.0, tol=1e-10)
    assert sparse_weighted == pytest.approx(sparse_dup, abs=1e-3)


def synthetic(n: int = 320, seed: int = 3) -> list[dict]:
    """Two models; 'hard' prompts only the expensive one answers, 'easy' both."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        hard = rng.random() < 0.4
        good = {"big": rng.random() < 0.9, "small": (not hard) and rng.random() < 0.85}
        topic = "quantum field theory" if hard else "simple arithmetic"
        rows.append(
            {
                "id": str(i),
                "fold": i % 4,
                "prompt": f"Question {i} on {topic}: what follows?\nA. one\nB. two\nAnswer:",
                "outcomes": {
                    m: {"score": float(ok), "cost_usd": 0.01 if m == "big" else 0.0005}
                    for m, ok in good.items()
                },
            }
        )
    return rows


def test_experiment_baseline_matches_train_and_variants_run():
    data = from_rows(synthetic())
    variants = ["baseline", "gain-soft", "disagree-x2", "item", "quad"]
    result = experiment(data, variants)
    table = result["variants"]
    assert list(table) == variants and result["folds"] == 4
    _, report = train(data, None)
    assert table["baseline"]["in_sample"] == pytest.approx(report.grid["stacked both"], abs=1e-9)
    assert table["baseline"]["diff_nested"] == 0.0
    for row in table.values():
        assert 0.7 < row["nested"] <= row["in_sample"] + 0.05  # the topic is learnable by every variant
    with pytest.raises(ValueError, match="unknown variants"):
        experiment(data, ["baseline", "nope"])


def test_quadratic_stacker_features():
    z = np.array([[1.0, 2.0], [0.0, -2.0]])
    x = quadratic(z)
    assert x.shape == (2, 2 + 3 + 1)
    assert x[0].tolist() == [1.0, 2.0, 0.25, 0.5, 1.0, 1.0]


def test_cli_prints_table_and_json(tmp_path, capsys):
    path = tmp_path / "outcomes.jsonl"
    rows = synthetic(200)
    for i, row in enumerate(rows):
        row["fold"] = 4 if i % 5 == 0 else i % 4
    path.write_text("\n".join(json.dumps(r) for r in rows))
    main(["--data", str(path), "--only", "baseline,quad", "--repeats", "2", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert result["repeats"] == 2 and result["rows"] == 160  # fold 4 is never read
    assert set(result["variants"]) == {"baseline", "quad"}
    main(["--data", str(path), "--only", "baseline"])
    assert "baseline" in capsys.readouterr().out
