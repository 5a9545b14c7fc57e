"""In-process nearest-neighbour search over cosine (unit vectors, inner product), one index per scope.

A scope (tenant + namespace + model + context fingerprint) usually holds few entries: it is searched
exactly with one numpy matrix product. A scope that grows past `ANN_THRESHOLD` entries moves to an HNSW
graph (faiss-cpu `IndexHNSWFlat`; benchmarks/cache_ann.py measures it against usearch, hnswlib and
exact numpy: faiss had the fastest queries, and unlike hnswlib it installs as a manylinux wheel).
"""

from __future__ import annotations

import threading
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
    """A faiss HNSW graph (inner product on unit vectors = cosine), keyed by row id."""

    def __init__(self, dim: int) -> None:
        import faiss

        graph = faiss.IndexHNSWFlat(dim, 16, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = 128
        graph.hnsw.efSearch = 64
        self.graph = graph  # keep a reference: the id map does not own it
        self.index = faiss.IndexIDMap(graph)

    def add(self, key: int, vector: np.ndarray) -> None:
        import numpy as np

        self.add_many(np.array([key], dtype=np.int64), vector.reshape(1, -1))

    def add_many(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        import numpy as np

        if len(keys):
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), keys.astype(np.int64))

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        import faiss
        import numpy as np

        # One query gains nothing from OpenMP threads, and their spin-waits cost milliseconds on a busy
        # machine (measured: 20 ms vs 3.6 ms per lookup at 20k entries). The setting is per thread.
        faiss.omp_set_num_threads(1)
        scores, keys = self.index.search(np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1), k)
        return [(int(key), float(score)) for key, score in zip(keys[0], scores[0], strict=True) if key >= 0]

    def __len__(self) -> int:
        return int(self.index.ntotal)


class VectorIndex:
    """Scope → its own index; exact below `ann_threshold` entries, HNSW above. The graph of a scope
    that crosses the threshold is built in a background thread; the scope is searched exactly until
    it is ready, so no request waits for a build."""

    def __init__(self, dim: int, ann_threshold: int = ANN_THRESHOLD) -> None:
        self.dim = dim
        self.ann_threshold = ann_threshold
        self.scopes: dict[str, _Search] = {}
        self.lock = threading.Lock()
        self.builds: dict[str, threading.Thread] = {}

    def add(self, scope: str, key: int, vector: np.ndarray) -> None:
        with self.lock:
            index = self.scopes.get(scope)
            if index is None:
                index = self.scopes[scope] = ExactScope(self.dim)
            index.add(key, vector)
            if (
                isinstance(index, ExactScope)
                and len(index) >= self.ann_threshold
                and scope not in self.builds
            ):
                build = threading.Thread(target=self._promote, args=(scope, len(index)), daemon=True)
                self.builds[scope] = build
                build.start()

    def _promote(self, scope: str, upto: int) -> None:
        with self.lock:
            exact = self.scopes.get(scope)
            if not isinstance(exact, ExactScope):  # the scope was dropped meanwhile
                self.builds.pop(scope, None)
                return
            keys, matrix = exact.keys[:upto].copy(), exact.matrix[:upto].copy()
        graph = HnswScope(self.dim)
        graph.add_many(keys, matrix)  # the slow part, outside the lock (faiss releases the GIL)
        with self.lock:
            exact = self.scopes.get(scope)
            self.builds.pop(scope, None)
            if not isinstance(exact, ExactScope):
                return
            graph.add_many(exact.keys[upto : exact.size], exact.matrix[upto : exact.size])
            self.scopes[scope] = graph

    def wait(self, timeout: float | None = None) -> None:
        """Wait for graph builds in progress (tests, benchmarks)."""
        for build in list(self.builds.values()):
            build.join(timeout)

    def search(self, scope: str, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        with self.lock:
            index = self.scopes.get(scope)
            if index is None or len(index) == 0:
                return []
            return index.search(vector, k)

    def __len__(self) -> int:
        return sum(len(i) for i in self.scopes.values())
