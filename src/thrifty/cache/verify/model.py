"""The learned duplicate verifier: numpy stages evaluated per candidate in well under a millisecond
(and, when the file has one, a cross-encoder stage on ONNX Runtime: `rerank.py`).

Two stages, both plain arrays in one `.npz` file (no scikit-learn at run time):

1. a lexical scorer over the two texts alone: a one-hidden-layer MLP on dense features plus a learned
   weight per hashed word that only one of the texts has;
2. a logistic combiner of that lexical logit with the embedding cosine and every dense feature
   (interactions with the cosine are what the lexical stage cannot see).

`accept` returns (accepted, score): the score is the combiner's probability, forced to 0 when an
enabled hard check (or one of `checks.ALWAYS`, whatever the file enables) vetoes the pair and to 1
when the two texts have the same words and symbols in the same order; a pair is accepted when its
score reaches the calibrated threshold (`thrifty cache calibrate` writes it into the file).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thrifty.cache.verify import checks
from thrifty.cache.verify.align import WordVectors
from thrifty.cache.verify.cross import PREFIX as CROSS_PREFIX
from thrifty.cache.verify.features import DENSE, PairFeatures, extract
from thrifty.cache.verify.head import PARTS, Whitening, head_features
from thrifty.cache.verify.outoffold import OutOfFold
from thrifty.cache.verify.rerank import CrossStage

if TYPE_CHECKING:
    import numpy as np

    from thrifty.cache.semantic import Candidate
    from thrifty.cache.verify.fitting import SparseRows

FORMAT = "thrifty-verifier/1"
# the lexical stage sees every dense feature except the cosine ones
LEXICAL = tuple(i for i, name in enumerate(DENSE) if not name.startswith("cosine"))
COMBINER = ("lexical_logit", "logit_x_cosine", *DENSE)
_ARRAYS = ("idf", "mean", "std", "w1", "b1", "w2", "sparse", "combiner", "cmean", "cstd")
_HEAD = ("hw1", "hb1", "hw2")  # optional embedding head (absent in text-only models)
_WHITENING = ("wmean", "wmatrix")  # present when a head input is whitened


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
    hw1: np.ndarray | None = None  # (len(COMBINER) + head inputs, hidden) embedding head
    hb1: np.ndarray | None = None  # (hidden,)
    hw2: np.ndarray | None = None  # (hidden,)
    hb2: float = 0.0
    head_parts: tuple[str, ...] = ("absdiff", "prod")  # what the head sees of the vectors (head.py)
    wmean: np.ndarray | None = None  # (dim,) whitening of the vectors, when a part uses it
    wmatrix: np.ndarray | None = None  # (dim, dim)
    text_threshold: float | None = None  # the combiner's point, used when no vectors are given
    vetoes: tuple[str, ...] = tuple(checks.CHECKS)
    meta: dict[str, Any] = field(default_factory=dict)
    # out-of-fold dev scores (`train --cross-fit`), for re-calibrating a model that learned from dev
    oof: OutOfFold | None = field(default=None, repr=False, compare=False)
    # the cross-encoder stage (`rerank.py`): re-scores what the head ranks inside its band
    cross: CrossStage | None = field(default=None, repr=False, compare=False)
    # MiniLM's static word-piece vectors for the align_* features: read from the bundled embedder
    # (memory-mapped), not stored in the model file
    words: WordVectors = field(default_factory=WordVectors.bundled, repr=False, compare=False)

    # -- scoring ---------------------------------------------------------------------------------
    def lexical_logit(self, feats: PairFeatures) -> float:
        import numpy as np

        x = (np.asarray(feats.dense, dtype=np.float32)[list(LEXICAL)] - self.mean) / self.std
        hidden = np.maximum(x @ self.w1 + self.b1, 0.0)
        return float(hidden @ self.w2 + self.b2 + self.sparse[feats.differing].sum())

    def lexical_logits(self, dense: np.ndarray, sparse: SparseRows) -> np.ndarray:
        """`lexical_logit` of many pairs at once (rows of dense features, their differing words)."""
        import numpy as np

        x = (dense[:, list(LEXICAL)] - self.mean) / self.std
        hidden = np.maximum(x @ self.w1 + self.b1, 0.0)
        return hidden @ self.w2 + self.b2 + sparse.dot(range(len(dense)), self.sparse)

    def combiner_row(self, feats: PairFeatures) -> list[float]:
        lexical = self.lexical_logit(feats)
        return [lexical, lexical * feats.dense[0], *feats.dense]

    def combine(self, row: list[float]) -> float:
        import numpy as np

        x = (np.asarray(row, dtype=np.float32) - self.cmean) / self.cstd
        z = float(x @ self.combiner[:-1] + self.combiner[-1])
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    @property
    def has_head(self) -> bool:
        return self.hw1 is not None

    def head(self, row: list[float], u: np.ndarray, v: np.ndarray) -> float:
        """Probability from the embedding head for combiner inputs `row` and vectors u, v."""
        import numpy as np

        return float(self.heads(np.asarray([row], dtype=np.float32), u, np.asarray(v)[None, :])[0])

    def heads(self, rows: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """`head` of several candidates of one query at once: combiner inputs (n × inputs), the query
        vector u, the candidates' vectors v (n × dim)."""
        import numpy as np

        assert self.hw1 is not None and self.hb1 is not None and self.hw2 is not None
        standardised = (rows - self.cmean) / self.cstd
        x = head_features(standardised, np.broadcast_to(u, v.shape), v, self.head_parts, self.whitening)
        hidden = np.maximum(x @ self.hw1 + self.hb1, 0.0)
        z = np.clip((hidden @ self.hw2).astype(np.float64) + self.hb2, -50.0, 50.0)
        return 1.0 / (1.0 + np.exp(-z))

    @property
    def whitening(self) -> Whitening | None:
        if self.wmean is None or self.wmatrix is None:
            return None
        return Whitening(self.wmean, self.wmatrix)

    def uses_head(self, query_vector: np.ndarray | None, candidate_vector: np.ndarray | None) -> bool:
        return self.has_head and query_vector is not None and candidate_vector is not None

    def score(
        self,
        query: str,
        candidate: str,
        cosine: float,
        query_vector: np.ndarray | None = None,
        candidate_vector: np.ndarray | None = None,
    ) -> float:
        value, staged = self.first_score(query, candidate, cosine, query_vector, candidate_vector)
        return self.cross.score(value, candidate, query) if staged and self.cross is not None else value

    def first_score(
        self,
        query: str,
        candidate: str,
        cosine: float,
        query_vector: np.ndarray | None = None,
        candidate_vector: np.ndarray | None = None,
    ) -> tuple[float, bool]:
        """The score before the cross-encoder stage, and whether that stage may still change it
        (not after a veto or for the same wording, which are final, nor without the vectors)."""
        from thrifty.cache.semantic import Candidate

        return self.first_scores(query, query_vector, [Candidate(candidate, cosine, candidate_vector)])[0]

    def first_scores(
        self, query: str, query_vector: np.ndarray | None, candidates: Sequence[Candidate]
    ) -> list[tuple[float, bool]]:
        """`first_score` of every candidate of one lookup: the query is analysed once, and the
        embedding head scores all candidates that reach it in one matrix product."""
        import numpy as np

        q = checks.analyze(query)
        out: list[tuple[float, bool]] = []
        rows: list[list[float]] = []
        headed: list[int] = []
        for i, c in enumerate(candidates):
            decided = self._decided(query, q, c.text, c.cosine)
            if not isinstance(decided, checks.Analysis):
                out.append((decided, False))
                continue
            row = self.combiner_row(extract(q, decided, c.cosine, self.idf, self.words))
            if self.uses_head(query_vector, c.vector):
                rows.append(row)
                headed.append(i)
                out.append((0.0, True))  # the head's probability, filled in below
            else:
                out.append((self.combine(row), False))
        if headed:
            u = np.asarray(query_vector, dtype=np.float32)
            v = np.stack([np.asarray(candidates[i].vector, dtype=np.float32) for i in headed])
            for i, p in zip(headed, self.heads(np.asarray(rows, dtype=np.float32), u, v), strict=True):
                out[i] = (float(p), True)
        return out

    def _decided(
        self, query: str, q: checks.Analysis, candidate: str, cosine: float
    ) -> float | checks.Analysis:
        """A score fixed before the learned stages (0 below the cosine floor or on a veto, 1 for the
        same wording), else the candidate's analysis for them."""
        if cosine < self.min_cosine:
            return 0.0
        c = checks.analyze(candidate)
        if checks.hard_vetoes(q, c, self.vetoes):  # the file's vetoes, and those every model applies
            return 0.0
        if checks.same_wording(q, c):
            # the same words and symbols in the same order: only case, spacing or punctuation differ.
            # QQP's negatives are sampled among near-identical questions, so the learned stages
            # distrust high overlap; identical wording is the one case where that bias must not apply.
            return 1.0
        return c

    def threshold_for(self, with_vectors: bool) -> float:
        """The calibrated threshold for a pair scored with (or without) its two embeddings."""
        if self.threshold is None:
            raise ValueError("verifier is not calibrated: run `thrifty cache calibrate` on it first")
        threshold = self.threshold if with_vectors or not self.has_head else self.text_threshold
        if threshold is None:
            raise ValueError("verifier has no text-only threshold: rerun `thrifty cache calibrate`")
        return threshold

    def accept(
        self,
        query: str,
        candidate: str,
        cosine: float,
        query_vector: np.ndarray | None = None,
        candidate_vector: np.ndarray | None = None,
    ) -> tuple[bool, float]:
        threshold = self.threshold_for(self.uses_head(query_vector, candidate_vector))
        value = self.score(query, candidate, cosine, query_vector, candidate_vector)
        return value >= threshold and value > 0.0, value

    def select(
        self,
        query: str,
        query_vector: np.ndarray | None,
        candidates: Sequence[Candidate],
        cross_budget: int = 1,
    ) -> tuple[int, float] | None:
        """The candidate that asks the same as `query` (its index and score), or None.

        Candidates are tried best first by their score before the cross-encoder stage; the stage runs
        on at most `cross_budget` of them (the best ones inside its band), the rest score 0. This
        bounds a lookup's cost at one or two transformer passes whatever `top_k` is.
        """
        firsts = self.first_scores(query, query_vector, candidates)
        for i in sorted(range(len(candidates)), key=lambda i: -firsts[i][0]):
            value, staged = firsts[i]
            if staged and self.cross is not None:
                if value < self.cross.band or value <= 0.0 or cross_budget <= 0:
                    continue
                cross_budget -= 1
                value = self.cross.score(value, candidates[i].text, query)
            threshold = self.threshold_for(self.uses_head(query_vector, candidates[i].vector))
            if value >= threshold and value > 0.0:
                return i, value
        return None

    def with_threshold(
        self, threshold: float, text_threshold: float | None = None, **meta: Any
    ) -> VerifierModel:
        return replace(
            self,
            threshold=float(threshold),
            text_threshold=None if text_threshold is None else float(text_threshold),
            meta={**self.meta, **meta},
        )

    def with_cross(self, stage: CrossStage | None) -> VerifierModel:
        """The same model with `stage` as its cross-encoder stage (uncalibrated until `calibrate`)."""
        return replace(self, cross=stage)

    # -- persistence -----------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        import numpy as np

        _check_usable(self.threshold, self.text_threshold, self.cross)  # before touching the file
        header = {
            "format": FORMAT,
            "b2": self.b2,
            "min_cosine": self.min_cosine,
            "threshold": self.threshold,
            "hb2": self.hb2,
            "text_threshold": self.text_threshold,
            "head_parts": list(self.head_parts),
            "vetoes": list(self.vetoes),
            "dense": list(DENSE),
            "combiner": list(COMBINER),
            "meta": self.meta,
            "cross": None if self.cross is None else self.cross.header(),
        }
        arrays = {name: np.asarray(getattr(self, name), dtype=np.float32) for name in _ARRAYS}
        if self.has_head:  # half precision: the head is most of the file, and fp16 loses nothing measurable
            arrays.update({name: np.asarray(getattr(self, name), dtype=np.float16) for name in _HEAD})
        if self.whitening is not None:
            arrays.update({name: np.asarray(getattr(self, name), dtype=np.float16) for name in _WHITENING})
        if self.oof is not None:
            arrays.update(self.oof.arrays())
        if self.cross is not None:
            arrays.update(self.cross.arrays())
        with open(path, "wb") as handle:  # an open handle stops numpy from appending .npz
            np.savez_compressed(handle, header=np.array(json.dumps(header)), **arrays)

    @classmethod
    def load(cls, path: str | Path) -> VerifierModel:
        """The model in `path`; a file that is not one (empty, truncated, another format) raises
        ValueError. (A NaN threshold still loads, so that `calibrate` can replace it.)"""
        import zipfile
        import zlib

        import numpy as np

        try:
            data = np.load(path, allow_pickle=False)
        except EOFError as exc:
            raise ValueError(f"{path}: not a verifier file (empty)") from exc
        except zipfile.BadZipFile as exc:
            raise ValueError(f"{path}: not a verifier file (truncated or damaged)") from exc
        except ValueError as exc:  # neither .npz nor .npy: numpy would offer to unpickle it
            raise ValueError(f"{path}: not a verifier file") from exc
        if not isinstance(data, np.lib.npyio.NpzFile):  # a bare .npy array
            raise ValueError(f"{path}: not a verifier file")
        try:
            model = cls._from_npz(path, data)
        except KeyError as exc:
            raise ValueError(f"{path}: not a verifier file (no {exc.args[0]!s})") from exc
        except (EOFError, zipfile.BadZipFile, zlib.error, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not a verifier file (truncated or damaged)") from exc
        finally:
            data.close()
        return model

    @classmethod
    def _from_npz(cls, path: str | Path, data: Any) -> VerifierModel:
        import numpy as np

        if "header" not in data.files:
            raise KeyError("header")  # reported as "not a verifier file (no header)"
        header = json.loads(str(data["header"]))
        if not isinstance(header, dict):
            raise KeyError("header")
        if header.get("format") != FORMAT:
            raise ValueError(f"{path}: not a {FORMAT} file (format={header.get('format')!r})")
        if header["dense"] != list(DENSE) or header["combiner"] != list(COMBINER):
            raise ValueError(f"{path}: trained with other features; retrain with `thrifty cache train`")
        arrays = {name: data[name] for name in _ARRAYS}
        optional = (*_HEAD, *_WHITENING)
        arrays.update({name: data[name].astype(np.float32) for name in optional if name in data.files})
        oof = OutOfFold.from_arrays({name: data[name] for name in data.files if name.startswith("oof_")})
        stage = {name: data[name] for name in data.files if name.startswith(CROSS_PREFIX)}
        cross = CrossStage.from_file(header.get("cross"), stage)
        parts = tuple(header.get("head_parts", ("absdiff", "prod")))
        if not set(parts) <= set(PARTS):
            raise ValueError(f"{path}: unknown head inputs {parts}; upgrade thrifty")
        return cls(
            **arrays,
            b2=float(header["b2"]),
            min_cosine=float(header.get("min_cosine", -1.0)),
            threshold=header["threshold"],
            hb2=float(header.get("hb2", 0.0)),
            text_threshold=header.get("text_threshold"),
            head_parts=parts,
            vetoes=tuple(header["vetoes"]),
            meta=header["meta"],
            oof=oof,
            cross=cross,
        )


def _check_usable(threshold: float | None, text_threshold: float | None, cross: CrossStage | None) -> None:
    """Refuse what `save` must not write (and a caller must not serve): a threshold that is not a number
    (nothing would ever match) or -inf (a finite threshold, or +inf: accept nothing, is fine), or a
    cross-encoder combiner whose weights are not numbers."""
    for name, value in (("threshold", threshold), ("text-only threshold", text_threshold)):
        if value is not None and not (math.isfinite(value) or value == math.inf):
            raise ValueError(f"the {name} is {value}, not a usable score: recalibrate the verifier")
    if cross is not None and not all(math.isfinite(w) for w in (*cross.weights, cross.band)):
        raise ValueError(
            f"the cross-encoder stage's weights are {list(cross.weights)}: recalibrate the verifier"
        )
