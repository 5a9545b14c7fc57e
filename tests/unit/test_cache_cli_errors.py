"""`thrifty cache calibrate | eval | train | train-cross` on bad inputs: a one-line error and exit 2,
never a traceback, a NaN option or a NaN threshold written to a model file."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from thrifty.cache.evaluate import choose_threshold
from thrifty.cache.verify import DEFAULT_PATH
from thrifty.cache.verify.fitting import fit_logistic
from thrifty.cache.verify.model import VerifierModel
from thrifty.cache.verify.pairs import Pair
from thrifty.cache.verify.rerank import CrossStage, fit_stage
from thrifty.cache_cli import cache_group
from thrifty.cache_cross_cli import train_cross_command

# one duplicate pair of the dev split, repeated: every copy shares the pair's combiner fold
DEV_PAIR = {"a": "How do I learn Python?", "b": "How can I learn Python?", "duplicate": True}


def run(*args: str) -> Result:
    command = train_cross_command if args[0] == "train-cross" else cache_group
    return CliRunner().invoke(command, list(args[1:] if args[0] == "train-cross" else args))


def assert_one_line_error(result: Result, *needles: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    # progress lines (`embedded 2/2 ...`) may come first; the error is the one last line, no usage
    assert lines and lines[-1].startswith("Error: "), result.stderr
    assert not any(line.startswith(("Usage:", "Try ", "Traceback", "Aborted")) for line in lines)
    for needle in needles:
        assert needle in lines[-1], lines[-1]


def pairs_file(tmp_path: Path, rows: list[dict], copies: int = 1) -> str:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows * copies))
    return str(path)


# -- the threshold and the combiner ----------------------------------------------------------------------
def test_choose_threshold_refuses_non_finite_scores() -> None:
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="finite"):
            choose_threshold([0.9, bad, 0.5], [True, True, False], 0.5)
    assert choose_threshold([0.9, 0.8], [False, False], 0.9) == math.inf  # accept nothing: still fine


def test_fit_stage_counts_distinct_pairs_not_rows() -> None:
    rng = np.random.default_rng(5)
    distinct = [Pair(f"q{i}?", f"p{i}?", bool(i % 2)) for i in range(7)]
    dev = distinct * 10  # 70 rows inside the band, but only 7 pairs: some fold would train on nothing
    head = rng.uniform(0.8, 0.95, len(dev)).tolist()
    cross = rng.normal(size=len(dev)).tolist()
    with pytest.raises(ValueError, match=r"only 7 distinct dev pairs inside the band 0\.7.*--band"):
        fit_stage(CrossStage({}, 1.0), dev, head, cross, band=0.7)


def test_fit_logistic_refuses_no_rows() -> None:
    with pytest.raises(ValueError, match="no rows"):
        fit_logistic(np.zeros((0, 2)), np.zeros(0))


def test_a_nan_threshold_is_never_saved(tmp_path: Path) -> None:
    model = VerifierModel.load(DEFAULT_PATH).with_threshold(math.nan)
    with pytest.raises(ValueError, match="threshold"):
        model.save(tmp_path / "nan.npz")
    assert not (tmp_path / "nan.npz").exists()


def test_a_nan_threshold_written_earlier_is_refused_by_eval_but_recalibrated(tmp_path: Path) -> None:
    with np.load(DEFAULT_PATH, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    header = json.loads(str(arrays.pop("header")))
    header["threshold"] = math.nan  # as the old `calibrate` wrote it
    broken = tmp_path / "nan.npz"
    with broken.open("wb") as handle:
        np.savez(handle, header=np.array(json.dumps(header)), **arrays)
    pairs = pairs_file(tmp_path, [DEV_PAIR])
    result = run("eval", "--pairs", pairs, "--verifier", str(broken), "--latency-queries", "0")
    assert_one_line_error(result, "threshold is NaN", "calibrate")
    # it still loads, so that calibrate can replace the threshold (here it refuses: too few pairs)
    result = run("calibrate", "--pairs", pairs, "--verifier", str(broken), "--target-precision", "0.9")
    assert_one_line_error(result, "distinct dev pair")


# -- calibrate -------------------------------------------------------------------------------------------
def test_calibrate_on_repeated_pairs_refuses_instead_of_writing_a_nan_threshold(tmp_path: Path) -> None:
    out = tmp_path / "m.npz"
    result = run("calibrate", "--pairs", pairs_file(tmp_path, [DEV_PAIR], copies=10),
                 "--target-precision", "0.9", "--out", str(out))  # fmt: skip
    assert_one_line_error(result, "distinct dev pair", "--band")
    assert not out.exists()


def test_calibrate_checks_out_before_the_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import thrifty.cache.evaluate

    def never(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("calibrated before checking --out")

    monkeypatch.setattr(thrifty.cache.evaluate, "calibrate", never)
    pairs = pairs_file(tmp_path, [DEV_PAIR])
    missing = tmp_path / "no" / "such" / "dir" / "m.npz"
    result = run("calibrate", "--pairs", pairs, "--target-precision", "0.9", "--out", str(missing))
    assert_one_line_error(result, "--out", str(missing.parent))
    result = run("train", "--pairs", pairs, "--out", str(missing))
    assert_one_line_error(result, "--out", str(missing.parent))


@pytest.mark.parametrize("option", ["--target-precision", "--confidence"])
@pytest.mark.parametrize("value", ["nan", "NaN", "inf"])
def test_nan_options_are_refused_while_parsing(tmp_path: Path, option: str, value: str) -> None:
    pairs = pairs_file(tmp_path, [DEV_PAIR])
    given = {"--target-precision": "0.9", "--confidence": "0.9", option: value}
    calibrate = run("calibrate", "--pairs", pairs, *[x for kv in given.items() for x in kv])
    train = run("train", "--pairs", pairs, "--out", str(tmp_path / "m.npz"), "--cross-fit", "3",
                *[x for kv in given.items() for x in kv])  # fmt: skip
    cross = run("train-cross", "--pairs", pairs, "--out", str(tmp_path / "m.npz"),
                *[x for kv in given.items() for x in kv])  # fmt: skip
    for result in (calibrate, train, cross):
        assert result.exit_code == 2, (result.output, result.exception)
        assert option in result.stderr and "Invalid value" in result.stderr
    assert not (tmp_path / "m.npz").exists()


# -- loading a verifier ----------------------------------------------------------------------------------
def test_broken_verifier_files_are_one_line_errors(tmp_path: Path) -> None:
    pairs = pairs_file(tmp_path, [DEV_PAIR])
    files = {
        "trunc.npz": DEFAULT_PATH.read_bytes()[:50],
        "empty.npz": b"",
        "raw.npz": b"not a model",
    }
    np.save(tmp_path / "array.npy", np.zeros(3))
    paths = [tmp_path / "array.npy"]
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
        paths.append(tmp_path / name)
    for path in paths:
        result = run("eval", "--pairs", pairs, "--verifier", str(path), "--latency-queries", "0")
        assert_one_line_error(result, "cannot load verifier", str(path), "not a verifier file")
        assert "allow_pickle" not in result.stderr
    result = run("eval", "--pairs", pairs, "--verifier", str(tmp_path / "absent.npz"))
    assert_one_line_error(result, "cannot load verifier", "absent.npz")


# -- data errors exit 2 like the other commands' ---------------------------------------------------------
def test_data_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    pairs = pairs_file(tmp_path, [DEV_PAIR])
    result = run("train", "--pairs", pairs, "--out", str(tmp_path / "m.npz"))
    assert_one_line_error(result, "too few train pairs")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": "x"}\n')
    result = run("eval", "--pairs", str(bad), "--latency-queries", "0")
    assert_one_line_error(result, "bad.jsonl:1")
    # no dev pair at all inside the model's band
    far = {"a": "How do I learn Python?", "b": "What is the capital of Egypt?", "duplicate": False}
    result = run("calibrate", "--pairs", pairs_file(tmp_path, [far]), "--target-precision", "0.9")
    assert_one_line_error(result, "dev pair", "--band")


@pytest.mark.parametrize(
    ("cache", "where", "fragment"),
    [
        ({"semantic": True, "verifier": "{tmp}/verifier.npz"}, "cache.verifier", "not a verifier file"),
        ({"semantic": True, "verifier": "{tmp}/missing.npz"}, "cache.verifier", "No such file"),
        ({"backend": "redis", "redis_url": "notaurl://x"}, "cache", "redis://"),
    ],
)
def test_config_check_and_serve_name_a_bad_cache_setting_at_any_worker_count(
    tmp_path, cache, where, fragment
):
    (tmp_path / "verifier.npz").write_bytes(b"PK\x03\x04 not really a zip")
    cache = {k: v.format(tmp=tmp_path) if isinstance(v, str) else v for k, v in cache.items()}
    path = tmp_path / "thrifty.yaml"
    path.write_text(json.dumps({"cache": {"enabled": True, "path": str(tmp_path / "c.db"), **cache}}))
    for args in (
        ["config", "check", str(path)],
        ["serve", "--config", str(path), "--port", "0", "--workers", "2"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "thrifty.cli", *args], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 2, done.stderr
        assert f"config error: {where}: " in done.stderr and fragment in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and "listening" not in done.stderr
