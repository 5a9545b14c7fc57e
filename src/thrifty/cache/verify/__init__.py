"""The semantic-cache verifier: decides whether a stored question answers a new one.

A nearest neighbour by cosine is only a candidate. `load_verifier()` returns the learned duplicate
classifier shipped with the package (`default_verifier.npz`, trained by
`thrifty cache train --pairs ../shared/data/cache/qqp_pairs.jsonl --out ...` and calibrated by
`thrifty cache calibrate`): hard checks veto differing numbers, named entities, negation and question
kind; a numpy-only model over lexical features and the cosine scores the rest, and (when the caller
passes both embedding vectors) an embedding head over |u - v| and u * v. See docs/cache-verifier.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

DEFAULT_PATH = Path(__file__).with_name("default_verifier.npz")


class Verifier(Protocol):
    def accept(
        self,
        query: str,
        candidate: str,
        cosine: float,
        query_vector: np.ndarray | None = None,
        candidate_vector: np.ndarray | None = None,
    ) -> tuple[bool, float]:
        """(accepted, score in [0, 1]) for serving `candidate`'s answer to `query`; the two
        embedding vectors, when given, let a model with an embedding head use them."""
        ...


def load_verifier(path: str | None = None) -> Verifier:
    """The verifier in `path`, or the bundled default model when path is None."""
    from thrifty.cache.verify.model import VerifierModel

    model = VerifierModel.load(path or DEFAULT_PATH)
    if model.threshold is None:
        raise ValueError(f"{path or DEFAULT_PATH}: verifier is not calibrated; run `thrifty cache calibrate`")
    return model
