"""The learned gate: P(answer is good | prompt, answer), trained on recorded (prompt, response, score).

Features: answer measurements (answer_features.py), the prompt's lexical features and, optionally,
its embedding. One logistic regression over all models' recorded answers (plus a one-hot of the
answering model when known). Saved as `.npz`; numpy only at run time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thrifty.routing.answer_features import ANSWER_NAMES, answer_features
from thrifty.routing.features import LEXICAL_NAMES, Featurizer
from thrifty.routing.gates import Answer, Verdict
from thrifty.routing.learned import RouterFileError

if TYPE_CHECKING:
    import numpy as np

    from thrifty.embed import Embedder

FORMAT = "thrifty-learned-gate/1"


@dataclass
class GateModel:
    weights: np.ndarray
    use_embedding: bool
    threshold: float = 0.5
    models: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, path: str | Path) -> Path:
        import numpy as np

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        names = {"answer": list(ANSWER_NAMES), "lexical": list(LEXICAL_NAMES)}
        with path.open("wb") as fh:
            np.savez_compressed(
                fh,
                format=np.array(FORMAT),
                weights=self.weights.astype(np.float32),
                use_embedding=np.array(self.use_embedding),
                threshold=np.array(self.threshold),
                models=np.array(self.models),
                meta=np.array(json.dumps({**self.meta, **names})),
            )
        return path

    @classmethod
    def load(cls, path: str | Path) -> GateModel:
        import numpy as np

        try:
            data = np.load(Path(path), allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise RouterFileError(f"cannot read gate file {path}: {exc}") from None
        if "format" not in data or str(data["format"]) != FORMAT:
            raise RouterFileError(f"{path} is not a {FORMAT} file")
        meta = json.loads(str(data["meta"]))
        if meta.get("answer") != list(ANSWER_NAMES) or meta.get("lexical") != list(LEXICAL_NAMES):
            raise RouterFileError(f"{path} was trained with other features; retrain it")
        return cls(
            weights=data["weights"],
            use_embedding=bool(data["use_embedding"]),
            threshold=float(data["threshold"]),
            models=[str(m) for m in data["models"]],
            meta=meta,
        )


class GateFeaturizer:
    """(prompts, answers, answering models[, prompt embeddings]) → (n, d) float32 with a bias column."""

    def __init__(self, models: Sequence[str]) -> None:
        self.models = list(models)
        self.prompt = Featurizer()

    def matrix(
        self,
        prompts: Sequence[str],
        answers: Sequence[str],
        answered_by: Sequence[str | None],
        embeddings: np.ndarray | None,
    ) -> np.ndarray:
        import numpy as np

        rows = np.asarray([answer_features(p, a) for p, a in zip(prompts, answers, strict=True)], np.float32)
        rows = rows.reshape(len(prompts), len(ANSWER_NAMES))
        onehot = np.zeros((len(prompts), len(self.models)), np.float32)
        for i, model in enumerate(answered_by):
            if model in self.models:
                onehot[i, self.models.index(model)] = 1.0
        parts = [rows, self.prompt.lexical_matrix(prompts), onehot]
        if embeddings is not None:
            parts.append(embeddings.astype(np.float32))
        parts.append(np.ones((len(prompts), 1), np.float32))
        return np.hstack(parts)


class LearnedGate:
    """QualityGate: passes when the predicted P(good) of the answer ≥ threshold."""

    name = "learned"

    def __init__(
        self,
        model: GateModel,
        threshold: float | None = None,
        embedder: Embedder | None = None,
        models: dict[str, str] | None = None,
    ):
        self.model = model
        self.threshold = model.threshold if threshold is None else threshold
        self.features = GateFeaturizer(model.models)
        self._embedder = embedder
        self.trained_name = {gateway: trained for trained, gateway in (models or {}).items()}
        """Gateway model (tier) → the model name the gate learned its answers under."""

    @classmethod
    def load(
        cls, path: str | Path, threshold: float | None = None, models: dict[str, str] | None = None
    ) -> LearnedGate:
        return cls(GateModel.load(path), threshold, models=models)

    def probability(self, prompt: str, answer: str, model: str | None = None) -> float:
        from thrifty.routing.logistic import predict

        embeddings = None
        if self.model.use_embedding:
            if self._embedder is None:
                from thrifty.embed import get_embedder

                self._embedder = get_embedder()
            embeddings = self._embedder.embed([prompt])
        x = self.features.matrix([prompt], [answer], [model], embeddings)
        return float(predict(x, self.model.weights.astype("float64"))[0])

    async def check(self, answer: Answer) -> Verdict:
        # embedding the prompt takes milliseconds of CPU: keep it off the event loop
        tier = str(answer.request.get("model"))
        model = self.trained_name.get(tier, tier)
        p = await asyncio.to_thread(self.probability, answer.prompt, answer.text, model)
        return Verdict(p >= self.threshold, p, f"P(good)={p:.3f} (threshold {self.threshold:.3f})")
