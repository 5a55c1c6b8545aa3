"""Known model families are found by name, with quantisation read from the checkpoint's name."""

from __future__ import annotations

import pytest

from agentfleet.capacity import kv_bytes_per_token
from agentfleet.catalog import gpu_memory_mib, lookup, weight_bits_from_name


@pytest.mark.parametrize(
    ("name", "family", "layers", "kv_heads", "head_dim", "context"),
    [
        ("meta-llama/Meta-Llama-3-8B-Instruct", "llama-3-8b", 32, 8, 128, 8192),
        ("meta-llama/Llama-3.1-8B-Instruct", "llama-3.x-8b", 32, 8, 128, 131072),
        ("meta-llama/Llama-3.3-70B-Instruct", "llama-3.x-70b", 80, 8, 128, 131072),
        ("meta-llama/Llama-3.1-405B-Instruct-FP8", "llama-3.1-405b", 126, 8, 128, 131072),
        ("meta-llama/Llama-3.2-1B-Instruct", "llama-3.2-1b", 16, 8, 64, 131072),
        ("Qwen/Qwen2.5-7B-Instruct", "qwen2.5-7b", 28, 4, 128, 32768),
        ("Qwen/Qwen2.5-Coder-7B-Instruct", "qwen2.5-7b", 28, 4, 128, 32768),
        ("Qwen/Qwen2.5-72B-Instruct-AWQ", "qwen2.5-72b", 80, 8, 128, 32768),
        ("mistralai/Mistral-7B-Instruct-v0.3", "mistral-7b", 32, 8, 128, 32768),
        ("mistralai/Mixtral-8x7B-Instruct-v0.1", "mixtral-8x7b", 32, 8, 128, 32768),
        ("mistralai/Mixtral-8x22B-Instruct-v0.1", "mixtral-8x22b", 56, 8, 128, 65536),
        ("HuggingFaceTB/SmolLM2-135M-Instruct", "smollm2-135m", 30, 3, 64, 8192),
        ("HuggingFaceTB/SmolLM2-360M-Instruct", "smollm2-360m", 32, 5, 64, 8192),
        ("HuggingFaceTB/SmolLM2-1.7B-Instruct", "smollm2-1.7b", 24, 32, 64, 8192),
        ("pvc://models/meta-llama/Llama-2-13b-chat-hf", "llama-2-13b", 40, 40, 128, 4096),
    ],
)
def test_known_families(name: str, family: str, layers: int, kv_heads: int, head_dim: int, context: int) -> None:
    s = lookup(name)
    assert s is not None
    assert (s.family, s.layers, s.kv_heads, s.head_dim, s.max_context) == (family, layers, kv_heads, head_dim, context)


def test_parameter_counts_and_kv_per_token() -> None:
    assert lookup("meta-llama/Llama-3.1-70B").parameters == 70_553_706_496
    # Mixtral keeps every expert resident: total parameters, not the 13B active ones.
    assert lookup("mistralai/Mixtral-8x7B-v0.1").parameters == 46_702_792_704
    s = lookup("meta-llama/Llama-2-13b-hf")
    assert kv_bytes_per_token(s.layers, s.kv_heads, s.head_dim, 2) == 800 * 1024


def test_quantised_names_set_weight_bits() -> None:
    assert lookup("meta-llama/Llama-3.1-405B-Instruct-FP8").weight_bits == 8
    assert lookup("hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4").weight_bits == 4
    assert lookup("meta-llama/Llama-3.1-70B-Instruct").weight_bits is None
    assert weight_bits_from_name("neuralmagic/Qwen2.5-7B-Instruct-quantized.w8a8") == 8
    # Only the model's own name counts, not its organisation or bucket.
    assert weight_bits_from_name("fp8-team/Llama-3.1-8B") is None


def test_unknown_models_and_gpus() -> None:
    assert lookup("my-org/secret-model") is None
    assert lookup("llama-3-8b-mirror/unrelated") is None
    assert gpu_memory_mib("NVIDIA-H100-80GB-HBM3") == 81559
    assert gpu_memory_mib("nvidia-l4") == 23034
    assert gpu_memory_mib("Unknown-GPU") is None and gpu_memory_mib(None) is None
