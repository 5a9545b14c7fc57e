"""`thrifty cache train | calibrate | eval` as a user runs them: real CLI processes, real embedder."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from thrifty.cache.evaluate import verifier_scores
from thrifty.cache.verify import load_verifier
from thrifty.cache.verify.checks import CHECKS
from thrifty.cache.verify.model import VerifierModel
from thrifty.cache.verify.pairs import read_pairs, select
from thrifty.cache.verify.train import pair_vectors
from thrifty.embed import get_embedder
from thrifty.embed.diskcache import EmbeddingCache

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]
QQP = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "cache" / "qqp_pairs.jsonl"

TOPICS = (  # noqa: SIM905
    "Python Rust French chess guitar Spanish calculus Excel Java yoga piano German SQL drawing swimming "
    "Kotlin statistics poker Latin tennis"
).split()
PLACES = (  # noqa: SIM905
    "Paris Tokyo Berlin Madrid Rome Oslo Lima Cairo Delhi Seoul Vienna Prague Dublin Lisbon Athens Quito "
    "Hanoi Nairobi Boston Perth"
).split()
# (a, b, duplicate) templates: duplicates differ only in wording or case; the others in a number, a
# place or the kind of question, which the hard checks must catch whatever the learned model says
TEMPLATES = (
    ("How can I learn {t} quickly?", "how can i learn {t} quickly", True),
    ("What is the best book about {t}?", "What is the best book on {t}?", True),
    ("How do I get good at {t}?", "How can I get good at {t}?", True),
    ("Where can I learn {t} in {p}?", "Where can I learn {t} in {prev_p}?", False),
    ("Is {t} hard to learn in {n} weeks?", "Is {t} hard to learn in {m} weeks?", False),
    ("What is the weather like in {p}?", "What is the weather like in {prev_p}?", False),
    ("Why is {p} expensive?", "When is {p} expensive?", False),
)


def synthetic_pairs() -> list[dict]:
    rows = []
    for i, (topic, place) in enumerate(zip(TOPICS, PLACES, strict=True)):
        values = {"t": topic, "p": place, "prev_p": PLACES[i - 1], "n": i + 2, "m": i + 5}
        for a, b, duplicate in TEMPLATES:
            rows.append({"a": a.format(**values), "b": b.format(**values), "duplicate": duplicate})
    return rows


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "thrifty.cli", "cache", *args], capture_output=True, text=True, timeout=800
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache-cli")


def test_calibrate_meets_target_on_dev_and_eval_reports_fields(workdir: Path) -> None:
    pairs_file = workdir / "synthetic.jsonl"
    pairs_file.write_text("".join(json.dumps(r) + "\n" for r in synthetic_pairs()))
    emb = workdir / "emb"
    out = workdir / "calibrated.npz"
    proc = run("embed", "--pairs", str(pairs_file), "--embed-cache", str(emb))
    questions = {t for r in synthetic_pairs() for t in (r["a"], r["b"])}
    assert f"{len(questions)} questions: {len(questions)} embedded now" in proc.stdout
    cache = EmbeddingCache(get_embedder(), emb)
    assert len(cache) == len(questions) and cache.directory is not None
    assert cache.directory.name == cache.embedder_id  # vectors are kept per embedder backend
    proc = run("embed", "--pairs", str(pairs_file), "--embed-cache", str(emb))
    assert f"{len(questions)} questions: 0 embedded now" in proc.stdout
    # the bundled model at its own (QQP dev) operating point serves none of the near misses
    bundled = run("eval", "--pairs", str(pairs_file), "--split", "all", "--json", "--latency-queries", "0",
                  "--embed-cache", str(emb))  # fmt: skip
    shipped = json.loads(bundled.stdout)["verifier"]
    assert shipped["accepted"] == shipped["correct"] and shipped["correct"] >= 20

    # recalibrated to a loose target on these few pairs, the hard checks still veto every near miss
    proc = run("calibrate", "--pairs", str(pairs_file), "--target-precision", "0.8", "--out", str(out),
               "--vetoes", ",".join(CHECKS), "--embed-cache", str(emb))  # fmt: skip
    assert "threshold" in proc.stdout and out.exists()
    model = VerifierModel.load(out)
    assert model.meta["target_precision"] == 0.8 and model.threshold is not None
    assert model.vetoes == tuple(CHECKS)

    # the written threshold, applied to the dev pairs, keeps the target precision
    dev = select(read_pairs(pairs_file), "dev")
    scores, _ = verifier_scores(model, dev, pair_vectors(dev, EmbeddingCache(get_embedder(), emb)))
    accepted = [p.duplicate for p, s in zip(dev, scores, strict=True) if s >= model.threshold and s > 0]
    assert not accepted or sum(accepted) / len(accepted) >= 0.8
    # the threshold is one pair's score: recomputed in this process it may differ in the last bits
    at_threshold = sum(abs(s - model.threshold) < 1e-6 for s in scores)
    assert abs(model.meta["dev"]["accepted"] - len(accepted)) <= at_threshold

    proc = run("eval", "--pairs", str(pairs_file), "--verifier", str(out), "--split", "all",
               "--json", "--latency-queries", "5", "--embed-cache", str(emb))  # fmt: skip
    report = json.loads(proc.stdout)
    assert report["split"] == "all" and report["pairs"] == len(synthetic_pairs())
    assert report["target_precision"] == 0.8
    for side in ("verifier", "cosine"):
        stats = report[side]
        assert {"threshold", "precision", "recall", "accepted", "correct", "duplicates"} <= stats.keys()
        assert stats["duplicates"] == 60 and 0 <= stats["correct"] <= stats["accepted"] <= report["pairs"]
        look = report["lookup"][side]
        assert {"hit_rate", "precision", "precision_labelled", "recall", "hits", "unlabelled"} <= look.keys()
        assert 0.0 <= look["hit_rate"] <= 1.0 and look["queries"] == len({r["b"] for r in synthetic_pairs()})
    # every pair whose only difference is a number, place or question kind is rejected
    assert report["verifier"]["accepted"] == report["verifier"]["correct"]
    assert report["verifier"]["correct"] >= 20
    lat = report["lookup"]["latency_ms"]
    assert lat["queries"] == 5 and 0 < lat["verify_p50"] <= lat["total_p50"]
    assert 0 < lat["embed_p50"] <= lat["embed_p99"] and 0 < lat["search_p50"] <= lat["search_p99"]
    assert report["lookup"]["index_entries"] == len({r["a"] for r in synthetic_pairs()})
    # looked up as the gateway does by default: the config's top_k and cross-encoder budget
    assert (report["lookup"]["top_k"], report["lookup"]["cross_checks"]) == (4, 1)
    assert model.cross is not None  # the bundled stage, kept by calibrate
    proc = run("eval", "--pairs", str(pairs_file), "--verifier", str(out), "--split", "all", "--json",
               "--latency-queries", "0", "--top-k", "2", "--cross-checks", "0",
               "--embed-cache", str(emb))  # fmt: skip
    unstaged = json.loads(proc.stdout)["lookup"]
    assert (unstaged["top_k"], unstaged["cross_checks"]) == (2, 0)
    # without a cross-encoder run, only candidates decided before the stage can be served
    assert unstaged["verifier"]["hits"] < report["lookup"]["verifier"]["hits"]
    assert report["verifier"] == json.loads(proc.stdout)["verifier"]  # the pairs view does not change

    text = run("eval", "--pairs", str(pairs_file), "--verifier", str(out), "--split", "all",
               "--latency-queries", "2", "--embed-cache", str(emb)).stdout  # fmt: skip
    assert "pairs  verifier" in text and "lookup cosine" in text and "latency ms" in text


def test_bad_inputs_get_clear_errors(workdir: Path) -> None:
    bad = workdir / "bad.jsonl"
    bad.write_text('{"a": "x", "b": "y"}\n')
    proc = run("eval", "--pairs", str(bad), check=False)
    assert proc.returncode == 2 and "bad.jsonl:1" in proc.stderr
    proc = run("calibrate", "--pairs", str(bad), "--target-precision", "1.5", check=False)
    assert proc.returncode == 2 and "target-precision" in proc.stderr
    raw = workdir / "raw.npz"
    raw.write_bytes(b"not a model")
    good = workdir / "good.jsonl"
    good.write_text('{"a": "x?", "b": "y?", "duplicate": false}\n')
    proc = run("eval", "--pairs", str(good), "--verifier", str(raw), check=False)
    assert proc.returncode == 2 and "cannot load verifier" in proc.stderr
    empty = workdir / "empty.npz"
    empty.write_bytes(b"")
    proc = run("eval", "--pairs", str(good), "--verifier", str(empty), check=False)
    assert proc.returncode == 2 and "not a verifier file" in proc.stderr and "Aborted" not in proc.stderr
    proc = run("calibrate", "--pairs", str(good), "--target-precision", "nan", check=False)
    assert proc.returncode == 2 and "target-precision" in proc.stderr
    proc = run("calibrate", "--pairs", str(good), "--target-precision", "0.9", "--vetoes", "numbers,colour",
               check=False)  # fmt: skip
    assert proc.returncode == 2 and "unknown check(s) colour" in proc.stderr
    proc = run("eval", "--pairs", str(good), "--cross-checks", "-1", check=False)
    assert proc.returncode == 2 and "--cross-checks" in proc.stderr


def test_calibrating_on_one_label_warns(workdir: Path) -> None:
    positives = workdir / "positives.jsonl"
    rows = [r for r in synthetic_pairs() if r["duplicate"]]
    positives.write_text("".join(json.dumps(r) + "\n" for r in rows))
    # enough distinct dev pairs to refit the cross-encoder combiner (copies of a pair count once)
    assert len(select(read_pairs(positives), "dev")) >= 10
    proc = run("calibrate", "--pairs", str(positives), "--target-precision", "0.95", "--out",
               str(workdir / "pos.npz"), "--embed-cache", str(workdir / "emb"))  # fmt: skip
    assert "all of one label" in proc.stderr and "threshold" in proc.stdout


@pytest.mark.skipif(not QQP.exists(), reason="needs ../shared/data/cache/qqp_pairs.jsonl")
def test_train_calibrate_eval_on_a_slice_of_qqp(workdir: Path) -> None:
    slice_file = workdir / "qqp_slice.jsonl"
    with QQP.open() as src:
        slice_file.write_text("".join(next(src) for _ in range(600)))
    emb, model_file = workdir / "emb-qqp", workdir / "qqp.npz"
    run("train", "--pairs", str(slice_file), "--out", str(model_file), "--train-pairs", "300",
        "--epochs", "3", "--folds", "3", "--head-hidden", "0", "--embed-cache", str(emb))  # fmt: skip
    trained = VerifierModel.load(model_file)
    assert trained.threshold is None and trained.meta["train_pairs"] == 300 and not trained.has_head
    assert trained.meta["embedder"] == get_embedder().id
    proc = run("calibrate", "--pairs", str(slice_file), "--target-precision", "0.8", "--verifier",
               str(model_file), "--limit", "40", "--vetoes", "auto", "--embed-cache", str(emb))  # fmt: skip
    assert load_verifier(str(model_file)) is not None
    calibrated = VerifierModel.load(model_file)
    assert set(calibrated.vetoes) <= set(CHECKS) and calibrated.meta["vetoes"] == list(calibrated.vetoes)
    assert f"vetoes: {', '.join(calibrated.vetoes) or 'none'}" in proc.stdout
    proc = run("eval", "--pairs", str(slice_file), "--verifier", str(model_file), "--limit", "40",
               "--json", "--latency-queries", "3", "--embed-cache", str(emb))  # fmt: skip
    report = json.loads(proc.stdout)
    assert report["pairs"] == 40 and report["split"] == "test"
    assert report["verifier"]["pairs"] == 40 and report["lookup"]["latency_ms"]["queries"] == 3
    assert "verifier_text_only" not in report  # a text-only model has no fallback row


@pytest.mark.skipif(not QQP.exists(), reason="needs ../shared/data/cache/qqp_pairs.jsonl")
def test_embedding_head_trains_calibrates_both_points_and_reports_fallback(workdir: Path) -> None:
    slice_file = workdir / "qqp_slice_head.jsonl"
    with QQP.open() as src:
        slice_file.write_text("".join(next(src) for _ in range(600)))
    emb, model_file = workdir / "emb-qqp", workdir / "qqp-head.npz"
    run("train", "--pairs", str(slice_file), "--out", str(model_file), "--epochs", "2",
        "--head-hidden", "4", "--head-seeds", "2", "--embed-cache", str(emb))  # fmt: skip
    trained = VerifierModel.load(model_file)
    assert trained.has_head and trained.hw1 is not None and trained.hw1.shape[1] == 8  # 2 MLPs of 4
    assert trained.wmatrix is not None and "white_cos" in trained.head_parts
    run("calibrate", "--pairs", str(slice_file), "--target-precision", "0.8", "--verifier", str(model_file),
        "--limit", "40", "--embed-cache", str(emb))  # fmt: skip
    calibrated = VerifierModel.load(model_file)
    assert calibrated.threshold is not None and calibrated.text_threshold is not None
    assert calibrated.meta["dev_text"]["pairs"] == 40
    proc = run("eval", "--pairs", str(slice_file), "--verifier", str(model_file), "--limit", "40",
               "--json", "--latency-queries", "2", "--embed-cache", str(emb))  # fmt: skip
    report = json.loads(proc.stdout)
    # JSON carries an unreachable (infinite) threshold as null
    as_json = lambda t: None if math.isinf(t) else t  # noqa: E731
    assert report["verifier_text_only"]["threshold"] == as_json(calibrated.text_threshold)
    assert report["verifier"]["threshold"] == as_json(calibrated.threshold)
    assert report["verifier_text_only"]["pairs"] == report["verifier"]["pairs"] == 40
    assert report["lookup"]["latency_ms"]["queries"] == 2


def test_train_cross_fit_writes_a_calibrated_model(workdir: Path) -> None:
    pairs_file = workdir / "synthetic-crossfit.jsonl"
    pairs_file.write_text("".join(json.dumps(r) + "\n" for r in synthetic_pairs()))
    emb, out = workdir / "emb", workdir / "crossfit.npz"
    tiny = ("--epochs", "2", "--folds", "3", "--head-hidden", "4", "--head-seeds", "1")
    proc = run("train", "--pairs", str(pairs_file), "--out", str(out), *tiny, "--cross-fit", "3",
               "--target-precision", "0.8", "--vetoes", "auto", "--embed-cache", str(emb))  # fmt: skip
    model = load_verifier(str(out))  # calibrated: loads as a served verifier
    assert isinstance(model, VerifierModel) and model.threshold is not None
    cross = model.meta["cross_fit"]
    dev, train = select(read_pairs(pairs_file), "dev"), select(read_pairs(pairs_file), "train")
    assert cross["folds"] == 3 and cross["dev_pairs"] == len(dev) == cross["oof_dev"]["pairs"]
    assert model.meta["train_pairs"] == len(train) + len(dev) and model.meta["target_precision"] == 0.8
    assert f"threshold {model.threshold:.4f}: out-of-fold dev precision" in proc.stdout
    assert f"vetoes: {', '.join(model.vetoes) or 'none'}" in proc.stdout
    proc = run("eval", "--pairs", str(pairs_file), "--verifier", str(out), "--split", "all", "--json",
               "--latency-queries", "0", "--embed-cache", str(emb))  # fmt: skip
    report = json.loads(proc.stdout)
    assert report["target_precision"] == 0.8
    # --split all includes the dev pairs the model learned from: the report says so
    assert report["pairs_trained_on"] == len(dev) and "in-sample" in proc.stderr

    # re-calibrating the cross-fitted model uses the out-of-fold scores it stored, not its own
    # in-sample scores of the dev pairs it learned from: the same target gives the same point
    again = workdir / "crossfit-again.npz"
    proc = run("calibrate", "--pairs", str(pairs_file), "--verifier", str(out), "--target-precision", "0.8",
               "--out", str(again), "--embed-cache", str(emb))  # fmt: skip
    assert f"{len(dev)} of {len(dev)} dev pairs scored out of fold" in proc.stdout
    recalibrated = VerifierModel.load(again)
    assert recalibrated.threshold == model.threshold and recalibrated.meta["dev"] == cross["oof_dev"]
    assert recalibrated.oof is not None and len(recalibrated.oof.digests) == len(dev)
    stricter = workdir / "crossfit-stricter.npz"
    run("calibrate", "--pairs", str(pairs_file), "--verifier", str(out), "--target-precision", "0.8",
        "--confidence", "0.99", "--out", str(stricter), "--embed-cache", str(emb))  # fmt: skip
    assert VerifierModel.load(stricter).threshold >= model.threshold

    # the option's companions are checked; without them train behaves as before
    proc = run("train", "--pairs", str(pairs_file), "--out", str(out), "--cross-fit", "3", check=False)
    assert proc.returncode == 2 and "--cross-fit and --target-precision together" in proc.stderr
    proc = run("train", "--pairs", str(pairs_file), "--out", str(out), "--vetoes", "auto", check=False)
    assert proc.returncode == 2 and "--vetoes needs --cross-fit" in proc.stderr
