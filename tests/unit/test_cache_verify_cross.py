"""The verifier's cross-encoder stage: adapter merging, the pair-scorer graph, the band and combiner."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from thrifty.cache.verify.cross import LORA_A, LORA_B, CrossEncoder, merge
from thrifty.cache.verify.pairs import Pair
from thrifty.cache.verify.rerank import CrossStage, fit_combiner, fit_stage


def test_merge_adds_the_low_rank_update_and_replaces_the_rest() -> None:
    rng = np.random.default_rng(0)
    base = {"l.weight": rng.normal(size=(4, 3)), "l.bias": np.zeros(4), "other.weight": np.ones((2, 2))}
    a, b = rng.normal(size=(2, 3)), rng.normal(size=(4, 2))
    adapter = {"l" + LORA_A: a, "l" + LORA_B: b, "l.bias": np.full(4, 0.5)}
    merged = merge(base, adapter, scale=2.0)
    np.testing.assert_allclose(merged["l.weight"], base["l.weight"] + 2.0 * b @ a, rtol=1e-6)
    np.testing.assert_array_equal(merged["l.bias"], np.full(4, 0.5))
    np.testing.assert_array_equal(merged["other.weight"], base["other.weight"])
    assert "l" + LORA_A not in merged and "l" + LORA_B not in merged


def _identity_adapter(head_seed: int = 0) -> dict[str, np.ndarray]:
    """An adapter that changes no weight (B = 0) and adds a random linear head."""
    rng = np.random.default_rng(head_seed)
    return {
        "encoder.layer.0.attention.self.query" + LORA_A: rng.normal(size=(2, 384)).astype(np.float32),
        "encoder.layer.0.attention.self.query" + LORA_B: np.zeros((384, 2), dtype=np.float32),
        "head.weight": rng.normal(size=(1, 384)).astype(np.float32),
        "head.bias": np.asarray([0.25], dtype=np.float32),
    }


def test_pair_scorer_reads_the_pair_as_one_sequence(tmp_path: Path) -> None:
    """With the pre-trained weights, the pair scorer's logit is the head applied to the mean-pooled
    states of `[CLS] a [SEP] b [SEP]` (token types 0 / 1): so swapping the texts changes it, the same
    pair gives the same logit, and a different head gives a different one."""
    encoder = CrossEncoder(_identity_adapter(), 1.0, directory=tmp_path)
    first = encoder.logit("How do I learn Python?", "What is the best way to learn Python?")
    assert math.isfinite(first)
    assert encoder.logit("How do I learn Python?", "What is the best way to learn Python?") == first
    assert encoder.logit("What is the best way to learn Python?", "How do I learn Python?") != first
    other = CrossEncoder(_identity_adapter(head_seed=1), 1.0, directory=tmp_path)
    assert other.logit("How do I learn Python?", "What is the best way to learn Python?") != first
    assert len(list(tmp_path.glob("cross-*.onnx"))) == 2  # one cached graph per adapter


class _Counting(CrossEncoder):
    """The real encoder, counting how often the stage consults it."""

    def __init__(self, inner: CrossEncoder) -> None:
        self.__dict__.update(inner.__dict__)
        self.calls = 0

    def logit(self, stored: str, query: str) -> float:
        self.calls += 1
        return super().logit(stored, query)


def test_stage_runs_the_encoder_only_inside_its_band(tmp_path: Path) -> None:
    encoder = _Counting(CrossEncoder(_identity_adapter(), 1.0, directory=tmp_path))
    stage = CrossStage(_identity_adapter(), 1.0, band=0.5, weights=(0.0, 1.0, 0.0), encoder=encoder)
    assert stage.score(0.49, "a?", "b?") == 0.0
    assert stage.score(0.0, "a?", "b?") == 0.0
    assert encoder.calls == 0
    # weights (0, 1, 0): the combined probability is the head's own
    assert stage.score(0.8, "a?", "b?") == pytest.approx(0.8, rel=1e-4)
    assert encoder.calls == 1


def test_combiner_learns_which_input_carries_the_label() -> None:
    rng = np.random.default_rng(3)
    labels = rng.random(2000) < 0.4
    head = rng.uniform(0.2, 0.9, 2000)  # uninformative
    cross = np.where(labels, 2.0, -2.0) + rng.normal(scale=1.0, size=2000)
    _bias, w_head, w_cross = fit_combiner(head.tolist(), cross.tolist(), labels.tolist())
    assert w_cross > 1.0 and abs(w_head) < 0.3


def test_fit_stage_scores_out_of_fold_and_zero_outside_the_band() -> None:
    rng = np.random.default_rng(4)
    n = 600
    labels = rng.random(n) < 0.5
    dev = [Pair(f"q{i}?", f"p{i}?", bool(y)) for i, y in enumerate(labels)]
    head = rng.uniform(0.0, 1.0, n)
    cross = np.where(labels, 1.5, -1.5) + rng.normal(size=n)
    fitted = fit_stage(CrossStage({}, 1.0), dev, head.tolist(), cross.tolist(), band=0.3)
    assert fitted.stage.band == 0.3
    outside = head < 0.3
    assert all(s == 0.0 for s in np.asarray(fitted.scores)[outside])
    inside_scores = np.asarray(fitted.scores)[~outside]
    assert (inside_scores > 0).all()
    # out of fold: not the final combiner's own scores of the same pairs
    final = [fitted.stage.combine(h, c) for h, c in zip(head[~outside], cross[~outside], strict=True)]
    assert not np.allclose(inside_scores, final)
    # and informative: duplicates score higher on average
    assert inside_scores[labels[~outside]].mean() > inside_scores[~labels[~outside]].mean() + 0.3
    with pytest.raises(ValueError, match="inside the band"):
        fit_stage(CrossStage({}, 1.0), dev, head.tolist(), cross.tolist(), band=0.999)


def test_stage_round_trips_through_a_verifier_file(tmp_path: Path) -> None:
    from thrifty.cache.verify import load_verifier
    from thrifty.cache.verify.model import VerifierModel

    base = load_verifier()
    assert isinstance(base, VerifierModel)
    stage = CrossStage(_identity_adapter(), 1.0, band=0.2, weights=(0.1, 0.9, 0.3))
    path = tmp_path / "v.npz"
    base.with_cross(stage).save(path)
    loaded = VerifierModel.load(path)
    assert loaded.cross is not None
    assert (loaded.cross.band, loaded.cross.weights, loaded.cross.scale) == (0.2, (0.1, 0.9, 0.3), 1.0)
    for name, value in _identity_adapter().items():
        np.testing.assert_allclose(loaded.cross.adapter[name], value, rtol=1e-3, atol=1e-3)  # float16
