"""Training the verifier on the train split of a pairs file (every pair embedded).

1. The lexical stage (hashed-word MLP, `fitting.fit_lexical`) learns on all train pairs; its
   out-of-fold logits (K folds) stand in for it on the same pairs below, so the later stages see
   the lexical logit as it behaves on unseen pairs.
2. The text-only combiner (logistic regression on the lexical logit, the cosine and the dense
   features) — the fallback for callers that pass no vectors — and
3. the embedding head (MLP over those inputs plus |u - v| and u * v of the two MiniLM vectors) learn on
   the train pairs whose cosine reaches `min_cosine` (the only ones a cache lookup ever verifies).

Everything is seeded: the same pairs file and embedder give the same model.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from thrifty.cache.verify.align import WordVectors
from thrifty.cache.verify.features import DENSE, extract, fit_idf
from thrifty.cache.verify.fitting import SparseRows, fit_head, fit_lexical, fit_logistic
from thrifty.cache.verify.head import WHITENED, Whitening, head_features
from thrifty.cache.verify.pairs import Pair, sample, select

if TYPE_CHECKING:
    import numpy as np

    from thrifty.cache.verify.model import VerifierModel
    from thrifty.embed.diskcache import EmbeddingCache

_COSINE = DENSE.index("cosine")
_COSINE_SQ = DENSE.index("cosine_sq")


@dataclass(frozen=True)
class TrainSettings:
    hidden: int = 32
    epochs: int = 6
    batch: int = 256
    learning_rate: float = 3e-3
    l2_dense: float = 1e-4
    l2_sparse: float = 1e-2
    l2_combiner: float = 0.1
    min_cosine: float = 0.7  # the later stages learn (and the verifier answers) only above this cosine
    folds: int = 5  # out-of-fold lexical logits for the later stages
    train_pairs: int | None = None  # a deterministic sample of the train split (None: all of it)
    head_hidden: int = 64  # > 0: fit an embedding head (scikit-learn at train time only)
    head_alpha: float = 1e-2  # its L2 penalty
    head_seeds: int = 5  # MLPs averaged into the head
    head_parts: tuple[str, ...] = ("absdiff", "prod", "white_absdiff", "white_prod", "white_cos", "sum")
    seed: int = 0


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def lexical_matrices(
    pairs: Sequence[Pair], idf: np.ndarray, words: WordVectors
) -> tuple[np.ndarray, SparseRows, np.ndarray]:
    """(dense features with the cosine left at 0, differing-word rows, labels); query = b, candidate = a."""
    import numpy as np

    dense, differing = [], []
    for pair in pairs:
        feats = extract(pair.b, pair.a, 0.0, idf, words)
        dense.append(feats.dense)
        differing.append(feats.differing)
    labels = np.array([p.duplicate for p in pairs], dtype=np.float32)
    return np.asarray(dense, dtype=np.float32), SparseRows(differing), labels


def with_cosines(dense: np.ndarray, cosines: np.ndarray) -> np.ndarray:
    out = dense.copy()
    out[:, _COSINE] = cosines
    out[:, _COSINE_SQ] = cosines * cosines
    return out


def out_of_fold_logits(
    dense: np.ndarray, sparse: SparseRows, labels: np.ndarray, idf: np.ndarray, s: TrainSettings
) -> np.ndarray:
    """Each pair's lexical logit from a lexical stage trained on the other folds."""
    import numpy as np

    folds = np.random.default_rng(s.seed).integers(0, s.folds, len(labels))
    out = np.zeros(len(labels), dtype=np.float64)
    for fold in range(s.folds):
        held = np.flatnonzero(folds == fold)
        rest = np.flatnonzero(folds != fold)
        if len(held) == 0 or len(rest) == 0:
            continue
        model = fit_lexical(dense[rest], SparseRows([sparse.rows[i] for i in rest]), labels[rest], idf, s)
        out[held] = model.lexical_logits(dense[held], SparseRows([sparse.rows[i] for i in held]))
    return out


def combiner_matrix(lexical: np.ndarray, dense: np.ndarray) -> np.ndarray:
    """Rows of `COMBINER` inputs: lexical logit, logit x cosine, dense features (cosine filled in)."""
    import numpy as np

    return np.hstack([lexical[:, None], (lexical * dense[:, _COSINE])[:, None], dense]).astype(np.float64)


def pair_vectors(pairs: Sequence[Pair], cache: EmbeddingCache) -> tuple[np.ndarray, np.ndarray]:
    """(query rows, candidate rows): the pairs' `b` and `a` embeddings."""
    cache.fill([t for p in pairs for t in (p.a, p.b)], progress=True)
    return cache.matrix([p.b for p in pairs]), cache.matrix([p.a for p in pairs])


def pair_cosines(pairs: Sequence[Pair], cache: EmbeddingCache) -> np.ndarray:
    import numpy as np

    b, a = pair_vectors(pairs, cache)
    return np.einsum("ij,ij->i", a, b) if len(pairs) else np.zeros(0)


@dataclass
class TrainingSet:
    """Everything the later stages learn from: one row per train pair above the cosine floor."""

    rows: np.ndarray  # combiner inputs (out-of-fold lexical logit)
    u: np.ndarray  # query vectors
    v: np.ndarray  # candidate vectors
    labels: np.ndarray


@dataclass
class PairMatrices:
    """What every pipeline trained on the same pairs shares, whatever its seed."""

    idf: np.ndarray
    words: WordVectors
    dense: np.ndarray  # lexical features, cosine left at 0
    sparse: SparseRows  # differing words
    labels: np.ndarray
    u: np.ndarray
    v: np.ndarray
    whitening: Whitening | None


def pair_matrices(pairs: Sequence[Pair], cache: EmbeddingCache, s: TrainSettings) -> PairMatrices:
    import numpy as np

    idf = fit_idf([t for p in pairs for t in (p.a, p.b)])
    words = WordVectors.bundled()
    dense, sparse, labels = lexical_matrices(pairs, idf, words)
    _log(f"lexical features of {len(pairs)} pairs; embedding them")
    u, v = pair_vectors(pairs, cache)
    whitened = s.head_hidden > 0 and WHITENED.intersection(s.head_parts)
    whitening = Whitening.fit(np.vstack([u, v])) if whitened else None
    return PairMatrices(idf, words, dense, sparse, labels, u, v, whitening)


def build(m: PairMatrices, s: TrainSettings) -> tuple[VerifierModel, TrainingSet]:
    """The lexical stage trained on the pairs and the later stages' training rows."""
    import numpy as np

    _log(f"{s.folds}-fold out-of-fold lexical logits (seed {s.seed})")
    oof = out_of_fold_logits(m.dense, m.sparse, m.labels, m.idf, s)
    model = fit_lexical(m.dense, m.sparse, m.labels, m.idf, s)
    model.min_cosine, model.words = s.min_cosine, m.words
    if m.whitening is not None:
        model.wmean, model.wmatrix = m.whitening.mean, m.whitening.matrix
    cosines = np.einsum("ij,ij->i", m.u, m.v)
    near = np.flatnonzero(cosines >= s.min_cosine)
    if len(near) < 10 or m.labels[near].min() == m.labels[near].max():
        raise ValueError(f"too few train pairs (of both labels) with cosine >= {s.min_cosine}")
    rows = combiner_matrix(oof[near], with_cosines(m.dense[near], cosines[near]))
    return model, TrainingSet(rows, m.u[near], m.v[near], m.labels[near])


def fit_later_stages(model: VerifierModel, data: TrainingSet, s: TrainSettings) -> VerifierModel:
    """The text-only combiner and (head_hidden > 0) the embedding head, fitted in place."""
    import numpy as np

    model.cmean = data.rows.mean(0).astype(np.float32)
    model.cstd = (data.rows.std(0) + 1e-6).astype(np.float32)
    standardised = (data.rows - model.cmean) / model.cstd
    model.combiner = fit_logistic(standardised, data.labels.astype(np.float64), l2=s.l2_combiner)
    if s.head_hidden > 0:
        _log(f"fitting the head ({s.head_seeds} x {s.head_hidden} units) on {len(data.labels)} pairs")
        model.head_parts = tuple(s.head_parts)
        inputs = head_features(standardised, data.u, data.v, model.head_parts, model.whitening)
        model.hw1, model.hb1, model.hw2, model.hb2 = fit_head(inputs, data.labels, s)
    return model


def train(
    pairs: Sequence[Pair], cache: EmbeddingCache, settings: TrainSettings | None = None
) -> VerifierModel:
    """The verifier trained on the train split of `pairs` (uncalibrated)."""
    s = settings or TrainSettings()
    return fit_pairs(sample(select(pairs, "train"), s.train_pairs), cache, s)


def fit_pairs(train_pairs: Sequence[Pair], cache: EmbeddingCache, s: TrainSettings) -> VerifierModel:
    """Every stage trained on exactly `train_pairs`, whatever their split (`train` and the
    cross-fitting of `crossfit.py` choose them)."""
    if len(train_pairs) < 2 * s.folds:
        raise ValueError(f"too few train pairs ({len(train_pairs)}) for {s.folds} folds")
    model, data = build(pair_matrices(train_pairs, cache, s), s)
    fit_later_stages(model, data, s)
    model.meta = {
        "train_pairs": len(train_pairs),
        "pairs_above_min_cosine": len(data.labels),
        "embedder": cache.embedder_id,
        "settings": s.__dict__,
    }
    return model
