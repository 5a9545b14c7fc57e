"""An ensemble of verifier pipelines: the mean probability of N models trained on the same pairs with
different seeds (`thrifty cache train --members N`).

Single pipelines that differ only in their seeds disagree most where it matters, among the pairs
ranked highest: averaging them ranks the top more reliably (docs/cache-verifier.md has the dev
figures). The members share everything that does not depend on a seed — the IDF table, the word
vectors, the whitening, the hard checks — so a candidate's features are extracted once and only the
learned stages run per member. The ensemble has one operating point (threshold, text-only threshold,
vetoes), calibrated like a single model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thrifty.cache.verify import checks
from thrifty.cache.verify.features import extract
from thrifty.cache.verify.model import Calibrated, VerifierModel, prescreen, read_npz, write_npz
from thrifty.cache.verify.outoffold import OutOfFold

if TYPE_CHECKING:
    import numpy as np

FORMAT = "thrifty-verifier-ensemble/1"


@dataclass
class EnsembleModel(Calibrated):
    members: tuple[VerifierModel, ...]
    threshold: float | None = None
    text_threshold: float | None = None
    vetoes: tuple[str, ...] = tuple(checks.CHECKS)
    meta: dict[str, Any] = field(default_factory=dict)
    oof: OutOfFold | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        import numpy as np

        first = self.members[0]
        for other in self.members[1:]:
            if not np.array_equal(other.idf, first.idf) or other.min_cosine != first.min_cosine:
                raise ValueError("ensemble members must share their IDF table and cosine floor")
            other.words = first.words  # one memory map of the word vectors

    @property
    def min_cosine(self) -> float:
        return self.members[0].min_cosine

    @property
    def has_head(self) -> bool:
        return all(m.has_head for m in self.members)

    def score(
        self,
        query: str,
        candidate: str,
        cosine: float,
        query_vector: np.ndarray | None = None,
        candidate_vector: np.ndarray | None = None,
    ) -> float:
        decided = prescreen(query, candidate, cosine, self.min_cosine, self.vetoes)
        if isinstance(decided, float):
            return decided
        first = self.members[0]
        feats = extract(*decided, cosine, first.idf, first.words)
        return sum(m.learned(feats, query_vector, candidate_vector) for m in self.members) / len(self.members)

    # -- persistence -----------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        headers, arrays = [], {}
        for i, member in enumerate(self.members):
            header, stored = member.stored()
            headers.append(header)
            arrays.update({f"m{i}.{name}": a for name, a in stored.items()})
        if self.oof is not None:
            arrays.update(self.oof.arrays())
        ensemble = {
            "format": FORMAT,
            "members": headers,
            "threshold": self.threshold,
            "text_threshold": self.text_threshold,
            "vetoes": list(self.vetoes),
            "meta": self.meta,
        }
        write_npz(path, ensemble, arrays)

    @classmethod
    def from_stored(
        cls, header: dict[str, Any], arrays: dict[str, np.ndarray], source: str | Path
    ) -> EnsembleModel:
        members = []
        for i, member in enumerate(header["members"]):
            prefix = f"m{i}."
            own = {name[len(prefix) :]: a for name, a in arrays.items() if name.startswith(prefix)}
            members.append(VerifierModel.from_stored(member, own, source=f"{source} member {i}"))
        return cls(
            tuple(members),
            threshold=header["threshold"],
            text_threshold=header.get("text_threshold"),
            vetoes=tuple(header["vetoes"]),
            meta=header["meta"],
            oof=OutOfFold.from_arrays({name: a for name, a in arrays.items() if name.startswith("oof_")}),
        )


def read_model(path: str | Path) -> VerifierModel | EnsembleModel:
    """A verifier file of either kind: one pipeline or an ensemble of them."""
    header, arrays = read_npz(path)
    if header.get("format") == FORMAT:
        return EnsembleModel.from_stored(header, arrays, path)
    return VerifierModel.from_stored(header, arrays, source=path)
