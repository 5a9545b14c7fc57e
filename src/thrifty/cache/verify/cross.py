"""The verifier's cross-encoder: all-MiniLM-L6-v2 reading both questions as one sequence.

A bi-encoder compares two vectors made apart; a cross-encoder attends from every word of one question
to every word of the other, so it sees which words line up and which do not.
The model is the bundled MiniLM fine-tuned on duplicate pairs with low-rank adapters (LoRA,
`cross_train.py`), so the file keeps only what training changed: per linear layer two thin factors
`A` (r × in) and `B` (out × r) with `W' = W + scale · B A`, plus the biases, layer norms, position and
token-type embeddings and a linear head on the mean-pooled states (~1.8 MB in float16). At load the
factors are merged into the bundled weights, the graph is written with `thrifty.embed.graph`,
quantised to int8 like the embedder, and kept in the cache directory under a hash of the adapter —
the first load in a fresh environment takes seconds, later ones load the file. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

PREFIX = "cross."  # names of the adapter's arrays inside a verifier file
LORA_A, LORA_B = ".lora_a", ".lora_b"
MAX_TOKENS = 96  # both questions together; QQP pairs average ~30 word pieces


def merge(base: Mapping[str, np.ndarray], adapter: Mapping[str, np.ndarray], scale: float) -> dict[str, Any]:
    """The bundled weights with the adapter applied: LoRA factors added, every other array replaced."""
    import numpy as np

    weights = {name: np.asarray(value, dtype=np.float32) for name, value in base.items()}
    for name, value in adapter.items():
        if name.endswith(LORA_B):
            continue
        if name.endswith(LORA_A):
            target = name[: -len(LORA_A)] + ".weight"
            factor_b = np.asarray(adapter[name[: -len(LORA_A)] + LORA_B], dtype=np.float32)
            weights[target] = weights[target] + scale * (factor_b @ np.asarray(value, dtype=np.float32))
        else:
            weights[name] = np.asarray(value, dtype=np.float32)
    return weights


def adapter_key(adapter: Mapping[str, np.ndarray], scale: float) -> str:
    """Changes with the adapter, the graph code and the onnx / onnxruntime versions."""
    import numpy as np
    import onnx
    import onnxruntime

    digest = hashlib.sha256(f"{scale}|{onnx.__version__}|{onnxruntime.__version__}|g1".encode())
    for name in sorted(adapter):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(adapter[name]).tobytes())
    return digest.hexdigest()[:16]


class CrossEncoder:
    """`logit(stored, query)`: the pair's duplicate logit, int8 ONNX on one thread. One pair per run:
    int8 dynamic quantisation scales activations per call, so in a batch a pair's logit would depend
    on its batch neighbours."""

    def __init__(
        self, adapter: Mapping[str, np.ndarray], scale: float, directory: Path | None = None
    ) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        from thrifty.embed.encoder import bundled_model_dir
        from thrifty.embed.graph import build_pair_scorer
        from thrifty.embed.onnx_minilm import cache_dir, cached_session

        model_dir = bundled_model_dir()
        path = (directory or cache_dir()) / f"cross-{adapter_key(adapter, scale)}.onnx"

        def graph() -> Any:
            return build_pair_scorer(merge(load_file(str(model_dir / "model.safetensors")), adapter, scale))

        self._session = cached_session(path, graph)
        self._tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tok.no_padding()
        self._tok.enable_truncation(max_length=MAX_TOKENS)
        self._lock = threading.Lock()

    def logit(self, stored: str, query: str) -> float:
        import numpy as np

        with self._lock:
            encoding = self._tok.encode(stored, query)
        ids = np.asarray([encoding.ids], dtype=np.int64)
        types = np.asarray([encoding.type_ids], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": types}
        (out,) = self._session.run(None, feed)
        return float(out[0])
