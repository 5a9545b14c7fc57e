"""`VerifierModel.select`: how a lookup's candidates reach the cross-encoder stage (best first, at
most `cross_budget` of them), and the cosine fallback's choice."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from thrifty.cache.semantic import Candidate, CosineVerifier
from thrifty.cache.verify import load_verifier
from thrifty.cache.verify.cross import CrossEncoder
from thrifty.cache.verify.model import VerifierModel

QUERY = "How can I learn to play the guitar quickly?"
PARAPHRASES = [
    "What is the fastest way to learn guitar?",
    "How do I learn guitar fast?",
    "How can I quickly learn to play guitar?",
    "What is the best way to learn to play guitar quickly?",
]


class _Counting:
    """The real encoder, counting which stored questions the stage sends it."""

    def __init__(self, inner: CrossEncoder) -> None:
        self.inner = inner
        self.seen: list[str] = []

    def logit(self, stored: str, query: str) -> float:
        self.seen.append(stored)
        return self.inner.logit(stored, query)


@pytest.fixture(scope="module")
def bundled() -> VerifierModel:
    model = load_verifier()
    assert isinstance(model, VerifierModel) and model.cross is not None
    return model


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    from thrifty.embed import get_embedder

    return get_embedder().embed([QUERY, *PARAPHRASES])


def _counting(model: VerifierModel, band: float = 0.0) -> tuple[VerifierModel, _Counting]:
    """`model` with its stage's band at `band` (so every candidate is inside) and a counting encoder."""
    assert model.cross is not None
    counter = _Counting(model.cross.warm())
    stage = dataclasses.replace(model.cross, band=band, encoder=counter)  # type: ignore[arg-type]
    return model.with_cross(stage), counter


def _candidates(vectors: np.ndarray, texts: list[str]) -> list[Candidate]:
    return [Candidate(t, float(vectors[0] @ v), v) for t, v in zip(texts, vectors[1:], strict=False)]


@pytest.mark.parametrize("budget", [0, 1, 2, 4])
def test_the_stage_runs_on_at_most_the_budget_best_first(
    bundled: VerifierModel, vectors: np.ndarray, budget: int
) -> None:
    model, counter = _counting(bundled)
    candidates = _candidates(vectors, PARAPHRASES)
    heads = [model.first_score(QUERY, c.text, c.cosine, vectors[0], c.vector)[0] for c in candidates]
    by_head = [PARAPHRASES[i] for i in np.argsort(heads)[::-1]]
    chosen = model.select(QUERY, vectors[0], candidates, cross_budget=budget)
    assert len(counter.seen) <= budget
    assert counter.seen == by_head[: len(counter.seen)]  # the head's best first
    if budget == 0:
        assert chosen is None  # nothing passes the stage, so nothing is served
    else:
        assert chosen is not None  # paraphrases: the first one checked is accepted
        index, score = chosen
        assert candidates[index].text == counter.seen[-1]
        assert score == pytest.approx(model.score(QUERY, candidates[index].text, candidates[index].cosine,
                                                  vectors[0], candidates[index].vector))  # fmt: skip
        assert score >= (model.threshold or 1.0)


def test_a_candidate_below_the_band_never_reaches_the_stage(
    bundled: VerifierModel, vectors: np.ndarray
) -> None:
    model, counter = _counting(bundled, band=1.0)  # nothing a head scores below 1 is inside
    assert model.select(QUERY, vectors[0], _candidates(vectors, PARAPHRASES), cross_budget=4) is None
    assert counter.seen == []


def test_same_wording_is_served_without_the_stage(bundled: VerifierModel, vectors: np.ndarray) -> None:
    model, counter = _counting(bundled)
    candidates = [*_candidates(vectors, PARAPHRASES[:2]), Candidate(QUERY.lower(), 1.0, vectors[0])]
    assert model.select(QUERY, vectors[0], candidates, cross_budget=0) == (2, 1.0)
    assert counter.seen == []


def test_vetoed_candidates_are_refused_whatever_the_budget(bundled: VerifierModel) -> None:
    from thrifty.embed import get_embedder

    query, other = "How do I lose 10 kg in a month?", "How do I lose 20 kg in a month?"
    u, v = get_embedder().embed([query, other])
    model, counter = _counting(dataclasses.replace(bundled, vetoes=("numbers",)))
    assert model.select(query, u, [Candidate(other, float(u @ v), v)], cross_budget=4) is None
    assert counter.seen == []


@pytest.mark.parametrize(
    ("stored", "query"),
    [
        ("what is 3+3?", "what is 3*3?"),
        ("what is 3+3?", "what is 3-3?"),
        ("Explain pointers in C++", "Explain pointers in C#"),
        ("is 5 > 3?", "is 5 < 3?"),
        ("what is 2^10", "what is 2*10"),
        ("what is -5 squared?", "what is 5 squared?"),
        ("What year did ww2 end?", "What year did ww1 end?"),  # 0.947 before digits in words counted
    ],
)
def test_the_bundled_model_refuses_the_same_words_with_other_symbols_or_numbers(
    bundled: VerifierModel, stored: str, query: str
) -> None:
    from thrifty.embed import get_embedder

    u, v = get_embedder().embed([query, stored])
    assert bundled.vetoes == ()  # the file enables no veto: the symbol check vetoes anyway
    assert bundled.score(query, stored, float(u @ v), u, v) == 0.0
    assert bundled.select(query, u, [Candidate(stored, float(u @ v), v)], cross_budget=4) is None
    assert bundled.select(query, u, [Candidate(query.upper(), 1.0, u)], cross_budget=0) == (0, 1.0)


def test_cosine_verifier_serves_the_nearest_candidate_at_its_threshold() -> None:
    candidates = [Candidate("a", 0.91), Candidate("b", 0.97), Candidate("c", 0.95)]
    assert CosineVerifier(0.95).select("q", None, candidates) == (1, 0.97)
    assert CosineVerifier(0.98).select("q", None, candidates) is None
    assert CosineVerifier(0.95).select("q", None, []) is None
