"""Build an ONNX graph of a BERT sentence encoder (all-MiniLM-L6-v2) from its safetensors weights.

The graph is the same computation as `minilm.py` (token + position + type embeddings, layer norm, six
post-norm transformer layers with exact-erf GELU, masked mean pooling, L2 normalisation), written with
`onnx.helper` so no torch and no hub export are needed. Inputs: `input_ids` and `attention_mask`
(int64, batch × tokens); output: `embedding` (float32, batch × hidden).

`build_pair_scorer` is the same body read as a cross-encoder: a pair of texts in one sequence, an extra
`token_type_ids` input (0 for the first text, 1 for the second), and a linear head on the mean-pooled
states that gives one `logit` per row (the semantic cache's cross-encoder stage).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

OPSET = 17  # LayerNormalization


class _GraphBuilder:
    """Accumulates nodes and initialisers; `op` returns the name of the node's single output."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def const(self, name: str, value: Any, dtype: str = "float32") -> str:
        import numpy as np
        from onnx import numpy_helper

        array = np.asarray(value, dtype=dtype)
        if array.ndim:
            array = np.ascontiguousarray(array)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def op(self, op_type: str, *inputs: str, **attrs: Any) -> str:
        from onnx import helper

        self._count += 1
        out = f"{op_type.lower()}_{self._count}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out


def _layer_norm(g: _GraphBuilder, x: str, w: dict[str, np.ndarray], prefix: str) -> str:
    scale = g.const(f"{prefix}.weight", w[f"{prefix}.weight"])
    bias = g.const(f"{prefix}.bias", w[f"{prefix}.bias"])
    return g.op("LayerNormalization", x, scale, bias, axis=-1, epsilon=1e-12)


def _dense(g: _GraphBuilder, x: str, weight: np.ndarray, bias: np.ndarray, name: str) -> str:
    """x @ weight.T + bias (weights are stored out × in, as in PyTorch)."""
    return g.op("Add", g.op("MatMul", x, g.const(f"{name}.w", weight.T)), g.const(f"{name}.b", bias))


def _attention(g: _GraphBuilder, x: str, mask_add: str, w: dict[str, np.ndarray], p: str, heads: int) -> str:
    import numpy as np

    hidden = w[f"{p}.attention.self.query.weight"].shape[0]
    head_dim = hidden // heads
    names = ("query", "key", "value")
    qkv_w = np.concatenate([w[f"{p}.attention.self.{n}.weight"] for n in names], axis=0)
    qkv_b = np.concatenate([w[f"{p}.attention.self.{n}.bias"] for n in names])
    qkv = _dense(g, x, qkv_w, qkv_b, f"{p}.qkv")
    split = g.const(f"{p}.qkv_shape", [0, 0, 3, heads, head_dim], "int64")
    qkv = g.op("Transpose", g.op("Reshape", qkv, split), perm=[2, 0, 3, 1, 4])  # 3, b, h, t, d
    q, k, v = (g.op("Gather", qkv, g.const(f"{p}.i{i}", i, "int64"), axis=0) for i in range(3))
    scores = g.op("MatMul", q, g.op("Transpose", k, perm=[0, 1, 3, 2]))
    scores = g.op("Add", g.op("Mul", scores, g.const(f"{p}.scale", 1 / np.sqrt(head_dim))), mask_add)
    ctx = g.op("MatMul", g.op("Softmax", scores, axis=-1), v)  # b, h, t, d
    merged = g.const(f"{p}.merged_shape", [0, 0, hidden], "int64")
    ctx = g.op("Reshape", g.op("Transpose", ctx, perm=[0, 2, 1, 3]), merged)
    out = _dense(
        g, ctx, w[f"{p}.attention.output.dense.weight"], w[f"{p}.attention.output.dense.bias"], f"{p}.out"
    )
    return _layer_norm(g, g.op("Add", x, out), w, f"{p}.attention.output.LayerNorm")


def _feed_forward(g: _GraphBuilder, x: str, w: dict[str, np.ndarray], p: str) -> str:
    import numpy as np

    h = _dense(g, x, w[f"{p}.intermediate.dense.weight"], w[f"{p}.intermediate.dense.bias"], f"{p}.ff1")
    erf = g.op("Erf", g.op("Mul", h, g.const(f"{p}.rsqrt2", 1 / np.sqrt(2.0))))
    gelu = g.op("Mul", g.op("Mul", h, g.const(f"{p}.half", 0.5)), g.op("Add", erf, g.const(f"{p}.one", 1.0)))
    out = _dense(g, gelu, w[f"{p}.output.dense.weight"], w[f"{p}.output.dense.bias"], f"{p}.ff2")
    return _layer_norm(g, g.op("Add", x, out), w, f"{p}.output.LayerNorm")


def _embeddings(g: _GraphBuilder, w: dict[str, np.ndarray], pair: bool) -> str:
    words = g.op("Gather", g.const("word_embeddings", w["embeddings.word_embeddings.weight"]), "input_ids")
    length = g.op("Gather", g.op("Shape", "input_ids"), g.const("one_1d", [1], "int64"))
    zero = g.const("zero_1d", [0], "int64")
    positions = g.op(
        "Slice",
        g.const("position_embeddings", w["embeddings.position_embeddings.weight"]),
        zero,
        length,
        zero,
    )
    types = w["embeddings.token_type_embeddings.weight"]
    if pair:
        token_type = g.op("Gather", g.const("token_type_embeddings", types), "token_type_ids")
    else:
        token_type = g.const("token_type_0", types[0])
    x = g.op("Add", g.op("Add", words, positions), token_type)
    return _layer_norm(g, x, w, "embeddings.LayerNorm")


def _pooled(g: _GraphBuilder, weights: dict[str, np.ndarray], heads: int, pair: bool) -> str:
    """Embeddings, every transformer layer, then the mean of the unmasked token states."""
    from onnx import TensorProto

    x = _embeddings(g, weights, pair)
    mask = g.op("Cast", "attention_mask", to=TensorProto.FLOAT)
    blocked = g.op("Mul", g.op("Sub", g.const("one", 1.0), mask), g.const("big_negative", -1e9))
    mask_add = g.op("Unsqueeze", blocked, g.const("axes_12", [1, 2], "int64"))  # b, 1, 1, t
    layers = sorted({int(k.split(".")[2]) for k in weights if k.startswith("encoder.layer.")})
    for i in layers:
        x = _attention(g, x, mask_add, weights, f"encoder.layer.{i}", heads)
        x = _feed_forward(g, x, weights, f"encoder.layer.{i}")
    mask3 = g.op("Unsqueeze", mask, g.const("axes_2", [2], "int64"))
    axis1 = g.const("axes_1", [1], "int64")
    summed = g.op("ReduceSum", g.op("Mul", x, mask3), axis1, keepdims=0)
    count = g.op("Max", g.op("ReduceSum", mask3, axis1, keepdims=0), g.const("tiny", 1e-9))
    return g.op("Div", summed, count)


def _model(g: _GraphBuilder, inputs: list[str], output: Any, name: str) -> Any:
    from onnx import TensorProto, checker, helper

    graph = helper.make_graph(
        g.nodes,
        name,
        [helper.make_tensor_value_info(i, TensorProto.INT64, ["batch", "tokens"]) for i in inputs],
        [output],
        g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    checker.check_model(model)
    return model


def build_encoder(weights: dict[str, np.ndarray], heads: int = 12) -> Any:
    """The whole sentence encoder as an `onnx.ModelProto`."""
    from onnx import TensorProto, helper

    g = _GraphBuilder()
    pooled = _pooled(g, weights, heads, pair=False)
    g.nodes.append(helper.make_node("LpNormalization", [pooled], ["embedding"], axis=1, p=2))
    hidden = int(weights["embeddings.word_embeddings.weight"].shape[1])
    output = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", hidden])
    return _model(g, ["input_ids", "attention_mask"], output, "sentence_encoder")


def build_pair_scorer(weights: dict[str, np.ndarray], heads: int = 12) -> Any:
    """A cross-encoder: `weights` plus `head.weight` (1 × hidden) and `head.bias` (1,) → `logit` (batch,)."""
    from onnx import TensorProto, helper

    g = _GraphBuilder()
    pooled = _pooled(g, weights, heads, pair=True)
    scores = _dense(g, pooled, weights["head.weight"], weights["head.bias"], "head")  # batch × 1
    squeeze = g.const("axes_head", [1], "int64")
    g.nodes.append(helper.make_node("Squeeze", [scores, squeeze], ["logit"]))
    output = helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["batch"])
    inputs = ["input_ids", "attention_mask", "token_type_ids"]
    return _model(g, inputs, output, "pair_scorer")
