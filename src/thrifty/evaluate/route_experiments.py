"""Cross-validated routing experiments inside the training folds (never the test fold).

`python -m thrifty.evaluate.route_experiments --data FILE [--repeats N] [--only a,b] [--json]`
reproduces the "measured and not shipped" figures of docs/routing.md. Every variant is the shipped
recipe (train.py: dense + n-gram heads per model, L2 chosen by CV, a per-model logistic stacker over
all models' out-of-fold logits) with one change:

- `gain-soft` / `gain-drop` / `gain-tie0.3`: an extra head per (model, cheapest model) pair fitted on
  the pairwise win label (1 = this model right and the cheapest wrong, 0 = the reverse; ties
  0.5, dropped, or weighted 0.3); its out-of-fold logits (dense and n-gram) feed the stacker;
- `disagree-x2` / `disagree-x4`: the per-model heads weight rows where the models disagree 2 (4)
  times as much as rows where all agree;
- `item`: the dense head also gets the item-level measurements of `item_features.py`;
- `quad`: the stacker also sees pairwise products of the logits (interaction terms);
- `item+quad`: both; `mlp`: a one-hidden-layer MLP stacker (scikit-learn, the `train` extra);
- `group-prior` (needs `--group-field`): the stacker also sees each row's group mean score per model
  on the other folds — a ceiling for topic information a request does not carry (side_info.py);
- `answer-length` (needs recorded `completion_tokens`): the stacker also sees the answer-length
  head's out-of-fold predictions (routing/answer_length.py; shipped: `train` keeps it when it helps).

Two stacker figures per variant: *in-sample* (fitted and scored on all out-of-fold logits, as
`train` reports `cv_apgr`) and *nested* (fitted on the other folds' logits, scored on each fold).
With `--repeats N` the rows of the training folds are also re-split at random into as many folds
N − 1 more times (repeat 0 is the file's own folds) and the figures are averaged, with each variant's
mean difference to `baseline` (paired by repeat).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from thrifty.evaluate import answer_length
from thrifty.evaluate.side_info import group_prior_logits, read_groups
from thrifty.routing.data import OutcomeSet, load_outcomes

if TYPE_CHECKING:
    import numpy as np

    from thrifty.routing.sparse_logistic import Design

VARIANTS = (
    "baseline",
    "gain-soft",
    "gain-drop",
    "gain-tie0.3",
    "disagree-x2",
    "disagree-x4",
    "item",
    "quad",
    "item+quad",
    "mlp",
    "group-prior",
    "answer-length",
)
GAIN_DENSE_L2 = (0.01, 0.1, 1.0)
GAIN_NGRAM_L2 = (0.5, 1.0, 2.0, 4.0)
QUAD_L2 = 10.0


@dataclass
class Folds:
    """The training rows, their designs and the CV folds of one repeat."""

    data: OutcomeSet
    folds: np.ndarray
    dense: np.ndarray
    items: np.ndarray
    sparse: Design
    groups: np.ndarray | None = None

    @property
    def scores(self) -> np.ndarray:
        return self.data.scores

    def apgr(self, probs: np.ndarray) -> float:
        from thrifty.routing.train import _router_apgr

        return _router_apgr(probs, self.data.costs.mean(axis=0), self.data.scores, self.data.costs)

    def oof(
        self, x: np.ndarray | Design, y: np.ndarray, l2: float, weight: np.ndarray | None = None
    ) -> np.ndarray:
        """Out-of-fold logits of one logistic head (dense Newton or sparse L-BFGS) for target `y`."""
        import numpy as np

        from thrifty.routing import logistic, sparse_logistic

        out = np.zeros(len(y))
        for fold in np.unique(self.folds):
            held = self.folds == fold
            rows, test = np.flatnonzero(~held), np.flatnonzero(held)
            w = None if weight is None else weight[rows]
            if isinstance(x, np.ndarray):
                out[held] = x[test] @ logistic.fit(x[rows], y[rows], l2, sample_weight=w)
            else:
                out[held] = x.take(test).matvec(
                    sparse_logistic.fit(x.take(rows), y[rows], l2, sample_weight=w)
                )
        return out

    def heads(
        self, x: np.ndarray | Design, grid: Sequence[float], weight: np.ndarray | None = None
    ) -> np.ndarray:
        """(n, m) out-of-fold logits per model at the grid's L2 with the best APGR (train.py's rule)."""
        import numpy as np

        from thrifty.routing.logistic import sigmoid

        m = self.scores.shape[1]
        options = [np.stack([self.oof(x, self.scores[:, j], l2, weight) for j in range(m)], 1) for l2 in grid]
        return max(options, key=lambda z: self.apgr(sigmoid(z)))

    def gain_heads(self, x: np.ndarray | Design, grid: Sequence[float], tie_weight: float) -> np.ndarray:
        """(n, m − 1) out-of-fold logits of the win label of each model against the cheapest one."""
        import numpy as np

        from thrifty.routing.logistic import sigmoid

        cheapest = int(np.argmin(self.data.costs.mean(axis=0)))
        out = []
        for j in (j for j in range(self.scores.shape[1]) if j != cheapest):
            diff = self.scores[:, j] - self.scores[:, cheapest]
            weight = np.where(np.isclose(diff, 0.0), tie_weight, 1.0)
            options = [self.oof(x, (diff + 1) / 2, l2, weight) for l2 in grid]

            def alone(z: np.ndarray, j: int = j) -> float:
                probs = np.full(self.scores.shape, 0.5)
                probs[:, j] = sigmoid(z)
                return self.apgr(probs)

            out.append(max(options, key=alone))
        return np.stack(out, 1)

    def stacked(self, x: np.ndarray, fitter: Stacker) -> tuple[float, float]:
        """(in-sample, nested) APGR of a stacker over the features `x` (constant column last)."""
        import numpy as np

        probs = np.zeros(self.scores.shape)
        for fold in np.unique(self.folds):
            held = self.folds == fold
            probs[held] = fitter(x[~held], self.scores[~held], x[held])
        return self.apgr(fitter(x, self.scores, x)), self.apgr(probs)


Stacker = Callable[["np.ndarray", "np.ndarray", "np.ndarray"], "np.ndarray"]


def logistic_stacker(l2: float = 1.0) -> Stacker:
    def fit_predict(x: np.ndarray, scores: np.ndarray, new: np.ndarray) -> np.ndarray:
        import numpy as np

        from thrifty.routing.logistic import fit, sigmoid

        w = np.stack([fit(x, scores[:, j], l2) for j in range(scores.shape[1])])
        return sigmoid(new @ w.T)

    return fit_predict


def mlp_stacker(hidden: int = 4, alpha: float = 0.01) -> Stacker:
    def fit_predict(x: np.ndarray, scores: np.ndarray, new: np.ndarray) -> np.ndarray:
        import numpy as np
        from sklearn.neural_network import MLPClassifier

        mu, sd = x[:, :-1].mean(0), x[:, :-1].std(0) + 1e-9
        clf = MLPClassifier(
            (hidden,), activation="tanh", alpha=alpha, max_iter=2000, solver="lbfgs", random_state=0
        )
        clf.fit((x[:, :-1] - mu) / sd, scores.round().astype(int))
        return np.asarray(clf.predict_proba((new[:, :-1] - mu) / sd)).reshape(len(new), scores.shape[1])

    return fit_predict


def quadratic(logits: np.ndarray) -> np.ndarray:
    """[logits | pairwise products / 4 (squares included) | 1]."""
    import numpy as np

    k = logits.shape[1]
    products = [logits[:, i] * logits[:, j] / 4 for i in range(k) for j in range(i, k)]
    return np.hstack([logits, np.stack(products, 1), np.ones((len(logits), 1))])


def _with_one(*blocks: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.hstack([*blocks, np.ones((len(blocks[0]), 1))])


def run_repeat(f: Folds, variants: Sequence[str]) -> dict[str, tuple[float, float]]:
    """Each variant's (in-sample, nested) stacked APGR on one fold assignment."""
    import numpy as np

    from thrifty.routing.train import DENSE_L2_GRID, L2_GRID

    dense = f.heads(f.dense, DENSE_L2_GRID)
    ngram = f.heads(f.sparse, L2_GRID)
    with_items = np.hstack([f.dense[:, :-1], f.items, f.dense[:, -1:]])
    agree = np.all(np.isclose(f.scores, f.scores[:, :1]), axis=1)
    out: dict[str, tuple[float, float]] = {}
    for name in variants:
        stacker = logistic_stacker()
        if name == "baseline":
            x = _with_one(dense, ngram)
        elif name.startswith("gain-"):
            tie = {"gain-soft": 1.0, "gain-drop": 0.0, "gain-tie0.3": 0.3}[name]
            gains = [f.gain_heads(f.dense, GAIN_DENSE_L2, tie), f.gain_heads(f.sparse, GAIN_NGRAM_L2, tie)]
            x = _with_one(dense, ngram, *gains)
        elif name.startswith("disagree-x"):
            weight = np.where(agree, 1.0 / float(name.removeprefix("disagree-x")), 1.0)
            weight /= weight.mean()
            x = _with_one(f.heads(f.dense, DENSE_L2_GRID, weight), f.heads(f.sparse, L2_GRID, weight))
        elif name == "item":
            x = _with_one(f.heads(with_items, DENSE_L2_GRID), ngram)
        elif name in ("quad", "item+quad"):
            first = dense if name == "quad" else f.heads(with_items, DENSE_L2_GRID)
            x, stacker = quadratic(np.hstack([first, ngram])), logistic_stacker(QUAD_L2)
        elif name == "mlp":
            x, stacker = _with_one(dense, ngram), mlp_stacker()
        elif name == "group-prior" and f.groups is not None:
            x = _with_one(dense, ngram, group_prior_logits(f.groups, f.scores, f.folds))
        elif name == "answer-length" and answer_length.usable(f.data.completion_tokens):
            lengths = answer_length.out_of_fold(with_items[:, :-1], f.data.completion_tokens, f.folds)
            x = _with_one(dense, ngram, lengths)
        else:
            raise ValueError(f"unknown variant {name!r}")
        out[name] = f.stacked(x, stacker)
    return out


def runnable(data: OutcomeSet, groups: np.ndarray | None) -> list[str]:
    """The variants the data (and group labels) have the information for."""
    from thrifty.evaluate.answer_length import usable

    lacking = {"group-prior": groups is None, "answer-length": not usable(data.completion_tokens)}
    return [v for v in VARIANTS if not lacking.get(v, False)]


def experiment(
    data: OutcomeSet,
    variants: Sequence[str] = VARIANTS,
    repeats: int = 1,
    groups: np.ndarray | None = None,
) -> dict[str, Any]:
    """Run `variants` on `data` (the training rows; their folds are the CV folds; `groups`: a label
    per row for `group-prior`)."""
    import numpy as np

    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown} (known: {', '.join(VARIANTS)})")
    missing = [v for v in variants if v not in runnable(data, groups)]
    if missing:
        raise ValueError(
            f"variants {missing} need what the data lacks (group-prior: --group-field; "
            "answer-length: completion_tokens recorded for every outcome, not all alike)"
        )

    from thrifty.evaluate.item_features import item_matrix
    from thrifty.routing.learned import dense_design
    from thrifty.routing.ngrams import NgramFeaturizer
    from thrifty.routing.train import _ngram_design

    sparse = _ngram_design(NgramFeaturizer().fit(data.prompts).transform(data.prompts))
    dense, items = dense_design(None, data.prompts), item_matrix(data.prompts)
    k = len(np.unique(data.folds))
    runs = []
    for r in range(repeats):
        folds = data.folds if r == 0 else np.random.default_rng(100 + r).permutation(np.arange(len(data)) % k)
        runs.append(run_repeat(Folds(data, folds, dense, items, sparse, groups), variants))
    base = "baseline" if "baseline" in variants else None
    table = {}
    for name in variants:
        values = np.array([run[name] for run in runs])
        row = {"in_sample": float(values[:, 0].mean()), "nested": float(values[:, 1].mean())}
        if base is not None:
            diff = values - np.array([run[base] for run in runs])
            row |= {"diff_in_sample": float(diff[:, 0].mean()), "diff_nested": float(diff[:, 1].mean())}
            row |= {"diff_nested_std": float(diff[:, 1].std())}
        table[name] = row
    return {"rows": len(data), "folds": k, "repeats": repeats, "variants": table}


def _print(path: str, result: dict[str, Any]) -> None:
    print(f"{path}: {result['rows']} training rows, {result['folds']} folds, {result['repeats']} repeat(s)")
    print(f"{'variant':14s} {'in-sample':>9s} {'nested':>8s} {'Δ in-sample':>12s} {'Δ nested':>9s}")
    for name, row in result["variants"].items():
        diffs = f"{row.get('diff_in_sample', 0):+12.4f} {row.get('diff_nested', 0):+9.4f}"
        print(f"{name:14s} {row['in_sample']:9.4f} {row['nested']:8.4f} {diffs}")


def main(argv: Sequence[str] | None = None) -> None:
    import json

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="outcome JSONL; folds 0–3 are used, fold 4 never")
    parser.add_argument("--repeats", type=int, default=1, help="fold assignments (1: the file's own)")
    parser.add_argument("--only", help="comma-separated variants (default: all the data allows)")
    parser.add_argument("--group-field", help="a row field naming its group, for group-prior (e.g. subject)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    train_rows, _ = load_outcomes(args.data).split()
    groups = None if args.group_field is None else read_groups(args.data, train_rows, args.group_field)
    variants = runnable(train_rows, groups) if args.only is None else [v for v in args.only.split(",") if v]
    try:
        result = experiment(train_rows, variants, max(args.repeats, 1), groups)
    except ValueError as exc:
        parser.exit(2, f"route_experiments: {exc}\n")
    print(json.dumps(result, indent=2) if args.json else "", end="")
    if not args.json:
        _print(args.data, result)


if __name__ == "__main__":
    main()
