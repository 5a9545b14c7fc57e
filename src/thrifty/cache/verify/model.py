"""The learned duplicate verifier: a numpy-only model evaluated per candidate in well under a millisecond.

Two stages, both plain arrays in one `.npz` file (no scikit-learn at run time):

1. a lexical scorer over the two texts alone: a one-hidden-layer MLP on dense features plus a learned
   weight per hashed word that only one of the texts has;
2. a logistic combiner of that lexical logit with the embedding cosine and every dense feature
   (interactions with the cosine are what the lexical stage cannot see).

`accept` returns (accepted, score): the score is the combiner's probability, forced to 0 when an
enabled hard check vetoes the pair and to 1 when the two texts have the same words in the same
order; a pair is accepted when its score reaches the calibrated threshold (`thrifty cache calibrate`
writes it into the file).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thrifty.cache.verify import checks
from thrifty.cache.verify.features import DENSE, PairFeatures, extract

if TYPE_CHECKING:
    import numpy as np

FORMAT = "thrifty-verifier/1"
# the lexical stage sees every dense feature except the cosine ones
LEXICAL = tuple(i for i, name in enumerate(DENSE) if not name.startswith("cosine"))
COMBINER = ("lexical_logit", "logit_x_cosine", *DENSE)
_ARRAYS = ("idf", "mean", "std", "w1", "b1", "w2", "sparse", "combiner", "cmean", "cstd")


@dataclass
class VerifierModel:
    idf: np.ndarray  # (BUCKETS,) word weights
    mean: np.ndarray  # (len(LEXICAL),) feature standardisation
    std: np.ndarray
    w1: np.ndarray  # (len(LEXICAL), hidden)
    b1: np.ndarray  # (hidden,)
    w2: np.ndarray  # (hidden,)
    sparse: np.ndarray  # (BUCKETS,) weight of a word only one text has
    combiner: np.ndarray  # (len(COMBINER) + 1,) weights on standardised inputs; last is the bias
    cmean: np.ndarray  # (len(COMBINER),) combiner input standardisation
    cstd: np.ndarray
    b2: float = 0.0
    min_cosine: float = -1.0  # below it a candidate scores 0: the combiner only learned above it
    threshold: float | None = None  # None until calibrated
    vetoes: tuple[str, ...] = tuple(checks.CHECKS)
    meta: dict[str, Any] = field(default_factory=dict)

    # -- scoring ---------------------------------------------------------------------------------
    def lexical_logit(self, feats: PairFeatures) -> float:
        import numpy as np

        x = (np.asarray(feats.dense, dtype=np.float32)[list(LEXICAL)] - self.mean) / self.std
        hidden = np.maximum(x @ self.w1 + self.b1, 0.0)
        return float(hidden @ self.w2 + self.b2 + self.sparse[feats.differing].sum())

    def combiner_row(self, feats: PairFeatures) -> list[float]:
        lexical = self.lexical_logit(feats)
        return [lexical, lexical * feats.dense[0], *feats.dense]

    def combine(self, row: list[float]) -> float:
        import numpy as np

        x = (np.asarray(row, dtype=np.float32) - self.cmean) / self.cstd
        z = float(x @ self.combiner[:-1] + self.combiner[-1])
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    def score(self, query: str, candidate: str, cosine: float) -> float:
        if cosine < self.min_cosine:
            return 0.0
        q, c = checks.analyze(query), checks.analyze(candidate)
        if checks.vetoes(q, c, self.vetoes):
            return 0.0
        if q.words == c.words:
            # the same words in the same order: only case or punctuation differ. QQP's negatives are
            # sampled among near-identical questions, so the learned stages distrust high overlap;
            # identical wording is the one case where that bias must not apply.
            return 1.0
        feats = extract(q, c, cosine, self.idf)
        return self.combine(self.combiner_row(feats))

    def accept(self, query: str, candidate: str, cosine: float) -> tuple[bool, float]:
        if self.threshold is None:
            raise ValueError("verifier is not calibrated: run `thrifty cache calibrate` on it first")
        value = self.score(query, candidate, cosine)
        return value >= self.threshold and value > 0.0, value

    def with_threshold(self, threshold: float, **meta: Any) -> VerifierModel:
        return replace(self, threshold=float(threshold), meta={**self.meta, **meta})

    # -- persistence -----------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        import numpy as np

        header = {
            "format": FORMAT,
            "b2": self.b2,
            "min_cosine": self.min_cosine,
            "threshold": self.threshold,
            "vetoes": list(self.vetoes),
            "dense": list(DENSE),
            "combiner": list(COMBINER),
            "meta": self.meta,
        }
        arrays = {name: np.asarray(getattr(self, name), dtype=np.float32) for name in _ARRAYS}
        with open(path, "wb") as handle:  # an open handle stops numpy from appending .npz
            np.savez_compressed(handle, header=np.array(json.dumps(header)), **arrays)

    @classmethod
    def load(cls, path: str | Path) -> VerifierModel:
        import numpy as np

        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            if header.get("format") != FORMAT:
                raise ValueError(f"{path}: not a {FORMAT} file (format={header.get('format')!r})")
            if header["dense"] != list(DENSE) or header["combiner"] != list(COMBINER):
                raise ValueError(f"{path}: trained with other features; retrain with `thrifty cache train`")
            arrays = {name: data[name] for name in _ARRAYS}
        return cls(
            **arrays,
            b2=float(header["b2"]),
            min_cosine=float(header.get("min_cosine", -1.0)),
            threshold=header["threshold"],
            vetoes=tuple(header["vetoes"]),
            meta=header["meta"],
        )
