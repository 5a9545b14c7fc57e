"""Training the verifier with numpy alone (scipy.sparse for the hashed-word part).

The lexical stage learns from the train split minus a held-apart slice; the combiner (lexical logit,
cosine and the dense features) learns on that slice, so it sees out-of-sample lexical logits. Only the slice
needs embeddings, which keeps a CPU-only training run short. Everything is seeded: the same pairs file
gives the same model.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from thrifty.cache.verify.features import BUCKETS, extract, fit_idf
from thrifty.cache.verify.model import COMBINER, LEXICAL, VerifierModel
from thrifty.cache.verify.pairs import Pair, sample, select

if TYPE_CHECKING:
    import numpy as np

    from thrifty.cache.verify.embcache import EmbeddingCache


@dataclass(frozen=True)
class TrainSettings:
    hidden: int = 32
    epochs: int = 6
    batch: int = 256
    learning_rate: float = 3e-3
    l2_dense: float = 1e-4
    l2_sparse: float = 1e-2
    l2_combiner: float = 0.1
    min_cosine: float = 0.7  # the combiner learns (and the verifier answers) only above this cosine
    combiner_pairs: int = 3000  # train pairs held apart, embedded, for the combiner
    head_hidden: int = 0  # > 0: fit an embedding head (MLP, scikit-learn at train time only)
    head_alpha: float = 1.0  # its L2 penalty (chosen by 5-fold CV on the embedded train pairs)
    seed: int = 0


class SparseRows:
    """Binary sparse rows (hashed word buckets per pair), just what the training loop needs."""

    def __init__(self, rows: list[list[int]]) -> None:
        self.rows = rows

    def batch(self, idx: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(row position within the batch, bucket) of every non-zero in the selected rows."""
        import numpy as np

        pos = [i for i, r in enumerate(idx) for _ in self.rows[r]]
        cols = [c for r in idx for c in self.rows[r]]
        return np.asarray(pos, dtype=np.int64), np.asarray(cols, dtype=np.int64)

    def dot(self, idx: Sequence[int], weights: np.ndarray) -> np.ndarray:
        import numpy as np

        pos, cols = self.batch(idx)
        return np.bincount(pos, weights=weights[cols], minlength=len(idx))


def _matrices(pairs: Sequence[Pair], idf: np.ndarray, cosines: Sequence[float] | None = None):
    import numpy as np

    dense, differing = [], []
    for i, pair in enumerate(pairs):
        feats = extract(pair.b, pair.a, 0.0 if cosines is None else float(cosines[i]), idf)
        dense.append(feats.dense)
        differing.append(feats.differing)
    sparse = SparseRows(differing)
    labels = np.array([p.duplicate for p in pairs], dtype=np.float32)
    return np.asarray(dense, dtype=np.float32), sparse, labels


def _sigmoid(z: np.ndarray) -> np.ndarray:
    import numpy as np

    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


def fit_lexical(dense: np.ndarray, sparse: SparseRows, labels: np.ndarray, idf: np.ndarray, s: TrainSettings):
    """Minibatch Adam on binary cross-entropy; returns the lexical-stage arrays."""
    import numpy as np

    rng = np.random.default_rng(s.seed)
    x_all = dense[:, list(LEXICAL)]
    mean, std = x_all.mean(0), x_all.std(0) + 1e-6
    x_all = (x_all - mean) / std
    d = x_all.shape[1]
    params = {
        "w1": rng.normal(0, 1 / np.sqrt(d), (d, s.hidden)).astype(np.float32),
        "b1": np.zeros(s.hidden, np.float32),
        "w2": rng.normal(0, 1 / np.sqrt(s.hidden), s.hidden).astype(np.float32),
        "b2": np.zeros(1, np.float32),
        "sparse": np.zeros(BUCKETS, np.float32),
    }
    moments = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in params.items()}
    step = 0
    for _epoch in range(s.epochs):
        order = rng.permutation(len(labels))
        for start in range(0, len(order), s.batch):
            idx = order[start : start + s.batch]
            x, y = x_all[idx], labels[idx]
            pos, cols = sparse.batch(idx)
            pre = x @ params["w1"] + params["b1"]
            hidden = np.maximum(pre, 0)
            sparse_logit = np.bincount(pos, weights=params["sparse"][cols], minlength=len(idx))
            logit = hidden @ params["w2"] + params["b2"][0] + sparse_logit
            g = (_sigmoid(logit) - y) / len(idx)  # dLoss/dlogit
            g_hidden = np.outer(g, params["w2"]) * (pre > 0)
            grads = {
                "w2": hidden.T @ g + s.l2_dense * params["w2"],
                "b2": np.array([g.sum()], np.float32),
                "w1": x.T @ g_hidden + s.l2_dense * params["w1"],
                "b1": g_hidden.sum(0),
                "sparse": np.bincount(cols, weights=g[pos], minlength=BUCKETS).astype(np.float32)
                + s.l2_sparse * params["sparse"] * len(idx) / len(labels),
            }
            step += 1
            for k, grad in grads.items():
                m, v = moments[k]
                m *= 0.9
                m += 0.1 * grad
                v *= 0.999
                v += 0.001 * grad * grad
                m_hat, v_hat = m / (1 - 0.9**step), v / (1 - 0.999**step)
                params[k] -= (s.learning_rate * m_hat / (np.sqrt(v_hat) + 1e-8)).astype(np.float32)
    return VerifierModel(
        idf=idf,
        mean=mean.astype(np.float32),
        std=std.astype(np.float32),
        w1=params["w1"],
        b1=params["b1"],
        w2=params["w2"],
        sparse=params["sparse"],
        combiner=np.zeros(len(COMBINER) + 1, np.float32),
        cmean=np.zeros(len(COMBINER), np.float32),
        cstd=np.ones(len(COMBINER), np.float32),
        b2=float(params["b2"][0]),
    )


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, iterations: int = 50) -> np.ndarray:
    """Newton's method for an L2-regularised logistic regression; the last weight is the bias."""
    import numpy as np

    xb = np.hstack([x, np.ones((len(x), 1))]).astype(np.float64)
    w = np.zeros(xb.shape[1])
    for _ in range(iterations):
        p = _sigmoid(xb @ w)
        grad = xb.T @ (p - y) / len(y) + l2 * w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb / len(y) + l2 * np.eye(len(w))
        w -= np.linalg.solve(hess, grad)
    return w.astype(np.float32)


def combiner_rows(model: VerifierModel, pairs: Sequence[Pair], cosines: Sequence[float]) -> np.ndarray:
    import numpy as np

    rows = [
        model.combiner_row(extract(pair.b, pair.a, float(cosine), model.idf))
        for pair, cosine in zip(pairs, cosines, strict=True)
    ]
    return np.asarray(rows, dtype=np.float64)


def pair_vectors(pairs: Sequence[Pair], cache: EmbeddingCache) -> tuple[np.ndarray, np.ndarray]:
    """(query rows, candidate rows): the pairs' `b` and `a` embeddings."""
    cache.fill([t for p in pairs for t in (p.a, p.b)], progress=True)
    return cache.matrix([p.b for p in pairs]), cache.matrix([p.a for p in pairs])


def pair_cosines(pairs: Sequence[Pair], cache: EmbeddingCache) -> np.ndarray:
    import numpy as np

    b, a = pair_vectors(pairs, cache)
    return np.einsum("ij,ij->i", a, b) if len(pairs) else np.zeros(0)


def head_inputs(standardised_rows: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The embedding head's input rows, as `VerifierModel.head` builds them one at a time."""
    import numpy as np

    return np.hstack([standardised_rows, np.abs(u - v), u * v]).astype(np.float32)


def fit_head(x: np.ndarray, y: np.ndarray, s: TrainSettings) -> tuple[np.ndarray, ...]:
    """A one-hidden-layer ReLU MLP (scikit-learn, train time only) exported as numpy arrays."""
    try:
        from sklearn.neural_network import MLPClassifier
    except ImportError as exc:  # pragma: no cover - depends on the training environment
        raise ValueError("training the embedding head needs scikit-learn") from exc
    import numpy as np

    mlp = MLPClassifier(
        hidden_layer_sizes=(s.head_hidden,),
        alpha=s.head_alpha,
        max_iter=300,
        early_stopping=True,
        validation_fraction=0.15,
        n_iter_no_change=15,
        random_state=s.seed,
    )
    mlp.fit(x, y.astype(int))
    w1, w2 = mlp.coefs_
    b1, b2 = mlp.intercepts_
    return (
        w1.astype(np.float32),
        b1.astype(np.float32),
        w2[:, 0].astype(np.float32),
        np.float32(b2[0]),
    )


def train(
    pairs: Sequence[Pair], cache: EmbeddingCache, settings: TrainSettings | None = None
) -> VerifierModel:
    s = settings or TrainSettings()
    train_pairs = select(pairs, "train")
    held = sample(train_pairs, s.combiner_pairs)
    held_set = set(held)
    lexical_pairs = [p for p in train_pairs if p not in held_set]
    if not held or not lexical_pairs:
        raise ValueError("too few train pairs: need some for each of the two stages")
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    log(f"train split: {len(train_pairs)} pairs; lexical stage {len(lexical_pairs)}, combiner {len(held)}")
    idf = fit_idf([t for p in train_pairs for t in (p.a, p.b)])
    dense, sparse, labels = _matrices(lexical_pairs, idf)
    model = fit_lexical(dense, sparse, labels, idf, s)
    log("lexical stage trained; embedding the combiner pairs")
    import numpy as np

    u_all, v_all = pair_vectors(held, cache)
    cosines = np.einsum("ij,ij->i", u_all, v_all)
    near = [i for i, c in enumerate(cosines) if c >= s.min_cosine]
    if len(near) < 10:
        raise ValueError(f"only {len(near)} combiner pairs have cosine >= {s.min_cosine}: hold more apart")
    x = combiner_rows(model, [held[i] for i in near], cosines[near])
    y = [float(held[i].duplicate) for i in near]
    model.min_cosine = s.min_cosine

    model.cmean = x.mean(0).astype(np.float32)
    model.cstd = (x.std(0) + 1e-6).astype(np.float32)
    model.combiner = fit_logistic((x - model.cmean) / model.cstd, np.asarray(y), l2=s.l2_combiner)
    if s.head_hidden > 0:
        log(f"fitting the embedding head on {len(near)} pairs")
        inputs = head_inputs((x - model.cmean) / model.cstd, u_all[near], v_all[near])
        model.hw1, model.hb1, model.hw2, hb2 = fit_head(inputs, np.asarray(y), s)
        model.hb2 = float(hb2)
    model.meta = {
        "train_pairs": len(train_pairs),
        "lexical_pairs": len(lexical_pairs),
        "combiner_pairs": len(held),
        "combiner_pairs_above_min_cosine": len(near),
        "settings": s.__dict__,
    }
    return model
