"""Dev-split ablation of the verifier's dense features over several training seeds.

`python -m thrifty.cache.verify.ablation --pairs ../shared/data/cache/qqp_pairs.jsonl --embed-cache DIR
--drop align_mean_a,...,static_cosine --seeds 0,1,2,3` trains the verifier as `thrifty cache train`
does (defaults: 5 x 64 head units) once per seed, with the named dense features held at 0 (a constant
column carries nothing once standardised), and prints for each seed the dev recall at the point whose
one-sigma Wilson lower bound reaches 95 % (no vetoes; `calibrate` may add some) and the precision of
the 1,000 dev pairs scored highest. Reads the train and dev splits only. Figures in
docs/cache-verifier.md ("What did not help").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from thrifty.cache.verify import checks
from thrifty.cache.verify.features import DENSE
from thrifty.cache.verify.fitting import SparseRows
from thrifty.cache.verify.head import head_features
from thrifty.cache.verify.pairs import Pair, read_pairs, select
from thrifty.cache.verify.train import (
    TrainSettings,
    build,
    combiner_matrix,
    fit_later_stages,
    lexical_matrices,
    pair_matrices,
    pair_vectors,
    with_cosines,
)

if TYPE_CHECKING:
    import numpy as np

    from thrifty.cache.verify.model import VerifierModel
    from thrifty.embed.diskcache import EmbeddingCache


def dev_scores(
    model: VerifierModel, dense: np.ndarray, sparse: SparseRows, u: np.ndarray, v: np.ndarray, dev: list[Pair]
) -> np.ndarray:
    """`VerifierModel.score` with vectors and no vetoes, for many pairs at once."""
    import numpy as np

    assert model.hw1 is not None and model.hb1 is not None and model.hw2 is not None
    cosines = np.einsum("ij,ij->i", u, v)
    rows = combiner_matrix(model.lexical_logits(dense, sparse), with_cosines(dense, cosines))
    standardised = ((rows - model.cmean) / model.cstd).astype(np.float32)
    x = head_features(standardised, u, v, model.head_parts, model.whitening)
    z = np.maximum(x @ model.hw1 + model.hb1, 0.0) @ model.hw2 + model.hb2
    scores = 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))
    scores[cosines < model.min_cosine] = 0.0
    same = np.array([checks.same_wording(p.b, p.a) for p in dev])
    scores[same & (cosines >= model.min_cosine)] = 1.0
    return scores


def run(
    pairs: list[Pair], cache: EmbeddingCache, drop: list[str], seeds: list[int]
) -> list[tuple[float, float]]:
    """(dev recall at the 95 % Wilson point, precision of the top 1,000 dev pairs) per seed."""
    import numpy as np

    from thrifty.cache.evaluate import choose_threshold, pair_stats

    train, dev = select(pairs, "train"), select(pairs, "dev")
    shared = pair_matrices(train, cache, TrainSettings())
    dev_dense, dev_sparse, dev_labels = lexical_matrices(dev, shared.idf, shared.words)
    held = [DENSE.index(name) for name in drop]
    shared.dense[:, held] = 0.0
    dev_dense[:, held] = 0.0
    dev_u, dev_v = pair_vectors(dev, cache)
    results = []
    for seed in seeds:
        s = TrainSettings(seed=seed)
        model, data = build(shared, s)
        fit_later_stages(model, data, s)
        scores = dev_scores(model, dev_dense, dev_sparse, dev_u, dev_v, dev)
        truth = dev_labels.astype(bool).tolist()
        stats = pair_stats(scores.tolist(), truth, choose_threshold(scores.tolist(), truth, 0.95))
        top = float(dev_labels[np.argsort(-scores, kind="stable")[:1000]].mean())
        print(f"seed {seed}: recall @95 % (Wilson) {stats.recall:.4f}, top-1000 {top:.4f}", flush=True)
        results.append((stats.recall, top))
    return results


def main(argv: list[str] | None = None) -> None:
    from thrifty.embed import get_embedder
    from thrifty.embed.diskcache import EmbeddingCache

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", required=True)
    parser.add_argument("--embed-cache", default=None)
    parser.add_argument("--drop", default="", help="comma list of dense features to hold at 0")
    parser.add_argument("--seeds", default="0,1,2,3")
    args = parser.parse_args(argv)
    drop = [name for name in args.drop.split(",") if name]
    unknown = sorted(set(drop) - set(DENSE))
    if unknown:
        parser.error(f"unknown features {unknown}; known: {', '.join(DENSE)}")
    results = run(
        read_pairs(Path(args.pairs)),
        EmbeddingCache(get_embedder(), args.embed_cache),
        drop,
        [int(s) for s in args.seeds.split(",")],
    )
    recall = sum(r for r, _ in results) / len(results)
    top = sum(t for _, t in results) / len(results)
    print(f"mean over {len(results)} seeds: recall @95 % {recall:.4f}, precision of top 1000 {top:.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
