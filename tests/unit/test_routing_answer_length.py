"""The side-information routing experiments: the answer-length head (evaluate/answer_length.py),
the group prior (evaluate/side_info.py) and their `route_experiments` variants."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from thrifty.evaluate import answer_length
from thrifty.evaluate.route_experiments import experiment, main
from thrifty.evaluate.side_info import group_prior_logits
from thrifty.routing.data import from_rows
from thrifty.routing.learned import dense_design

UNITS = ["apples", "kg", "miles", "dollars"]


def steps_rows(n: int = 400, seed: int = 3, lengths: bool = True) -> list[dict]:
    """Word problems with 1–6 quantities: answers grow with the quantities; the weak model fails
    more often on long ones (noisy labels), the strong one rarely."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        k = rng.randint(1, 6)
        numbers = " and ".join(f"{rng.randint(2, 90)} {rng.choice(UNITS)}" for _ in range(k))
        weak_ok = rng.random() < (0.95 if k <= 2 else 0.6 if k <= 4 else 0.2)
        outcomes = {
            "weak": {"score": float(weak_ok), "cost_usd": 0.0001},
            "strong": {"score": float(rng.random() < 0.9), "cost_usd": 0.01},
        }
        for name, out in outcomes.items():
            if lengths:
                out["completion_tokens"] = 30 * k + rng.randint(0, 10) + (5 if name == "weak" else 0)
        rows.append(
            {
                "id": str(i),
                "fold": i % 4,
                "prompt": f"Tom has {numbers}. How many in all?",
                "outcomes": outcomes,
            }
        )
    return rows


def length_design(prompts: list[str]) -> np.ndarray:
    return answer_length.design(answer_length.lexical_of(dense_design(None, prompts)), prompts)


def test_head_recovers_answer_length_from_the_prompt():
    data = from_rows(steps_rows())
    assert answer_length.usable(data.completion_tokens)
    x = answer_length.design(answer_length.lexical_of(dense_design(None, data.prompts)), data.prompts)
    oof = answer_length.out_of_fold(x, data.completion_tokens, data.folds)
    truth = np.log1p(data.completion_tokens)
    for j in range(2):
        assert np.corrcoef(oof[:, j], truth[:, j])[0, 1] > 0.8  # the number of quantities is in the prompt
    head = answer_length.AnswerLengthHead.fit(x, data.completion_tokens)
    assert head.weights.shape == (2, x.shape[1]) and head.predict(x[:3]).shape == (3, 2)


def test_usable_needs_every_length_recorded_and_some_variation():
    assert not answer_length.usable(np.array([[1.0, 1.0], [1.0, 1.0]]))  # one-token answers (MMLU)
    assert not answer_length.usable(np.array([[1.0, np.nan], [5.0, 3.0]]))  # a row records none
    assert answer_length.usable(np.array([[1.0, 1.0], [1.0, 4.0]]))
    assert not answer_length.usable(from_rows(steps_rows(40, lengths=False)).completion_tokens)


def test_group_prior_uses_only_other_folds():
    groups = np.array(["a", "a", "b", "b"], dtype=object)
    scores = np.array([[1.0], [1.0], [0.0], [0.0]])
    folds = np.array([0, 1, 0, 1])
    logits = group_prior_logits(groups, scores, folds)
    # row 0 (fold 0, group a) sees only row 1: (1 + 20 · 0.5) / (1 + 20)
    assert logits[0, 0] == pytest.approx(np.log((11 / 21) / (10 / 21)))
    assert logits[2, 0] < 0 < logits[0, 0]


def test_side_information_variants(tmp_path, capsys):
    data = from_rows(steps_rows())
    table = experiment(data, ["baseline", "answer-length"])["variants"]
    assert set(table) == {"baseline", "answer-length"} and table["answer-length"]["nested"] > 0.5
    with pytest.raises(ValueError, match="group-prior: --group-field"):
        experiment(data, ["group-prior"])
    with pytest.raises(ValueError, match="answer-length"):
        experiment(from_rows(steps_rows(lengths=False)), ["answer-length"])
    path = tmp_path / "o.jsonl"
    rows = steps_rows()
    for row in rows:
        row["topic"] = "many" if row["prompt"].count(" and ") >= 3 else "few"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    main(["--data", str(path), "--group-field", "topic", "--only", "baseline,group-prior", "--json"])
    assert set(json.loads(capsys.readouterr().out)["variants"]) == {"baseline", "group-prior"}
    with pytest.raises(SystemExit) as exit_info:
        main(["--data", str(path), "--only", "group-prior"])
    assert exit_info.value.code == 2 and "--group-field" in capsys.readouterr().err
