"""The verifier ensemble: N pipelines' mean probability behind one operating point."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from thrifty.cache.verify import load_verifier
from thrifty.cache.verify.ensemble import EnsembleModel, read_model
from thrifty.cache.verify.model import VerifierModel
from thrifty.cache.verify.outoffold import OutOfFold
from thrifty.cache.verify.pairs import Pair


@pytest.fixture(scope="module")
def members() -> tuple[VerifierModel, VerifierModel]:
    """The bundled model and a copy with another head: two members that share features."""
    base = load_verifier()
    assert isinstance(base, VerifierModel)
    other = dataclasses.replace(base, hw2=base.hw2 * 0.5, hb2=base.hb2 - 1.0, combiner=base.combiner * 0.7)
    return base, other


def _vectors(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    u = rng.normal(size=384).astype(np.float32)
    v = u + 0.3 * rng.normal(size=384).astype(np.float32)
    return u / np.linalg.norm(u), v / np.linalg.norm(v)


CASES = [
    ("How can I learn French quickly?", "What is the fastest way to learn French?"),
    ("Which laptop should I buy?", "Which laptop I should buy for college?"),
    ("How do I lose 10 kg?", "How do I lose 20 kg?"),
]


def test_score_is_the_mean_of_the_members(members) -> None:
    ensemble = EnsembleModel(members, threshold=0.5, text_threshold=0.9, vetoes=())
    for i, (q, c) in enumerate(CASES):
        u, v = _vectors(i)
        one, two = (dataclasses.replace(m, vetoes=()).score(q, c, 0.85, u, v) for m in members)
        assert ensemble.score(q, c, 0.85, u, v) == pytest.approx((one + two) / 2, abs=1e-9)
        text = [dataclasses.replace(m, vetoes=()).score(q, c, 0.85) for m in members]
        assert ensemble.score(q, c, 0.85) == pytest.approx(sum(text) / 2, abs=1e-9)
    assert len({round(members[0].score(q, c, 0.85, *_vectors(0)), 9) for q, c in CASES}) > 1


def test_decisions_before_the_learned_stages_hold(members) -> None:
    ensemble = EnsembleModel(members, threshold=0.5, text_threshold=0.9, vetoes=("numbers",))
    u, v = _vectors(0)
    assert ensemble.score("How do I lose 10 kg?", "How do I lose 20 kg?", 0.9, u, v) == 0.0  # vetoed
    assert ensemble.score("What is love?", "what is LOVE", 0.95, u, v) == 1.0  # same wording
    assert ensemble.score("What is love?", "Who is Bob?", 0.2, u, v) == 0.0  # below the cosine floor
    accepted, value = ensemble.accept("What is love?", "what is LOVE", 0.95, u, v)
    assert accepted and value == 1.0
    with pytest.raises(ValueError, match="not calibrated"):
        EnsembleModel(members).accept("a", "b", 0.9, u, v)


def test_round_trips_through_its_file(tmp_path: Path, members) -> None:
    pairs = [Pair(q, c, i == 0) for i, (q, c) in enumerate(CASES)]
    ensemble = EnsembleModel(
        members, threshold=0.61, text_threshold=0.93, vetoes=("negation",), meta={"note": "x"},
        oof=OutOfFold.of(pairs, [0.1, 0.2, 0.3], [0.4, 0.5, 0.6]),
    )  # fmt: skip
    path = tmp_path / "ensemble.npz"
    ensemble.save(path)
    loaded = read_model(path)
    assert isinstance(loaded, EnsembleModel) and len(loaded.members) == 2
    assert (loaded.threshold, loaded.text_threshold, loaded.vetoes) == (0.61, 0.93, ("negation",))
    assert loaded.meta == {"note": "x"} and loaded.oof is not None
    assert loaded.oof.override(pairs, [0, 0, 0], None)[0] == [0.1, 0.2, 0.3]
    for i, (q, c) in enumerate(CASES):
        u, v = _vectors(i)
        assert loaded.score(q, c, 0.85, u, v) == pytest.approx(ensemble.score(q, c, 0.85, u, v), abs=1e-6)
    served = load_verifier(str(path))  # the gateway's loader serves either kind
    assert isinstance(served, EnsembleModel)
    assert isinstance(read_model(tmp_path / "ensemble.npz"), EnsembleModel)
    single = tmp_path / "single.npz"
    members[0].save(single)
    assert isinstance(read_model(single), VerifierModel)


def test_members_must_share_their_features(members) -> None:
    alien = dataclasses.replace(members[1], idf=members[1].idf * 2)
    with pytest.raises(ValueError, match="share their IDF"):
        EnsembleModel((members[0], alien))
