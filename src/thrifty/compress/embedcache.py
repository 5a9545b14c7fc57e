"""Unit embeddings with an LRU memo keyed by content, so a context seen again costs no model time."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from thrifty.embed import Embedder


class EmbeddingCache:
    """Embeds texts (cut to `max_chars`) in one batch per call; reuses vectors by content hash."""

    def __init__(
        self,
        embedder: Callable[[], Embedder] | Embedder | None = None,
        *,
        size: int = 50_000,
        max_chars: int = 400,
    ) -> None:
        self._source = embedder
        self._embedder: Any = None
        self.size = size
        self.max_chars = max_chars
        self._memo: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self.misses = 0
        self.hits = 0

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            source = self._source
            if source is None:
                from thrifty.embed import get_embedder

                source = get_embedder
            self._embedder = source() if callable(source) and not hasattr(source, "embed") else source
        return self._embedder

    def _key(self, text: str) -> bytes:
        return hashlib.blake2b(text[: self.max_chars].encode(), digest_size=16).digest()

    def vectors(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np

        keys = [self._key(t) for t in texts]
        missing = {k: t[: self.max_chars] for k, t in zip(keys, texts, strict=True) if k not in self._memo}
        self.hits += len(keys) - len(missing)
        if missing:
            self.misses += len(missing)
            fresh = self.embedder.embed(list(missing.values()))
            for key, row in zip(missing, fresh, strict=True):
                self._memo[key] = row
        out = np.stack([self._memo[k] for k in keys]) if keys else np.zeros((0, 0), dtype=np.float32)
        for key in keys:
            self._memo.move_to_end(key)
        while len(self._memo) > self.size:
            self._memo.popitem(last=False)
        return out
