"""The sentence encoder graph (runtime/agentfleet_runtime/ingest/bert_onnx.py) computes what a BERT
forward pass with mean pooling and L2 normalisation computes, checked against numpy on small random
weights, with ONNX Runtime's fused Attention kernel and with standard ops only."""

from __future__ import annotations

import math

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")

from agentfleet_runtime.ingest.bert_onnx import BertShape, build_sentence_encoder  # noqa: E402

SHAPE = BertShape(layers=2, hidden=8, heads=2, intermediate=16, max_positions=12, layer_norm_eps=1e-12)
VOCAB = 30


def random_weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    h, i = SHAPE.hidden, SHAPE.intermediate
    w = {
        "embeddings.word_embeddings.weight": rng.normal(size=(VOCAB, h)),
        "embeddings.position_embeddings.weight": rng.normal(size=(SHAPE.max_positions, h)),
        "embeddings.token_type_embeddings.weight": rng.normal(size=(2, h)),
        "embeddings.LayerNorm.weight": rng.normal(size=h),
        "embeddings.LayerNorm.bias": rng.normal(size=h),
    }
    for n in range(SHAPE.layers):
        p = f"encoder.layer.{n}."
        for part in ("query", "key", "value"):
            w[p + f"attention.self.{part}.weight"] = rng.normal(size=(h, h)) / math.sqrt(h)
            w[p + f"attention.self.{part}.bias"] = rng.normal(size=h) * 0.1
        w[p + "attention.output.dense.weight"] = rng.normal(size=(h, h)) / math.sqrt(h)
        w[p + "attention.output.dense.bias"] = rng.normal(size=h) * 0.1
        w[p + "attention.output.LayerNorm.weight"] = 1 + rng.normal(size=h) * 0.1
        w[p + "attention.output.LayerNorm.bias"] = rng.normal(size=h) * 0.1
        w[p + "intermediate.dense.weight"] = rng.normal(size=(i, h)) / math.sqrt(h)
        w[p + "intermediate.dense.bias"] = rng.normal(size=i) * 0.1
        w[p + "output.dense.weight"] = rng.normal(size=(h, i)) / math.sqrt(i)
        w[p + "output.dense.bias"] = rng.normal(size=h) * 0.1
        w[p + "output.LayerNorm.weight"] = 1 + rng.normal(size=h) * 0.1
        w[p + "output.LayerNorm.bias"] = rng.normal(size=h) * 0.1
    return {k: v.astype(np.float32) for k, v in w.items()}


def layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + SHAPE.layer_norm_eps) * g + b


def reference(w: dict[str, np.ndarray], ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """BERT's forward pass as sentence-transformers runs it, in float64 numpy."""
    w = {k: v.astype(np.float64) for k, v in w.items()}
    seq = ids.shape[1]
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:seq]
    x = x + w["embeddings.token_type_embeddings.weight"][0]
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    heads, hd = SHAPE.heads, SHAPE.hidden // SHAPE.heads
    bias = (1.0 - mask[:, None, None, :]) * -1e4
    for n in range(SHAPE.layers):
        p = f"encoder.layer.{n}."

        def proj(x: np.ndarray, name: str, p: str = p) -> np.ndarray:
            return x @ w[p + name + ".weight"].T + w[p + name + ".bias"]

        def split(t: np.ndarray) -> np.ndarray:
            return t.reshape(t.shape[0], seq, heads, hd).transpose(0, 2, 1, 3)

        q, k, v = (split(proj(x, f"attention.self.{part}")) for part in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd) + bias
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(x.shape)
        x = layer_norm(
            proj(ctx, "attention.output.dense") + x,
            w[p + "attention.output.LayerNorm.weight"],
            w[p + "attention.output.LayerNorm.bias"],
        )
        h = proj(x, "intermediate.dense")
        h = 0.5 * h * (1.0 + np.vectorize(math.erf)(h / math.sqrt(2.0)))
        x = layer_norm(proj(h, "output.dense") + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
    m = mask[:, :, None]
    mean = (x * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    return mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)


@pytest.mark.parametrize("fused", [True, False])
def test_the_graph_computes_bert_mean_pooled_and_normalised(fused: bool) -> None:
    w = random_weights()
    model = build_sentence_encoder(w, SHAPE, fused_attention=fused)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ids = np.array([[1, 5, 9, 2, 0, 0], [3, 4, 7, 8, 11, 2]], dtype=np.int64)
    mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=np.int64)
    (out,) = session.run(["embeddings"], {"input_ids": ids, "attention_mask": mask})
    assert out.shape == (2, SHAPE.hidden)
    np.testing.assert_allclose(out, reference(w, ids, mask.astype(np.float64)), atol=2e-4)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
