"""The lookup simulation of `thrifty cache eval`: store one side of the pairs, look the other up as
the gateway would (`Serving`), and count hits, correct hits and the wall time of each lookup."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thrifty.cache.verify.model import VerifierModel
    from thrifty.cache.verify.pairs import Pair
    from thrifty.embed.diskcache import EmbeddingCache


@dataclass(frozen=True)
class LookupStats:
    queries: int
    answerable: int  # queries whose labelled duplicate is in the index
    hits: int
    correct: int
    unlabelled: int  # hits on a stored question never paired with the query in the file

    def as_dict(self) -> dict[str, Any]:
        labelled = self.hits - self.unlabelled
        return {
            **asdict(self),
            "hit_rate": self.hits / self.queries if self.queries else 0.0,
            "precision": self.correct / self.hits if self.hits else None,
            "precision_labelled": self.correct / labelled if labelled else None,
            "recall": self.correct / self.answerable if self.answerable else 0.0,
        }


def _percentile(values: Sequence[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values), q)) if values else 0.0


@dataclass(frozen=True)
class Serving:
    """How the gateway looks up (`CacheConfig`'s defaults): the verifier picks among the `top_k`
    nearest stored questions at or above `min_cosine`, with at most `cross_checks` cross-encoder runs."""

    top_k: int
    min_cosine: float
    cross_checks: int

    @classmethod
    def defaults(cls) -> Serving:
        from thrifty.config import CacheConfig  # (thrifty.config defines the base the section needs)

        config = CacheConfig()
        return cls(config.top_k, config.min_cosine, config.cross_checks)

    def but(self, top_k: int | None = None, cross_checks: int | None = None) -> Serving:
        """These settings with the given ones replaced (None keeps the current value)."""
        return replace(
            self,
            top_k=self.top_k if top_k is None else top_k,
            cross_checks=self.cross_checks if cross_checks is None else cross_checks,
        )

    def choose(
        self,
        model: VerifierModel,
        query: str,
        vector: Any,
        found: Sequence[tuple[int, float]],
        stored: Sequence[str],
        stored_rows: Any,
    ) -> int | None:
        """The stored question (its key) the verifier serves for `query`, as `SemanticCache.lookup`."""
        from thrifty.cache.semantic import Candidate

        found = [(key, cosine) for key, cosine in found if cosine >= self.min_cosine]
        candidates = [Candidate(stored[key], cosine, stored_rows[key]) for key, cosine in found]
        chosen = model.select(query, vector, candidates, self.cross_checks)
        return None if chosen is None else found[chosen[0]][0]


def _outcome(
    stored: str, query: str, duplicate_of: set[tuple[str, str]], labelled: set[tuple[str, str]]
) -> tuple[int, int, int]:
    """(a hit, a correct one, an unlabelled one) for serving `stored`'s answer to `query`."""
    return 1, int((stored, query) in duplicate_of), int((stored, query) not in labelled)


def _add(totals: list[int], outcome: tuple[int, int, int]) -> list[int]:
    return [total + part for total, part in zip(totals, outcome, strict=True)]


def lookup(
    model: VerifierModel,
    pairs: Sequence[Pair],
    all_pairs: Sequence[Pair],
    cache: EmbeddingCache,
    cosine_threshold: float,
    latency_queries: int,
    serving: Serving,
) -> dict[str, Any]:
    """Index the `a` questions, look each `b` up as the gateway would; cosine-only (nearest
    neighbour at its threshold) beside it."""
    import numpy as np

    from thrifty.cache.index import VectorIndex

    stored = list(dict.fromkeys(p.a for p in pairs))
    queries = list(dict.fromkeys(p.b for p in pairs))
    duplicate_of = {(p.a, p.b) for p in all_pairs if p.duplicate}
    labelled = {(p.a, p.b) for p in all_pairs}
    stored_set = set(stored)
    answerable_set = {p.b for p in all_pairs if p.duplicate and p.a in stored_set}
    cache.fill(stored + queries, progress=True)
    index = VectorIndex(cache.embedder.dim)
    stored_rows = np.asarray(cache.matrix(stored), dtype=np.float32)
    for key, vector in enumerate(stored_rows):
        index.add("eval", key, vector)
    index.wait()  # search the index the gateway would have (HNSW above its threshold), every run alike
    verified = [0, 0, 0]  # hits, correct, unlabelled
    baseline = [0, 0, 0]
    for query, vector in zip(queries, cache.matrix(queries), strict=True):
        found = index.search("eval", np.asarray(vector, dtype=np.float32), serving.top_k)
        if not found:
            continue
        if found[0][1] >= cosine_threshold:
            baseline = _add(baseline, _outcome(stored[found[0][0]], query, duplicate_of, labelled))
        chosen = serving.choose(model, query, vector, found, stored, stored_rows)
        if chosen is not None:
            verified = _add(verified, _outcome(stored[chosen], query, duplicate_of, labelled))
    answerable = sum(q in answerable_set for q in queries)
    return {
        "index_entries": len(stored),
        "top_k": serving.top_k,
        "cross_checks": serving.cross_checks,
        "verifier": LookupStats(len(queries), answerable, *verified).as_dict(),
        "cosine": LookupStats(len(queries), answerable, *baseline).as_dict(),
        "latency_ms": _latency(
            model, index, stored_rows, stored, sample_queries(queries, latency_queries), cache, serving
        ),
    }


def sample_queries(queries: Sequence[str], n: int) -> list[str]:
    return [q for i, q in enumerate(queries) if i < n]


def _latency(
    model: VerifierModel,
    index: Any,
    stored_rows: Any,
    stored: Sequence[str],
    queries: Sequence[str],
    cache: EmbeddingCache,
    serving: Serving,
) -> dict[str, float]:
    """Per-lookup wall time with a live embedding (not the disk cache): embed, search, verify."""
    import numpy as np

    embedder = cache.embedder
    parts: dict[str, list[float]] = {"embed": [], "search": [], "verify": [], "total": []}
    for query in queries:
        t0 = time.perf_counter()
        vector = np.asarray(embedder.embed_one(query), dtype=np.float32)
        t1 = time.perf_counter()
        found = index.search("eval", vector, serving.top_k)
        t2 = time.perf_counter()
        serving.choose(model, query, vector, found, stored, stored_rows)
        t3 = time.perf_counter()
        for name, value in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t3 - t0), strict=True):
            parts[name].append(value * 1000)
    out: dict[str, float] = {"queries": float(len(queries))}
    for name, values in parts.items():
        out[f"{name}_p50"] = _percentile(values, 50)
        out[f"{name}_p99"] = _percentile(values, 99)
    return out
