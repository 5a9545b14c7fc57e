"""A BERT encoder (all-MiniLM-L6-v2) in numpy: tokenise, 6 transformer layers, mean pooling."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from thrifty.embed.encoder import MAX_TOKENS, SentenceEncoder, bundled_model_dir, padded


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


class MiniLMEmbedder(SentenceEncoder):
    """Sentence embeddings identical (to float tolerance) to sentence-transformers' all-MiniLM-L6-v2."""

    id = "minilm-numpy-fp32"

    def __init__(self, model_dir: Path, max_tokens: int = MAX_TOKENS) -> None:
        from safetensors.numpy import load_file

        super().__init__(model_dir, max_tokens)
        weights = load_file(str(model_dir / "model.safetensors"))
        self._word = weights["embeddings.word_embeddings.weight"]
        self._pos = weights["embeddings.position_embeddings.weight"]
        self._type0 = weights["embeddings.token_type_embeddings.weight"][0]
        self._ln = (weights["embeddings.LayerNorm.weight"], weights["embeddings.LayerNorm.bias"])
        layers = sorted({int(k.split(".")[2]) for k in weights if k.startswith("encoder.layer.")})
        self._layers = [_Layer(weights, f"encoder.layer.{i}", heads=12) for i in layers]

    @classmethod
    def bundled(cls, max_tokens: int = MAX_TOKENS) -> MiniLMEmbedder:
        return cls(bundled_model_dir(), max_tokens)

    def _forward(self, ids: list[list[int]]) -> np.ndarray:
        batch, mask_int = padded(ids)
        mask = mask_int.astype(np.float32)
        t = batch.shape[1]
        x = self._word[batch] + self._pos[:t] + self._type0  # float32 throughout
        x = _layer_norm(x, *self._ln)
        mask_add = ((1.0 - mask) * -1e9)[:, None, None, :].astype(np.float32)
        for layer in self._layers:
            x = layer(x, mask_add)
        pooled = (x * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
