"""Side information of recorded outcomes that a request does not carry, for routing experiments.

**Group prior** (`route_experiments --group-field subject`): how much would knowing each prompt's
topic (a field of the recording, e.g. MMLU's `subject`) add to the router? Each row gets, per model,
the smoothed mean score of its group on the *other* folds, as extra stacker inputs. A request carries
no such field, so this measures a ceiling for topic information, not a router (docs/routing.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    import numpy as np

    from thrifty.routing.data import OutcomeSet

GROUP_SMOOTHING = 20.0
"""Pseudo-count of the overall mean in a group's mean (small groups lean on the overall mean)."""


def read_groups(path: str | Path, data: OutcomeSet, group_field: str) -> np.ndarray:
    """The `group_field` label of each of `data`'s rows, read from `path` (object array).

    `data.rows` index the file's non-blank lines (as `load_outcomes` numbers them). A row without
    the field is a group of its own.
    """
    import numpy as np

    lines = [raw for raw in Path(path).read_bytes().splitlines() if raw.strip()]
    labels = [str(orjson.loads(lines[i]).get(group_field, f"\0{i}")) for i in data.rows]
    return np.asarray(labels, dtype=object)


def group_prior_logits(groups: np.ndarray, scores: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """(n, m) logit of each row's group mean score per model, from the other folds' rows only."""
    import numpy as np

    out = np.zeros(scores.shape)
    for fold in np.unique(folds):
        held = folds == fold
        overall = scores[~held].mean(axis=0)
        for group in np.unique(groups[held]):
            known = (groups == group) & ~held
            mean = (scores[known].sum(axis=0) + GROUP_SMOOTHING * overall) / (known.sum() + GROUP_SMOOTHING)
            out[held & (groups == group)] = mean
    out = np.clip(out, 1e-4, 1 - 1e-4)
    return np.log(out / (1 - out))
