"""Sticky routing: rendezvous (highest-random-weight) hashing of a prefix key over deployments.

Every deployment gets a score from hash(key, deployment); the highest score wins, weighted so that
a deployment of weight 2 wins twice as many keys as one of weight 1. The same key always picks the
same deployment while the set is unchanged, and removing a deployment only moves the keys it held —
so a provider's prompt cache stays warm for every prefix.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Protocol, TypeVar


class Weighted(Protocol):
    @property
    def key(self) -> str: ...

    @property
    def weight(self) -> float: ...


def score(prefix_key: str, deployment_key: str, weight: float) -> float:
    """Weighted rendezvous score: -w / ln(u), u uniform in (0, 1) from the hash."""
    digest = hashlib.blake2b(f"{prefix_key}|{deployment_key}".encode(), digest_size=8).digest()
    u = (int.from_bytes(digest, "big") + 1) / (2**64 + 2)
    return -weight / math.log(u)


T = TypeVar("T", bound=Weighted)


def rendezvous_rank(prefix_key: str, items: Sequence[T]) -> list[T]:
    """Items ordered by descending rendezvous score for `prefix_key`."""
    return sorted(items, key=lambda d: -score(prefix_key, d.key, d.weight))
