"""Labelled question pairs (`{"a", "b", "duplicate"}` JSON lines) and their deterministic splits.

A pair's split comes from a hash of its two texts, so every run, machine and file order agrees:
60 % train, 20 % dev (calibration), 20 % test (reporting). `sample` takes a deterministic,
uniform subset of a split (ordered by a second hash), for runs that cannot embed everything.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

SPLITS = ("train", "dev", "test")
_BOUNDS = {"train": (0, 60), "dev": (60, 80), "test": (80, 100)}


@dataclass(frozen=True, slots=True)
class Pair:
    a: str
    b: str
    duplicate: bool

    def digest(self, salt: str = "") -> int:
        raw = f"{salt}\x1f{self.a}\x1f{self.b}".encode()
        return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big")

    @property
    def split(self) -> str:
        bucket = self.digest() % 100
        for name, (lo, hi) in _BOUNDS.items():
            if lo <= bucket < hi:
                return name
        raise AssertionError(bucket)  # pragma: no cover - buckets cover 0..99


class PairsFormatError(ValueError):
    """A pairs file line that is not `{"a": str, "b": str, "duplicate": bool}`."""


def read_pairs(path: str | Path) -> list[Pair]:
    import orjson

    pairs: list[Pair] = []
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
                a, b, dup = row["a"], row["b"], row["duplicate"]
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                raise PairsFormatError(f"{path}:{number}: expected {{a, b, duplicate}}: {exc}") from exc
            if not isinstance(a, str) or not isinstance(b, str) or not isinstance(dup, bool):
                raise PairsFormatError(f"{path}:{number}: a and b must be strings, duplicate a boolean")
            pairs.append(Pair(a, b, dup))
    return pairs


def select(pairs: Iterable[Pair], split: str) -> list[Pair]:
    """The pairs of one split; `all` keeps every pair."""
    if split == "all":
        return list(pairs)
    if split not in _BOUNDS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)} or all")
    return [p for p in pairs if p.split == split]


def sample(pairs: Sequence[Pair], limit: int | None) -> list[Pair]:
    """A deterministic uniform subset of at most `limit` pairs (all of them when limit is None)."""
    if limit is None or limit >= len(pairs):
        return list(pairs)
    return sorted(pairs, key=lambda p: p.digest("sample"))[:limit]
