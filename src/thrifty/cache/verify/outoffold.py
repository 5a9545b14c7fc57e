"""Out-of-fold dev scores kept in a cross-fitted model file.

A model made by `thrifty cache train --cross-fit K` learned from the dev pairs, so its own scores of
those pairs are in-sample: a threshold chosen on them would promise a precision the model does not
keep on new questions. The file therefore keeps, per dev pair (by a hash of its texts), the score
the fold model that never saw the pair gave it; `thrifty cache calibrate` re-targets such a model
(another precision, other vetoes) with those scores instead of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from thrifty.cache.verify.pairs import Pair

SALT = "oof"  # pair digests here are salted apart from the split and fold hashes


@dataclass(frozen=True)
class OutOfFold:
    digests: np.ndarray  # (n,) uint64 pair digests
    raw: np.ndarray  # (n,) scores with vectors, no vetoes (float64: thresholds are scores)
    text: np.ndarray | None  # (n,) text-only scores, when the model has a head

    @classmethod
    def of(cls, pairs: Sequence[Pair], raw: Sequence[float], text: Sequence[float] | None) -> OutOfFold:
        import numpy as np

        digests = np.array([p.digest(SALT) for p in pairs], dtype=np.uint64)
        return cls(
            digests,
            np.asarray(raw, dtype=np.float64),
            None if text is None else np.asarray(text, dtype=np.float64),
        )

    def override(
        self, pairs: Sequence[Pair], raw: Sequence[float], text: Sequence[float] | None
    ) -> tuple[list[float], list[float] | None, int]:
        """`raw` / `text` (the model's own scores of `pairs`) with every pair this store knows
        replaced by its out-of-fold score; and how many were replaced."""
        index = {int(d): i for i, d in enumerate(self.digests)}
        raw_out, text_out = list(raw), None if text is None else list(text)
        replaced = 0
        for position, pair in enumerate(pairs):
            i = index.get(pair.digest(SALT))
            if i is None:
                continue
            replaced += 1
            raw_out[position] = float(self.raw[i])
            if text_out is not None and self.text is not None:
                text_out[position] = float(self.text[i])
        return raw_out, text_out, replaced

    def known(self, pairs: Sequence[Pair]) -> int:
        """How many of `pairs` the model learned from (it holds their out-of-fold scores)."""
        digests = set(self.digests.tolist())
        return sum(p.digest(SALT) in digests for p in pairs)

    def arrays(self) -> dict[str, np.ndarray]:
        stored = {"oof_digests": self.digests, "oof_raw": self.raw}
        return stored if self.text is None else {**stored, "oof_text": self.text}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> OutOfFold | None:
        if "oof_digests" not in arrays:
            return None
        return cls(arrays["oof_digests"], arrays["oof_raw"], arrays.get("oof_text"))
