"""The semantic-cache verifier: decides whether a stored question answers a new one.

A nearest neighbour by cosine is only a candidate. `load_verifier()` returns the learned duplicate
classifier shipped with the package (`default_verifier.npz`, made by `thrifty cache train --pairs
../shared/data/cache/qqp_pairs.jsonl --out ... --cross-fit 5 --target-precision 0.95 --vetoes auto`:
trained on train + dev, calibrated on out-of-fold dev scores; then `thrifty cache train-cross --epochs 3
--rank 32` added its cross-encoder stage): numpy stages over lexical
features (with checks for differing numbers, named entities, negation and question kind, vetoes where
calibration keeps them), how well the words only one text has align with the other's in MiniLM's
static word-piece space, and the cosine, and (when the caller passes both embedding vectors) an
embedding head over |u - v|, u * v and their whitened forms, and a fine-tuned MiniLM cross-encoder
(ONNX Runtime) that re-scores the candidates the head ranks high. See docs/cache-verifier.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from thrifty.cache.semantic import Verifier  # the seam this package fills

DEFAULT_PATH = Path(__file__).with_name("default_verifier.npz")


def load_verifier(path: str | None = None, *, warm: bool = True) -> Verifier:
    """The verifier in `path`, or the bundled default model when path is None. ValueError (OSError for
    a file that cannot be read) when it is not a calibrated verifier. `warm=False` only checks it."""
    from thrifty.cache.verify.model import VerifierModel

    model = VerifierModel.load(path or DEFAULT_PATH)
    if model.threshold is None or model.threshold != model.threshold:  # None or NaN: never calibrated
        raise ValueError(f"{path or DEFAULT_PATH}: verifier is not calibrated; run `thrifty cache calibrate`")
    if model.cross is not None and warm:
        model.cross.warm()  # at start-up, so the first lookup does not build or load the cross-encoder
    return model
