"""The learned verifier decides semantic hits through `thrifty serve` (openai SDK, fake provider).

First the bundled verifier: a paraphrase is served from the cache, a question that differs in a
number is not. Then a verifier file with a cross-encoder stage, set in the config: the stage's
decision is what the gateway serves, and `cache.cross_checks` bounds how often it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.e2e.test_cache_http import ask, cached_config, upstream_calls
from thrifty.cache.verify import load_verifier
from thrifty.cache.verify.cross import LORA_A, LORA_B
from thrifty.cache.verify.model import VerifierModel
from thrifty.cache.verify.rerank import CrossStage

pytestmark = pytest.mark.e2e

STORED = "How can I improve my English speaking skills?"
PARAPHRASE = "How do I improve my spoken English?"  # the bundled head scores it 0.95 (threshold 0.93)
STORED_NUMBER = "How do I lose 10 kg in a month?"
OTHER_NUMBER = "How do I lose 20 kg in a month?"  # 0.08


def _semantic(fake: Any, tmp_path: Path, **cache: Any) -> dict[str, Any]:
    return cached_config(fake, tmp_path, semantic=True, **cache)


def test_bundled_verifier_serves_a_paraphrase_but_not_another_number(gateway_factory, fake, tmp_path):
    gw = gateway_factory(_semantic(fake, tmp_path))
    ask(gw, STORED)
    ask(gw, STORED_NUMBER)
    assert upstream_calls(fake) == 2
    hit = ask(gw, PARAPHRASE)
    assert hit.headers["x-thrifty-cache"] == "hit-semantic"
    assert float(hit.headers["x-thrifty-cost-usd"]) == 0
    miss = ask(gw, OTHER_NUMBER)
    assert miss.headers["x-thrifty-cache"] == "miss"
    assert upstream_calls(fake) == 3


def _with_stage(tmp_path: Path, weights: tuple[float, float, float]) -> Path:
    """The bundled verifier plus a cross-encoder stage (an adapter that leaves MiniLM as it is and adds
    a random head) whose combiner has the given weights: (bias, head logit, cross logit)."""
    rng = np.random.default_rng(0)
    adapter = {
        "encoder.layer.0.attention.self.query" + LORA_A: rng.normal(size=(2, 384)).astype(np.float32),
        "encoder.layer.0.attention.self.query" + LORA_B: np.zeros((384, 2), dtype=np.float32),
        "head.weight": rng.normal(size=(1, 384)).astype(np.float32),
        "head.bias": np.zeros(1, dtype=np.float32),
    }
    base = load_verifier()
    assert isinstance(base, VerifierModel)
    path = tmp_path / f"stage-{weights[0]}.npz"
    base.with_cross(CrossStage(adapter, 1.0, band=0.5, weights=weights)).save(path)
    return path


@pytest.mark.parametrize(
    ("weights", "cross_checks", "outcome"),
    [
        ((0.0, 1.0, 0.0), 1, "hit-semantic"),  # the combined probability is the head's: same decision
        ((-20.0, 1.0, 0.0), 1, "miss"),  # the stage rejects what the head alone would accept
        # no cross-encoder run allowed per lookup: an in-band candidate cannot pass the stage
        ((0.0, 1.0, 0.0), 0, "miss"),
    ],
)
def test_a_configured_cross_encoder_stage_decides_the_hit(
    gateway_factory, fake, tmp_path, weights, cross_checks, outcome
):
    verifier = _with_stage(tmp_path, weights)
    gw = gateway_factory(_semantic(fake, tmp_path, verifier=str(verifier), cross_checks=cross_checks))
    ask(gw, STORED)
    answer = ask(gw, PARAPHRASE)
    assert answer.headers["x-thrifty-cache"] == outcome
    assert upstream_calls(fake) == (1 if outcome == "hit-semantic" else 2)
    exact = ask(gw, STORED.upper())  # the same wording is served whatever the stage and the budget
    assert exact.headers["x-thrifty-cache"] == "hit-semantic"
