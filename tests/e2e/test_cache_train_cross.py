"""`thrifty cache train-cross`: fine-tune the cross-encoder (PyTorch), then use it (ONNX Runtime).

The command runs as a user runs it; the test then checks that what was trained is what is served:
the PyTorch network with the trained adapter and the ONNX graph built from the merged weights give
the same logits.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.test_cache_cli import synthetic_pairs
from thrifty.cache.verify.model import VerifierModel
from thrifty.cache.verify.pairs import Pair

torch = pytest.importorskip("torch", reason="scripts/test installs torch (thrifty[cross])")
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "thrifty.cli", "cache", *args],
        capture_output=True,
        text=True,
        timeout=800,
        env=env,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    import os

    work = tmp_path_factory.mktemp("train-cross")
    pairs_file = work / "pairs.jsonl"
    pairs_file.write_text("".join(json.dumps(r) + "\n" for r in synthetic_pairs()))
    out = work / "model.npz"
    env = {**os.environ, "THRIFTY_CACHE_DIR": str(work / "cache")}
    proc = _run(
        "train-cross", "--pairs", str(pairs_file), "--out", str(out), "--epochs", "2", "--rank", "4",
        "--band", "0.0", "--threads", "1", "--embed-cache", str(work / "emb"), env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "cross-encoder band 0.0: ran on" in proc.stdout and f"wrote {out}" in proc.stdout
    return pairs_file, out


def test_trained_stage_is_saved_with_its_band_and_combiner(trained: tuple[Path, Path]) -> None:
    _, out = trained
    model = VerifierModel.load(out)
    assert model.cross is not None
    assert model.cross.band == 0.0 and model.cross.scale == pytest.approx(2.0)  # alpha = 2 * rank
    assert model.meta["cross_band"] == 0.0 and model.meta["cross_consulted"] > 0
    ranks = {v.shape[0] for k, v in model.cross.adapter.items() if k.endswith(".lora_a")}
    assert ranks == {4}
    assert any(k.startswith("head.") for k in model.cross.adapter)


def test_served_graph_computes_the_trained_network(trained: tuple[Path, Path]) -> None:
    import onnx
    import onnxruntime as ort
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    from thrifty.cache.verify.cross import MAX_TOKENS, CrossEncoder, merge
    from thrifty.cache.verify.cross_train import CrossSettings, _batch, _network
    from thrifty.embed.encoder import bundled_model_dir
    from thrifty.embed.graph import build_pair_scorer

    _, out = trained
    stage = VerifierModel.load(out).cross
    assert stage is not None
    base = load_file(str(bundled_model_dir() / "model.safetensors"))
    network = _network(base, CrossSettings(rank=4, alpha=8.0))
    for name, value in stage.adapter.items():
        network.p(name).data = torch.tensor(np.asarray(value, dtype=np.float32))
    tokenizer = Tokenizer.from_file(str(bundled_model_dir() / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    pairs = [Pair(r["a"], r["b"], r["duplicate"]) for r in synthetic_pairs()[:6]]
    with torch.no_grad():
        expected = np.asarray([network(*_batch(tokenizer, [p], swap=False)).item() for p in pairs])
    graph = build_pair_scorer(merge(base, stage.adapter, stage.scale))
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    served = []
    for p in pairs:
        e = tokenizer.encode(p.a, p.b)
        ids = np.asarray([e.ids], dtype=np.int64)
        feed = {
            "input_ids": ids,
            "attention_mask": np.ones_like(ids),
            "token_type_ids": np.asarray([e.type_ids]),
        }
        served.append(session.run(None, feed)[0][0])
    np.testing.assert_allclose(served, expected, atol=2e-3)
    assert onnx.checker.check_model(graph) is None
    # the int8 graph the gateway runs stays close to it
    encoder = CrossEncoder(stage.adapter, stage.scale)
    quantised = [encoder.logit(p.a, p.b) for p in pairs]
    np.testing.assert_allclose(quantised, expected, atol=0.3)


def _calibrate(trained: tuple[Path, Path], band: str, out: Path) -> subprocess.CompletedProcess:
    """`calibrate` the trained model for 80 % precision at `band`, into `out`."""
    pairs_file, model = trained
    proc = _run(
        "calibrate", "--pairs", str(pairs_file), "--verifier", str(model), "--target-precision", "0.8",
        "--band", band, "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc


def test_calibrate_refits_the_band_and_eval_runs(trained: tuple[Path, Path], tmp_path: Path) -> None:
    pairs_file, _ = trained
    recalibrated = tmp_path / "re.npz"
    proc = _calibrate(trained, "0.05", recalibrated)
    assert "cross-encoder band 0.05" in proc.stdout
    model = VerifierModel.load(recalibrated)
    assert model.cross is not None and model.cross.band == 0.05
    proc = _run(
        "eval", "--pairs", str(pairs_file), "--verifier", str(recalibrated), "--split", "all", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["verifier"]["pairs"] == len(synthetic_pairs())


def test_band_auto_picks_the_band_that_keeps_the_most_dev_recall(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    target = tmp_path / "auto.npz"
    proc = _calibrate(trained, "auto", target)
    model = VerifierModel.load(target)
    assert model.cross is not None
    recalls = model.meta["cross_band_recall"]
    assert len(recalls) >= 2 and "dev recall at the target per cross-encoder band" in proc.stdout
    best = max(recalls.values())
    assert recalls[str(model.cross.band)] == best
    assert model.cross.band == max(float(b) for b, r in recalls.items() if r == best)  # ties: the higher band
    assert model.meta["dev"]["recall"] == pytest.approx(best)


def test_band_on_a_verifier_without_the_stage_is_a_clear_error(
    trained: tuple[Path, Path], tmp_path: Path
) -> None:
    pairs_file, out = trained
    head_only = tmp_path / "head-only.npz"
    VerifierModel.load(out).with_cross(None).save(head_only)
    args = (
        "calibrate",
        "--pairs",
        str(pairs_file),
        "--verifier",
        str(head_only),
        "--target-precision",
        "0.9",
    )
    proc = _run(*args, "--band", "0.2")
    assert proc.returncode == 2
    assert "no cross-encoder stage" in proc.stderr
    assert _run(*args).returncode == 0  # the same verifier calibrates without --band
    proc = _run("calibrate", "--pairs", str(pairs_file), "--target-precision", "0.9", "--band", "high")
    assert proc.returncode == 2
    assert "expected auto or a probability" in proc.stderr
