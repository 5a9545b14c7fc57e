"""Semantic lookup: embed the last user turn, search its scope, serve only what the verifier accepts.

The scope (keys.semantic_scope) is an exact hash of the tenant, namespace, model and the whole context
but the last user turn's text, so only requests asked in the same context are ever compared.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from thrifty.cache.entry import Entry
from thrifty.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from thrifty.cache.backends import SemanticStore
    from thrifty.embed import Embedder

log = logging.getLogger("thrifty.cache")


@dataclass(frozen=True, slots=True)
class Candidate:
    """A stored question shown to the verifier: its text, cosine to the query, and embedding."""

    text: str
    cosine: float
    vector: np.ndarray | None = None


class Verifier(Protocol):
    def select(
        self,
        query: str,
        query_vector: np.ndarray | None,
        candidates: Sequence[Candidate],
        cross_budget: int = 1,
    ) -> tuple[int, float] | None:
        """The candidate that asks the same as `query` (its index and score), or None.
        `cross_budget` bounds how many candidates may go through an expensive stage."""
        ...


class CosineVerifier:
    """Accepts a match on cosine alone: the fallback when no trained verifier is available."""

    def __init__(self, threshold: float = 0.95) -> None:
        self.threshold = threshold

    def select(
        self,
        query: str,
        query_vector: np.ndarray | None,
        candidates: Sequence[Candidate],
        cross_budget: int = 1,
    ) -> tuple[int, float] | None:
        best = max(range(len(candidates)), key=lambda i: candidates[i].cosine, default=None)
        if best is None or candidates[best].cosine < self.threshold:
            return None
        return best, candidates[best].cosine


def load_default_verifier(path: str | None) -> Verifier:
    """The trained verifier (`thrifty.cache.verify`) when installed, else a strict cosine threshold."""
    spec = importlib.util.find_spec("thrifty.cache.verify")
    if spec is not None and spec.origin not in (None, "namespace"):  # the package, not a bare folder
        from thrifty.cache.verify import load_verifier

        if path is not None:  # a configured model must load
            try:
                return load_verifier(path)
            except (OSError, ValueError) as exc:
                raise ConfigError([("cache.verifier", str(exc))]) from None
        try:
            return load_verifier(None)
        except (OSError, ValueError) as exc:
            log.warning("bundled cache verifier unavailable (%s); using cosine >= 0.95", exc)
    return CosineVerifier()


@dataclass(slots=True)
class SemanticHit:
    entry: Entry
    cosine: float
    score: float


class SemanticCache:
    def __init__(
        self,
        store: SemanticStore,
        embedder: Embedder,
        verifier: Verifier,
        *,
        top_k: int,
        min_cosine: float,
        cross_checks: int = 1,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.verifier = verifier
        self.top_k = top_k
        self.min_cosine = min_cosine
        self.cross_checks = cross_checks

    def embed(self, text: str) -> np.ndarray:
        return self.embedder.embed_one(text)

    async def lookup(
        self, scope: str, query: str, vector: np.ndarray, max_age: float | None = None
    ) -> SemanticHit | None:
        """The stored request of `scope` the verifier picks among the nearest `top_k`, if any."""
        neighbours = [
            n
            for n in await self.store.search(scope, vector, self.top_k, self.min_cosine)
            if n.entry.query is not None and (max_age is None or n.entry.age() <= max_age)
        ]
        if not neighbours:
            return None
        candidates = [Candidate(n.entry.query or "", n.cosine, n.vector) for n in neighbours]
        # in a worker thread: a verifier with a cross-encoder stage runs a transformer (milliseconds)
        chosen = await asyncio.to_thread(self.verifier.select, query, vector, candidates, self.cross_checks)
        if chosen is None:
            return None
        neighbour = neighbours[chosen[0]]
        await self.store.touch(neighbour)
        return SemanticHit(neighbour.entry, neighbour.cosine, chosen[1])

    async def store_answer(
        self, scope: str, query: str, vector: np.ndarray, entry: Entry, ttl_s: float
    ) -> None:
        entry.query = query
        await self.store.add(scope, vector, entry, ttl_s)

    async def close(self) -> None:
        await self.store.close()
