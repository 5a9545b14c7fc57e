"""In-process nearest-neighbour search over cosine (unit vectors, inner product), one index per scope.

A scope (tenant + namespace + model + context fingerprint) usually holds few entries: it is searched
exactly with one numpy matrix product. A scope that grows past `ANN_THRESHOLD` entries moves to an HNSW
graph (usearch; see benchmarks/cache_ann.py for the measurement against hnswlib, faiss and numpy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

ANN_THRESHOLD = 4096


class _Search(Protocol):
    def add(self, key: int, vector: np.ndarray) -> None: ...

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]: ...

    def __len__(self) -> int: ...


class ExactScope:
    """Vectors in a growing matrix; search is one matrix-vector product."""

    def __init__(self, dim: int) -> None:
        import numpy as np

        self.matrix = np.zeros((16, dim), dtype=np.float32)
        self.keys = np.zeros(16, dtype=np.int64)
        self.size = 0

    def add(self, key: int, vector: np.ndarray) -> None:
        import numpy as np

        if self.size == len(self.keys):
            self.matrix = np.concatenate([self.matrix, np.zeros_like(self.matrix)])
            self.keys = np.concatenate([self.keys, np.zeros_like(self.keys)])
        self.matrix[self.size] = vector
        self.keys[self.size] = key
        self.size += 1

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        import numpy as np

        scores = self.matrix[: self.size] @ vector
        if self.size > k:
            top = np.argpartition(-scores, k)[:k]
            top = top[np.argsort(-scores[top])]
        else:
            top = np.argsort(-scores)
        return [(int(self.keys[i]), float(scores[i])) for i in top]

    def __len__(self) -> int:
        return self.size


class HnswScope:
    """A usearch HNSW graph (inner product on unit vectors = cosine)."""

    def __init__(self, dim: int) -> None:
        from usearch.index import Index

        self.index = Index(ndim=dim, metric="ip", dtype="f32", connectivity=16, expansion_add=128,
                           expansion_search=64)  # fmt: skip

    def add(self, key: int, vector: np.ndarray) -> None:
        self.index.add(key, vector, threads=1)

    def add_many(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        self.index.add(keys, vectors, threads=1)

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        found = self.index.search(vector, k, threads=1)
        return [(int(key), 1.0 - float(dist)) for key, dist in zip(found.keys, found.distances, strict=True)]

    def __len__(self) -> int:
        return len(self.index)


class VectorIndex:
    """Scope → its own index; exact below `ann_threshold` entries, HNSW above."""

    def __init__(self, dim: int, ann_threshold: int = ANN_THRESHOLD) -> None:
        self.dim = dim
        self.ann_threshold = ann_threshold
        self.scopes: dict[str, _Search] = {}

    def add(self, scope: str, key: int, vector: np.ndarray) -> None:
        index = self.scopes.get(scope)
        if index is None:
            index = self.scopes[scope] = ExactScope(self.dim)
        if isinstance(index, ExactScope) and len(index) >= self.ann_threshold:
            index = self.scopes[scope] = self._promote(index)
        index.add(key, vector)

    def _promote(self, exact: ExactScope) -> HnswScope:
        graph = HnswScope(self.dim)
        graph.add_many(exact.keys[: exact.size], exact.matrix[: exact.size])
        return graph

    def search(self, scope: str, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        index = self.scopes.get(scope)
        if index is None or len(index) == 0:
            return []
        return index.search(vector, k)

    def __len__(self) -> int:
        return sum(len(i) for i in self.scopes.values())
