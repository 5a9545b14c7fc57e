"""In-process nearest-neighbour search over cosine (unit vectors, inner product), one index per scope.

A scope (tenant + namespace + model + context fingerprint) usually holds few entries: it is searched
exactly with one numpy matrix product. A scope that grows past `ANN_THRESHOLD` entries moves to an HNSW
graph (faiss-cpu `IndexHNSWFlat`; benchmarks/cache_ann.py measures it against usearch, hnswlib and
exact numpy: faiss had the fastest queries, and unlike hnswlib it installs as a manylinux wheel).

Entries leave the index when the store evicts or expires them. An exact scope drops a row at once; an
HNSW graph cannot delete, so it marks the key dead, skips it in results, and is rebuilt in the
background (as a graph, or as an exact scope if few entries are left) once dead keys reach a quarter
of it. So the index holds what the store holds, and memory stays bounded by the store's size bound.
"""

from __future__ import annotations

import threading
from functools import partial
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

ANN_THRESHOLD = 4096
DEAD_SHARE = 0.25
"""An HNSW scope is rebuilt once this share of its keys is dead (evicted or expired)."""


class _Search(Protocol):
    def add(self, key: int, vector: np.ndarray) -> None: ...

    def add_many(self, keys: np.ndarray, vectors: np.ndarray) -> None: ...

    def remove(self, key: int) -> bool: ...

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]: ...

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """Live keys and their vectors."""
        ...

    def __len__(self) -> int: ...


class ExactScope:
    """Vectors in a growing matrix; search is one matrix-vector product."""

    def __init__(self, dim: int) -> None:
        import numpy as np

        self.matrix = np.zeros((1, dim), dtype=np.float32)
        self.keys = np.zeros(1, dtype=np.int64)
        self.size = 0
        self.where: dict[int, int] = {}

    def add(self, key: int, vector: np.ndarray) -> None:
        import numpy as np

        if key in self.where:
            self.matrix[self.where[key]] = vector
            return
        if self.size == len(self.keys):
            self.matrix = np.concatenate([self.matrix, np.zeros_like(self.matrix)])
            self.keys = np.concatenate([self.keys, np.zeros_like(self.keys)])
        self.matrix[self.size] = vector
        self.keys[self.size] = key
        self.where[key] = self.size
        self.size += 1

    def add_many(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        for key, vector in zip(keys, vectors, strict=True):
            self.add(int(key), vector)

    def remove(self, key: int) -> bool:
        """Drop `key`, moving the last row into its place."""
        row = self.where.pop(key, None)
        if row is None:
            return False
        last = self.size - 1
        if row != last:
            self.matrix[row] = self.matrix[last]
            self.keys[row] = self.keys[last]
            self.where[int(self.keys[row])] = row
        self.size = last
        return True

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        import numpy as np

        scores = self.matrix[: self.size] @ vector
        if self.size > k:
            top = np.argpartition(-scores, k)[:k]
            top = top[np.argsort(-scores[top])]
        else:
            top = np.argsort(-scores)
        return [(int(self.keys[i]), float(scores[i])) for i in top]

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        return self.keys[: self.size].copy(), self.matrix[: self.size].copy()

    def __len__(self) -> int:
        return self.size


class HnswScope:
    """A faiss HNSW graph (inner product on unit vectors = cosine), keyed by row id. Removed keys are
    marked dead and skipped; the owner rebuilds the graph when too many are dead. While it is rebuilt
    the graph is frozen (`freeze`): new keys go to a small exact overlay searched beside it, so the
    rebuild can copy the graph's vectors without holding the owner's lock."""

    def __init__(self, dim: int) -> None:
        import faiss

        graph = faiss.IndexHNSWFlat(dim, 16, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = 128
        graph.hnsw.efSearch = 64
        self.dim = dim
        self.graph = graph  # keep a reference: the id map does not own it
        self.index = faiss.IndexIDMap(graph)
        self.live: set[int] = set()
        self.dead: set[int] = set()
        self.overlay: ExactScope | None = None  # set while frozen

    def add(self, key: int, vector: np.ndarray) -> None:
        import numpy as np

        self.add_many(np.array([key], dtype=np.int64), vector.reshape(1, -1))

    def add_many(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        import numpy as np

        fresh = np.array([int(k) not in self.live for k in keys], dtype=bool)
        keys, vectors = keys[fresh], vectors[fresh]
        if not len(keys):
            return
        if self.overlay is not None:
            self.overlay.add_many(keys, vectors)
        else:
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), keys.astype(np.int64))
        self.live.update(int(k) for k in keys)
        self.dead.difference_update(int(k) for k in keys)

    def remove(self, key: int) -> bool:
        if key not in self.live:
            return False
        self.live.remove(key)
        if self.overlay is None or not self.overlay.remove(key):
            self.dead.add(key)
        return True

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        import faiss
        import numpy as np

        # One query gains nothing from OpenMP threads, and their spin-waits cost milliseconds on a busy
        # machine (measured: 20 ms vs 3.6 ms per lookup at 20k entries). The setting is per thread.
        faiss.omp_set_num_threads(1)
        wanted = k + min(len(self.dead), 4 * k + 16)  # room for dead keys among the nearest
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
        scores, keys = self.index.search(query, wanted)
        found = [
            (int(key), float(score))
            for key, score in zip(keys[0], scores[0], strict=True)
            if key >= 0 and int(key) not in self.dead
        ]
        if self.overlay is not None and len(self.overlay):
            found = sorted([*found, *self.overlay.search(vector, k)], key=lambda f: -f[1])
        return found[:k]

    def freeze(self) -> set[int]:
        """Stop writing to the graph (new keys go to the overlay) and return the live keys: the graph's
        storage stays as it is, so `snapshot` may read it without the owner's lock."""
        if self.overlay is None:
            self.overlay = ExactScope(self.dim)
        return set(self.live)

    def snapshot(self, live: set[int]) -> tuple[np.ndarray, np.ndarray]:
        """The graph's keys among `live`, with their vectors (not the overlay's)."""
        import faiss
        import numpy as np

        keys = faiss.vector_to_array(self.index.id_map).astype(np.int64)
        vectors = self.graph.reconstruct_n(0, len(keys))
        keep = np.isin(keys, np.fromiter(live, dtype=np.int64, count=len(live)))
        return keys[keep], vectors[keep]

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        import numpy as np

        keys, vectors = self.snapshot(self.live)
        if self.overlay is None or not len(self.overlay):
            return keys, vectors
        extra_keys, extra_vectors = self.overlay.items()
        return np.concatenate([keys, extra_keys]), np.vstack([vectors, extra_vectors])

    def needs_rebuild(self) -> bool:
        return len(self.dead) >= max(1, DEAD_SHARE * (len(self.live) + len(self.dead)))

    def __len__(self) -> int:
        return len(self.live)


class VectorIndex:
    """Scope → its own index; exact below `ann_threshold` entries, HNSW above. A scope that crosses
    the threshold, or an HNSW scope with too many dead keys, is rebuilt in a background thread; it is
    searched as it is until the new one is ready, so no request waits for a build. Changes made during
    a build are journaled and replayed onto the new index."""

    def __init__(self, dim: int, ann_threshold: int = ANN_THRESHOLD) -> None:
        self.dim = dim
        self.ann_threshold = ann_threshold
        self.scopes: dict[str, _Search] = {}
        self.lock = threading.Lock()
        self.builds: dict[str, threading.Thread] = {}
        self.journals: dict[str, list[tuple[int, np.ndarray | None]]] = {}

    def add(self, scope: str, key: int, vector: np.ndarray) -> None:
        with self.lock:
            index = self.scopes.get(scope)
            if index is None:
                index = self.scopes[scope] = ExactScope(self.dim)
            index.add(key, vector)
            if scope in self.journals:
                self.journals[scope].append((key, vector))
            if isinstance(index, ExactScope) and len(index) >= self.ann_threshold:
                self._rebuild_later(scope)

    def remove(self, scope: str, key: int) -> None:
        """Forget `key` (evicted or expired in the store); unknown keys are ignored."""
        with self.lock:
            index = self.scopes.get(scope)
            if index is None or not index.remove(key):
                return
            if scope in self.journals:
                self.journals[scope].append((key, None))
            elif len(index) == 0:
                del self.scopes[scope]  # many scopes are short-lived conversations: free them
            elif isinstance(index, HnswScope) and index.needs_rebuild():
                self._rebuild_later(scope)

    def _rebuild_later(self, scope: str) -> None:
        """Start a background rebuild of `scope` (the caller holds the lock)."""
        if scope in self.builds:
            return
        self.journals[scope] = []
        build = threading.Thread(target=self._rebuild, args=(scope,), daemon=True)
        self.builds[scope] = build
        build.start()

    def _rebuild(self, scope: str) -> None:
        with self.lock:
            old = self.scopes[scope]
            self.journals[scope] = []
            # a graph takes tens of ms to copy at 100k entries: frozen here, copied outside the lock;
            # an exact scope is small (below the ANN threshold): copied at once
            if isinstance(old, HnswScope):
                copy = partial(old.snapshot, old.freeze())
            else:
                copy = partial(lambda items: items, old.items())
        keys, vectors = copy()
        fresh: _Search = HnswScope(self.dim) if len(keys) >= self.ann_threshold // 2 else ExactScope(self.dim)
        fresh.add_many(keys, vectors)  # the slow part, outside the lock (faiss releases the GIL)
        with self.lock:
            for key, vector in self.journals.pop(scope):
                if vector is None:
                    fresh.remove(key)
                else:
                    fresh.add(key, vector)
            self.builds.pop(scope, None)
            if not len(fresh):
                del self.scopes[scope]
                return
            self.scopes[scope] = fresh
            if isinstance(fresh, HnswScope) and fresh.needs_rebuild():  # removals made during the build
                self._rebuild_later(scope)

    def wait(self, timeout: float | None = None) -> None:
        """Wait for builds in progress, and the builds they start (tests, benchmarks)."""
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while self.builds:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            for build in list(self.builds.values()):
                build.join(left)

    def search(self, scope: str, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        with self.lock:
            index = self.scopes.get(scope)
            if index is None or len(index) == 0:
                return []
            return index.search(vector, k)

    def __len__(self) -> int:
        return sum(len(i) for i in self.scopes.values())
