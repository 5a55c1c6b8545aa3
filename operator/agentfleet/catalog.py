"""Geometry of known model families and memory of known GPU products, looked up by name.

A ModelReplicaSet may omit spec.model.geometry for these; the capacity model then reads the
shape from here. Figures are the published Hugging Face config.json values (num_hidden_layers,
num_key_value_heads, head_dim or hidden_size / num_attention_heads, max_position_embeddings) and
the checkpoints' parameter counts. Fine-tunes and quantised re-uploads keep their base model's
geometry, so one pattern covers e.g. Llama-3.1-70B-Instruct, its FP8 and AWQ variants.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelShape:
    """What the capacity model needs to know about a model."""

    parameters: int
    layers: int
    kv_heads: int
    head_dim: int
    attention_heads: int | None = None
    max_context: int | None = None
    # Bits per weight as loaded; None means "as the checkpoint's dtype" (16 for fp16/bf16).
    weight_bits: int | None = None
    family: str = ""


@dataclass(frozen=True)
class Family:
    key: str
    pattern: re.Pattern[str]
    shape: ModelShape


def _f(
    key: str, pattern: str, parameters: int, layers: int, kv_heads: int, head_dim: int, heads: int, context: int
) -> Family:
    return Family(
        key=key,
        pattern=re.compile(pattern, re.IGNORECASE),
        shape=ModelShape(
            parameters=parameters,
            layers=layers,
            kv_heads=kv_heads,
            head_dim=head_dim,
            attention_heads=heads,
            max_context=context,
            family=key,
        ),
    )


# Order matters only where patterns could overlap: more specific first.
FAMILIES: tuple[Family, ...] = (
    # Llama 3.0 shipped with an 8K context; 3.1, 3.2 and 3.3 with 128K (rope scaling).
    _f("llama-3-8b", r"llama-?3-8b", 8_030_261_248, 32, 8, 128, 32, 8192),
    _f("llama-3-70b", r"llama-?3-70b", 70_553_706_496, 80, 8, 128, 64, 8192),
    _f("llama-3.x-8b", r"llama-?3\.[0-9]-8b", 8_030_261_248, 32, 8, 128, 32, 131072),
    _f("llama-3.x-70b", r"llama-?3\.[0-9]-70b", 70_553_706_496, 80, 8, 128, 64, 131072),
    _f("llama-3.1-405b", r"llama-?3(\.[0-9])?-405b", 405_853_388_800, 126, 8, 128, 128, 131072),
    _f("llama-3.2-1b", r"llama-?3\.[0-9]-1b", 1_235_814_400, 16, 8, 64, 32, 131072),
    _f("llama-3.2-3b", r"llama-?3\.[0-9]-3b", 3_212_749_824, 28, 8, 128, 24, 131072),
    # Llama 2: full multi-head attention below 70B (kv heads = heads), the classic KV-hungry shape.
    _f("llama-2-7b", r"llama-?2-7b", 6_738_415_616, 32, 32, 128, 32, 4096),
    _f("llama-2-13b", r"llama-?2-13b", 13_015_864_320, 40, 40, 128, 40, 4096),
    _f("llama-2-70b", r"llama-?2-70b", 68_976_648_192, 80, 8, 128, 64, 4096),
    # Qwen2.5 (incl. Coder/Math fine-tunes of the same size): config max_position_embeddings 32768.
    _f("qwen2.5-0.5b", r"qwen2\.5-([a-z]+-)?0\.5b", 494_032_768, 24, 2, 64, 14, 32768),
    _f("qwen2.5-1.5b", r"qwen2\.5-([a-z]+-)?1\.5b", 1_543_714_304, 28, 2, 128, 12, 32768),
    _f("qwen2.5-3b", r"qwen2\.5-([a-z]+-)?3b", 3_085_938_688, 36, 2, 128, 16, 32768),
    _f("qwen2.5-7b", r"qwen2\.5-([a-z]+-)?7b", 7_615_616_512, 28, 4, 128, 28, 32768),
    _f("qwen2.5-14b", r"qwen2\.5-([a-z]+-)?14b", 14_770_033_664, 48, 8, 128, 40, 32768),
    _f("qwen2.5-32b", r"qwen2\.5-([a-z]+-)?32b", 32_763_876_352, 64, 8, 128, 40, 32768),
    _f("qwen2.5-72b", r"qwen2\.5-([a-z]+-)?72b", 72_706_203_648, 80, 8, 128, 64, 32768),
    # Mixtral: every expert's weights are resident, so parameters are the total, not the active 13B/39B.
    _f("mixtral-8x7b", r"mixtral-8x7b", 46_702_792_704, 32, 8, 128, 32, 32768),
    _f("mixtral-8x22b", r"mixtral-8x22b", 140_630_071_296, 56, 8, 128, 48, 65536),
    _f("mistral-7b", r"mistral-7b", 7_248_023_552, 32, 8, 128, 32, 32768),
    _f("smollm2-135m", r"smollm2-135m", 134_515_008, 30, 3, 64, 9, 8192),
    _f("smollm2-360m", r"smollm2-360m", 361_821_120, 32, 5, 64, 15, 8192),
    _f("smollm2-1.7b", r"smollm2-1\.7b", 1_711_376_384, 24, 32, 64, 32, 8192),
)

# Quantisation is visible in the names of quantised checkpoints; the weights' bits follow.
_QUANT_BITS: tuple[tuple[re.Pattern[str], int], ...] = (
    (re.compile(r"(awq|gptq|int4|w4a16|w4a8|4bit|q4)", re.IGNORECASE), 4),
    (re.compile(r"(fp8|int8|w8a8|w8a16|8bit)", re.IGNORECASE), 8),
)


def _basename(name: str) -> str:
    # Repo ids (org/name), URIs (s3://bucket/path/name) and paths all end in the model's own name;
    # matching only there keeps an org or bucket called "llama-3-8b-mirror" from deciding the shape.
    return name.rstrip("/").rsplit("/", 1)[-1]


def weight_bits_from_name(name: str) -> int | None:
    base = _basename(name)
    for pattern, bits in _QUANT_BITS:
        if pattern.search(base):
            return bits
    return None


def lookup(name: str) -> ModelShape | None:
    """The shape of a known model family, with weight bits read from a quantised checkpoint's name."""
    base = _basename(name)
    for fam in FAMILIES:
        if fam.pattern.search(base):
            bits = weight_bits_from_name(base)
            if bits is None:
                return fam.shape
            return ModelShape(**{**fam.shape.__dict__, "weight_bits": bits})
    return None


# Memory per GPU as NVIDIA's GPU feature discovery reports it (label nvidia.com/gpu.memory, MiB):
# NVML's total, a little under the marketing figure (an "80GB" H100 shows 81559 MiB).
GPU_MEMORY_MIB: dict[str, int] = {
    "NVIDIA-H200": 143771,
    "NVIDIA-H100-80GB-HBM3": 81559,
    "NVIDIA-H100-NVL": 95830,
    "NVIDIA-A100-SXM4-80GB": 81920,
    "NVIDIA-A100-80GB-PCIe": 81920,
    "NVIDIA-A100-SXM4-40GB": 40960,
    "NVIDIA-L40S": 46068,
    "NVIDIA-L4": 23034,
    "NVIDIA-A10G": 23028,
    "Tesla-T4": 15360,
}


def gpu_memory_mib(product: str | None) -> int | None:
    if not product:
        return None
    if product in GPU_MEMORY_MIB:
        return GPU_MEMORY_MIB[product]
    low = product.lower()
    return next((v for k, v in GPU_MEMORY_MIB.items() if k.lower() == low), None)
