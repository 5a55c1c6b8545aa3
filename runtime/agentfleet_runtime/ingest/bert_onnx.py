"""A BERT encoder with mean pooling and L2 normalisation, as an ONNX graph built from raw weights.

The MiniLM package ships safetensors weights meant for torch. Building the graph ourselves lets
ONNX Runtime run it (and quantize it to int8) with no torch at all: ~20 MB of runtime instead of
several GB. The graph computes exactly what sentence-transformers computes for all-MiniLM-L6-v2:
BertModel -> mean over the attention mask -> L2 normalise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17  # LayerNormalization is a standard op from 17 on.


@dataclass(frozen=True)
class BertShape:
    layers: int
    hidden: int
    heads: int
    intermediate: int
    max_positions: int
    layer_norm_eps: float

    @classmethod
    def from_config(cls, config: Mapping[str, object]) -> BertShape:
        if config.get("model_type") != "bert" or config.get("hidden_act", "gelu") != "gelu":
            raise ValueError(
                "only BERT encoders with exact GELU are supported, got "
                f"{config.get('model_type')}/{config.get('hidden_act')}"
            )
        if config.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError("only absolute position embeddings are supported")
        return cls(
            layers=int(config["num_hidden_layers"]),  # type: ignore[arg-type]
            hidden=int(config["hidden_size"]),  # type: ignore[arg-type]
            heads=int(config["num_attention_heads"]),  # type: ignore[arg-type]
            intermediate=int(config["intermediate_size"]),  # type: ignore[arg-type]
            max_positions=int(config["max_position_embeddings"]),  # type: ignore[arg-type]
            layer_norm_eps=float(config.get("layer_norm_eps", 1e-12)),  # type: ignore[arg-type]
        )


class _Graph:
    """Accumulates nodes and initializers with unique names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, hint: str, value: np.ndarray) -> str:
        n = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), n))
        return n

    def op(
        self, op_type: str, inputs: list[str], hint: str | None = None, outputs: int = 1, **attrs: object
    ) -> str | list[str]:
        outs = [self.name(hint or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, **attrs))
        return outs[0] if outputs == 1 else outs


def _unfused_attention(
    g: _Graph, x: str, wqkv: np.ndarray, bqkv: np.ndarray, bias: str, i: int, heads: int, head_dim: int, hidden: int
) -> str:
    """Self-attention from standard ONNX ops only (for runtimes without com.microsoft ops)."""
    qkv = g.op(
        "Add",
        [g.op("MatMul", [x, g.const(f"l{i}_wqkv", wqkv)], f"l{i}_qkv_mm"), g.const(f"l{i}_bqkv", bqkv)],
        f"l{i}_qkv",
    )
    qkv = g.op(
        "Reshape", [qkv, g.const("qkv_shape", np.array([0, 0, 3, heads, head_dim], dtype=np.int64))], f"l{i}_qkv5"
    )
    qkv = g.op("Transpose", [qkv], f"l{i}_qkvT", perm=[2, 0, 3, 1, 4])  # [3, b, heads, seq, head_dim]
    q, k, v = g.op("Split", [qkv], f"l{i}_split", outputs=3, axis=0)
    q = g.op("Squeeze", [q, g.const("ax0", np.array([0], dtype=np.int64))], f"l{i}_q")
    k = g.op("Squeeze", [k, g.const("ax0", np.array([0], dtype=np.int64))], f"l{i}_k")
    v = g.op("Squeeze", [v, g.const("ax0", np.array([0], dtype=np.int64))], f"l{i}_v")
    kt = g.op("Transpose", [k], f"l{i}_kT", perm=[0, 1, 3, 2])
    scale = g.const("scale", np.array(1.0 / math.sqrt(head_dim), dtype=np.float32))
    scores = g.op("Mul", [g.op("MatMul", [q, kt], f"l{i}_qk"), scale], f"l{i}_scaled")
    probs = g.op("Softmax", [g.op("Add", [scores, bias], f"l{i}_masked")], f"l{i}_probs", axis=-1)
    ctx = g.op("Transpose", [g.op("MatMul", [probs, v], f"l{i}_ctx")], f"l{i}_ctxT", perm=[0, 2, 1, 3])
    return g.op("Reshape", [ctx, g.const("ctx_shape", np.array([0, 0, hidden], dtype=np.int64))], f"l{i}_ctx3")


Weights = Callable[[str], np.ndarray]  # a tensor of the checkpoint by its name (prefix applied), as float32


def _embeddings(g: _Graph, w: Weights, ids: str, eps: float) -> str:
    """word[ids] + (position + type0)[:seq], then LayerNorm."""
    word = g.const("word_emb", w("embeddings.word_embeddings.weight"))
    pos_type = g.const(
        "pos_type_emb", w("embeddings.position_embeddings.weight") + w("embeddings.token_type_embeddings.weight")[0]
    )
    ids_shape = g.op("Shape", [ids], "ids_shape")
    seq_len = g.op("Gather", [ids_shape, g.const("one", np.array([1], dtype=np.int64))], "seq_len")
    pos = g.op(
        "Slice",
        [
            pos_type,
            g.const("zero", np.array([0], dtype=np.int64)),
            seq_len,
            g.const("axis0", np.array([0], dtype=np.int64)),
        ],
        "pos",
    )
    x = g.op("Gather", [word, ids], "tok")
    x = g.op("Add", [x, pos], "emb")
    return g.op(
        "LayerNormalization",
        [x, g.const("emb_ln_w", w("embeddings.LayerNorm.weight")), g.const("emb_ln_b", w("embeddings.LayerNorm.bias"))],
        "emb_ln",
        axis=-1,
        epsilon=eps,
    )


@dataclass(frozen=True)
class _LayerInputs:
    """What every encoder layer shares: the shape, the mask in the form its attention reads, and
    the GELU's constants."""

    shape: BertShape
    fused_attention: bool
    mask_i32: str  # for the fused Attention kernel
    bias: str  # additive attention bias, for the unfused attention
    sqrt2: str
    half: str


def _encoder_layer(g: _Graph, w: Weights, x: str, i: int, s: _LayerInputs) -> str:
    """One transformer layer: self-attention, residual and LayerNorm, feed-forward (exact GELU),
    residual and LayerNorm."""
    H, heads, eps = s.shape.hidden, s.shape.heads, s.shape.layer_norm_eps
    p = f"encoder.layer.{i}."
    wqkv = np.concatenate([w(p + f"attention.self.{n}.weight").T for n in ("query", "key", "value")], axis=1)
    bqkv = np.concatenate([w(p + f"attention.self.{n}.bias") for n in ("query", "key", "value")])
    if s.fused_attention:
        # ONNX Runtime's contrib Attention: QKV projection, masked softmax and context in one
        # kernel (and QAttention once quantized) instead of ~15 nodes and their transposes.
        ctx = g.op(
            "Attention",
            [x, g.const(f"l{i}_wqkv", wqkv), g.const(f"l{i}_bqkv", bqkv), s.mask_i32],
            f"l{i}_attn",
            domain="com.microsoft",
            num_heads=heads,
        )
    else:
        ctx = _unfused_attention(g, x, wqkv, bqkv, s.bias, i, heads, H // heads, H)
    attn = g.op("MatMul", [ctx, g.const(f"l{i}_wo", w(p + "attention.output.dense.weight").T)], f"l{i}_o_mm")

    attn = g.op("Add", [attn, g.const(f"l{i}_bo", w(p + "attention.output.dense.bias"))], f"l{i}_o")
    x = g.op(
        "LayerNormalization",
        [
            g.op("Add", [attn, x], f"l{i}_res1"),
            g.const(f"l{i}_ln1_w", w(p + "attention.output.LayerNorm.weight")),
            g.const(f"l{i}_ln1_b", w(p + "attention.output.LayerNorm.bias")),
        ],
        f"l{i}_ln1",
        axis=-1,
        epsilon=eps,
    )
    h = g.op("MatMul", [x, g.const(f"l{i}_w1", w(p + "intermediate.dense.weight").T)], f"l{i}_ff1_mm")
    h = g.op("Add", [h, g.const(f"l{i}_b1", w(p + "intermediate.dense.bias"))], f"l{i}_ff1")
    # Exact GELU, 0.5 x (1 + erf(x / sqrt 2)): ORT fuses this pattern into its Gelu kernel.
    erf = g.op("Erf", [g.op("Div", [h, s.sqrt2], f"l{i}_gdiv")], f"l{i}_erf")
    one_plus = g.op("Add", [erf, g.const("onef2", np.array(1.0, dtype=np.float32))], f"l{i}_g1")
    h = g.op("Mul", [g.op("Mul", [h, one_plus], f"l{i}_gm"), s.half], f"l{i}_gelu")
    h = g.op("MatMul", [h, g.const(f"l{i}_w2", w(p + "output.dense.weight").T)], f"l{i}_ff2_mm")
    h = g.op("Add", [h, g.const(f"l{i}_b2", w(p + "output.dense.bias"))], f"l{i}_ff2")
    return g.op(
        "LayerNormalization",
        [
            g.op("Add", [h, x], f"l{i}_res2"),
            g.const(f"l{i}_ln2_w", w(p + "output.LayerNorm.weight")),
            g.const(f"l{i}_ln2_b", w(p + "output.LayerNorm.bias")),
        ],
        f"l{i}_ln2",
        axis=-1,
        epsilon=eps,
    )


def _mean_pool_normalised(g: _Graph, x: str, mask_f: str) -> None:
    """Mean pooling over real tokens, then L2 normalisation (sentence-transformers' Pooling +
    Normalize), into the graph's output ``embeddings``."""
    m3 = g.op("Unsqueeze", [mask_f, g.const("ax2", np.array([2], dtype=np.int64))], "mask3")
    summed = g.op(
        "ReduceSum",
        [g.op("Mul", [x, m3], "masked_x"), g.const("ax1", np.array([1], dtype=np.int64))],
        "sum",
        keepdims=0,
    )
    count = g.op("ReduceSum", [m3, g.const("ax1b", np.array([1], dtype=np.int64))], "count", keepdims=0)
    count = g.op("Max", [count, g.const("tiny", np.array(1e-9, dtype=np.float32))], "count_c")
    mean = g.op("Div", [summed, count], "mean")
    norm = g.op("ReduceL2", [mean], "norm", axes=[1], keepdims=1)  # axes is still an attribute at opset 17
    norm = g.op("Max", [norm, g.const("tiny2", np.array(1e-12, dtype=np.float32))], "norm_c")
    g.nodes.append(helper.make_node("Div", [mean, norm], ["embeddings"]))


def build_sentence_encoder(
    weights: Mapping[str, np.ndarray], shape: BertShape, prefix: str = "", *, fused_attention: bool = True
) -> onnx.ModelProto:
    """ONNX model: input_ids, attention_mask (int64 [batch, seq]) -> embeddings (float32 [batch, hidden], unit norm).

    The graph is built node by node in the order it runs, like the model's forward pass:
    embeddings, the encoder layers, pooling.

    token_type_ids are all zero for single-sentence encoding, so the type embedding is folded into
    the position table. Q, K and V are one MatMul so quantization and the CPU kernels see one
    large matrix instead of three small ones.
    """

    def w(name: str) -> np.ndarray:
        return np.asarray(weights[prefix + name], dtype=np.float32)

    g = _Graph()
    ids, mask = "input_ids", "attention_mask"
    x = _embeddings(g, w, ids, shape.layer_norm_eps)

    mask_f = g.op("Cast", [mask], "mask_f", to=TensorProto.FLOAT)
    bias = ""
    if not fused_attention:
        # Additive attention bias [batch, 1, 1, seq]: 0 for tokens, a large negative for padding.
        inv = g.op("Sub", [g.const("onef", np.array(1.0, dtype=np.float32)), mask_f], "mask_inv")
        bias = g.op("Mul", [inv, g.const("neg", np.array(-1e4, dtype=np.float32))], "mask_bias")
        bias = g.op("Unsqueeze", [bias, g.const("axes12", np.array([1, 2], dtype=np.int64))], "mask_bias4")

    sqrt2 = g.const("sqrt2", np.array(math.sqrt(2.0), dtype=np.float32))
    half = g.const("half", np.array(0.5, dtype=np.float32))

    mask_i32 = g.op("Cast", [mask], "mask_i32", to=TensorProto.INT32) if fused_attention else ""
    shared = _LayerInputs(shape, fused_attention, mask_i32, bias, sqrt2, half)
    for i in range(shape.layers):
        x = _encoder_layer(g, w, x, i, shared)

    _mean_pool_normalised(g, x, mask_f)

    graph = helper.make_graph(
        g.nodes,
        "sentence_encoder",
        [
            helper.make_tensor_value_info(ids, TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info(mask, TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", shape.hidden])],
        g.inits,
    )
    opsets = [helper.make_opsetid("", OPSET)] + ([helper.make_opsetid("com.microsoft", 1)] if fused_attention else [])
    model = helper.make_model(graph, opset_imports=opsets, producer_name="agentfleet")
    model.ir_version = 8  # widely supported by ONNX Runtime builds
    return model
