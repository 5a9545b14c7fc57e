"""Semantic lookup: embed the last user turn, search its scope, serve only what the verifier accepts.

The scope (keys.semantic_scope) is an exact hash of the tenant, namespace, model and the whole context
but the last user turn's text, so only requests asked in the same context are ever compared.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from thrifty.cache.entry import Entry

if TYPE_CHECKING:
    import numpy as np

    from thrifty.cache.backends import SemanticStore
    from thrifty.embed import Embedder

log = logging.getLogger("thrifty.cache")


class Verifier(Protocol):
    def accept(
        self,
        query: str,
        candidate: str,
        cosine: float,
        query_vector: np.ndarray | None = None,
        candidate_vector: np.ndarray | None = None,
    ) -> tuple[bool, float]:
        """Whether `candidate` (a stored question) asks the same as `query`, with a score; the two
        embeddings, when given, let a verifier with an embedding head use them."""
        ...


class CosineVerifier:
    """Accepts a match on cosine alone: the fallback when no trained verifier is available."""

    def __init__(self, threshold: float = 0.95) -> None:
        self.threshold = threshold

    def accept(
        self,
        query: str,
        candidate: str,
        cosine: float,
        query_vector: np.ndarray | None = None,
        candidate_vector: np.ndarray | None = None,
    ) -> tuple[bool, float]:
        return cosine >= self.threshold, cosine


def load_default_verifier(path: str | None) -> Verifier:
    """The trained verifier (`thrifty.cache.verify`) when installed, else a strict cosine threshold."""
    spec = importlib.util.find_spec("thrifty.cache.verify")
    if spec is not None and spec.origin not in (None, "namespace"):  # the package, not a bare folder
        from thrifty.cache.verify import load_verifier

        if path is not None:
            return load_verifier(path)  # a configured model must load
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
        self, store: SemanticStore, embedder: Embedder, verifier: Verifier, *, top_k: int, min_cosine: float
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.verifier = verifier
        self.top_k = top_k
        self.min_cosine = min_cosine

    def embed(self, text: str) -> np.ndarray:
        return self.embedder.embed_one(text)

    async def lookup(
        self, scope: str, query: str, vector: np.ndarray, max_age: float | None = None
    ) -> SemanticHit | None:
        """The nearest stored request of `scope` the verifier accepts (best cosine first)."""
        for neighbour in await self.store.search(scope, vector, self.top_k, self.min_cosine):
            entry = neighbour.entry
            if entry.query is None or (max_age is not None and entry.age() > max_age):
                continue
            # in a worker thread: a verifier with a cross-encoder stage runs a transformer (milliseconds)
            accepted, score = await asyncio.to_thread(
                self.verifier.accept, query, entry.query, neighbour.cosine, vector, neighbour.vector
            )
            if accepted:
                await self.store.touch(neighbour)
                return SemanticHit(entry, neighbour.cosine, score)
        return None

    async def store_answer(
        self, scope: str, query: str, vector: np.ndarray, entry: Entry, ttl_s: float
    ) -> None:
        entry.query = query
        await self.store.add(scope, vector, entry, ttl_s)

    async def close(self) -> None:
        await self.store.close()
