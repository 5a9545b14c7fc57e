"""`thrifty route eval`: train a learned router on folds 0–3, replay fold 4, compare with baselines.

Everything comes from recorded outcomes (no provider calls): a routing decision "costs" what the
chosen model's recorded call cost and "scores" what it scored.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from thrifty.embed.diskcache import EmbeddingCache, default_directory
from thrifty.evaluate.baselines import baselines
from thrifty.evaluate.bootstrap import apgr_interval
from thrifty.evaluate.curves import table
from thrifty.evaluate.metrics import Curve, Reference, headline_axis, nothing_to_route, require_models, sweep
from thrifty.routing.data import OutcomeSet, load_outcomes

if TYPE_CHECKING:
    import numpy as np

    from thrifty.routing.learned import LearnedModel


def embed_rows(
    full: OutcomeSet, part: OutcomeSet, cache: EmbeddingCache, use: bool = True
) -> np.ndarray | None:
    """Embeddings of `part`'s prompts, computed (and cached) once for the whole file `full`."""
    return cache.matrix(full.prompts)[part.rows] if use else None


def router_cache(embed_tokens: int | None, directory: Path | None = None) -> EmbeddingCache:
    """An embedding cache whose embedder reads the first `embed_tokens` tokens (None: all), kept in
    `directory` (default: `default_directory()`) between runs."""
    from thrifty.embed import get_embedder
    from thrifty.routing.train import FULL_TOKENS

    return EmbeddingCache(get_embedder(embed_tokens or FULL_TOKENS), directory or default_directory())


def router_probs(model: LearnedModel, data: OutcomeSet, embeddings: np.ndarray | None) -> np.ndarray:
    """(n, m) predictions in the data's model order (the router may list models in another order)."""
    import numpy as np

    probs = model.predict(data.prompts, embeddings)
    missing = [m for m in data.models if m not in model.models]
    if missing:
        raise ValueError(f"the router was not trained on models {missing}")
    order = [model.models.index(m) for m in data.models]
    return np.asarray(probs[:, order])


def router_costs(model: LearnedModel, data: OutcomeSet) -> np.ndarray:
    import numpy as np

    return np.asarray([model.est_cost[model.models.index(m)] for m in data.models])


def curve_report(curve: Curve, axis: str = "calls") -> dict[str, Any]:
    """Figures on both axes (`apgr`, `cpt50`, `cpt80`: calls; `…_cost`: cost), the curves, and the
    figures on the headline `axis` again under `headline`. PGR figures are None when there is no
    quality gap between weak and strong (`Reference.routable`)."""
    curves = {f"curve_{a}": table(curve, a) for a in ("calls", "cost")}
    if not curve.ref.routable:
        for rows in curves.values():
            for row in rows:
                row["pgr"] = None
    return {**curve.summary(), "headline": curve.headline(axis), **curves}


def evaluate_router(
    path: str | Path,
    *,
    router: str | Path | None = None,
    embed_tokens: int | None = None,
    cache: EmbeddingCache | None = None,
) -> dict[str, Any]:
    """Train on folds 0–3 (or load `router`), report on fold 4. Returns a JSON-able dict whose
    `headline_axis` names the axis the headline figures, the bootstrap interval and the random
    router's `headline` are on (calls for two models, cost for more; both axes' figures are kept),
    and whose `warnings` say when there is nothing to route (then APGR, CPT and PGR are None).

    `embed_tokens`: the trained router's dense head also embeds the first that many prompt tokens
    (default: no embedding, n-grams and lexical features only)."""
    from thrifty.routing.learned import LearnedModel
    from thrifty.routing.train import train

    data = load_outcomes(path)
    require_models(data.models)
    train_set, test_set = data.checked_split()
    trained: dict[str, Any] = {}
    if router is None:
        cache = cache or router_cache(embed_tokens)
        emb = embed_rows(data, train_set, cache, embed_tokens is not None)
        model, report = train(train_set, emb, embed_tokens=embed_tokens, meta={"data": Path(path).name})
        trained = {
            "ngram_l2": report.l2,
            "dense_l2": report.dense_l2,
            "heads": report.heads,
            "embed_scale": report.embed_scale,
            "cv_apgr": report.cv_apgr,
        }
    else:
        model = LearnedModel.load(router)
        cache = cache or router_cache(model.embed_tokens)
        keys = ("data", "rows", "l2", "dense_l2", "cv_apgr")
        trained = {"router_file": str(router), **{k: model.meta.get(k) for k in keys}}
    probs = router_probs(model, test_set, embed_rows(data, test_set, cache, model.use_embedding))
    ref = Reference.of(test_set.scores, test_set.costs)
    est = router_costs(model, test_set)
    curve = sweep(probs, est, test_set.scores, test_set.costs, ref)
    axis = headline_axis(len(data.models))
    noise = apgr_interval(probs, est, test_set.scores, test_set.costs, axis=axis) if ref.routable else None
    warning = nothing_to_route(ref, test_set.scores, data.models)
    return {
        "data": Path(path).name,
        "models": data.models,
        "headline_axis": axis,
        "warnings": [] if warning is None else [warning],
        "rows": {"train": len(train_set), "test": len(test_set)},
        "weak": data.models[ref.weak],
        "strong": data.models[ref.strong],
        "router": {
            "kind": "learned",
            "embedding": model.use_embedding,
            "embed_tokens": model.embed_tokens,
            "ngram_head": model.idf is not None,
            "training": trained,
            **curve_report(curve, axis),
            "apgr_bootstrap": noise,
        },
        "baselines": baselines(test_set.scores, test_set.costs, data.models, ref, axis),
    }
