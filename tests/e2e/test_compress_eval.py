"""`thrifty compress eval` as a command: on a slice of the real data and on files of both shapes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "compression"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "thrifty.cli", "compress", "eval", *args],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is missing")
@pytest.mark.parametrize(("name", "limit"), [("hotpotqa_distractor.jsonl", "40"), ("covidqa.jsonl", "60")])
def test_eval_on_a_slice_of_the_real_data(name, limit):
    done = run("--data", str(DATA / name), "--ratio", "0.5", "--limit", limit, "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["cases"] == int(limit)
    assert summary["context_tokens_after"] <= summary["context_tokens_before"] * 0.5
    assert summary["reduction"] >= 2.0
    assert summary["answers_kept"] >= 0.85  # the full files reach ≥ 95 % (docs/compression.md)
    assert (
        summary["p50_ms_per_1k_words"] > 0
        and summary["p95_ms_per_1k_words"] >= summary["p50_ms_per_1k_words"]
    )
    if name.startswith("hotpot"):
        assert summary["shape"] == "passages" and summary["supporting_kept"] >= 0.8
    else:
        assert summary["shape"] == "long_context" and summary["supporting_kept"] is None


def _filler(n: int) -> list[str]:
    return [f" Filler sentence number {k} describes the weather over the northern harbour." for k in range(n)]


def test_eval_on_small_files_of_both_shapes(tmp_path):
    passages = tmp_path / "passages.jsonl"
    rows = []
    for q in range(3):
        fact = f"Gold {q} fact: the code word is zebra{q}."
        gold = {"title": f"Gold {q}", "sentences": [fact, *_filler(3)], "gold": True, "supporting": [0]}
        other = [
            {"title": f"Other {i}", "sentences": _filler(6), "gold": False, "supporting": []}
            for i in range(5)
        ]
        question = f"What is the code word of Gold {q}?"
        mixed = [*other[:2], gold, *other[2:]]
        rows.append({"id": f"p{q}", "question": question, "answers": [f"zebra{q}"], "passages": mixed})
    passages.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    done = run("--data", str(passages), "--budget", "120")
    assert done.returncode == 0, done.stderr
    assert (
        "gold answers kept: 100.0 % of 3" in done.stdout
        and "supporting sentences kept: 100.0 %" in done.stdout
    )

    long_context = tmp_path / "long.jsonl"
    context = (
        " ".join(s.strip() for s in _filler(60))
        + " The harbour master is Ines Varga. "
        + "".join(_filler(20))
    )
    questions = [{"id": "c1", "question": "Who is the harbour master?", "answers": ["Ines Varga"]}]
    long_context.write_text(json.dumps({"document_id": 1, "context": context, "questions": questions}) + "\n")
    done = run("--data", str(long_context), "--ratio", "0.25", "--json")
    summary = json.loads(done.stdout)
    assert summary["answers_kept"] == 1.0 and summary["reduction"] >= 4.0


def test_eval_rejects_bad_input(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"something": "else"}\n')
    done = run("--data", str(bad))
    assert done.returncode == 2 and "not a compression data file" in done.stderr
    assert run("--data", str(bad), "--ratio", "1.5").returncode == 2
    assert run("--data", str(tmp_path / "missing.jsonl")).returncode == 2
