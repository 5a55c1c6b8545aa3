"""The llama engine image's `vllm` (e2e/cluster/node/vllm_llama.py): the command the operator renders for a
ModelReplicaSet, as llama-server's flags."""

from __future__ import annotations

import yaml
from agentfleet_contract.modelreplicaset import ModelReplicaSetSpec

from agentfleet.render.vllm import vllm_args
from e2e.cluster.node.vllm_llama import BINARY, llama_args, memory_limit
from e2e.demo.driver import EXAMPLE
from e2e.demo.onnode import LLAMA_ENGINE, MODEL_CLAIM, serve_model


def _rendered(model_file: str = "qwen.gguf") -> list[str]:
    """`vllm serve ...` as the operator renders it for the example served by the llama engine image."""
    docs = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d]
    notes = serve_model(docs, "localhost/agentfleet-engine-llama:1", model_file, {}, LLAMA_ENGINE)
    assert len(notes) == 1, notes
    mrs = next(d for d in docs if d["kind"] == "ModelReplicaSet")
    assert mrs["spec"]["model"]["name"] == f"pvc://{MODEL_CLAIM}/{model_file}"
    return ["serve", *vllm_args(ModelReplicaSetSpec.model_validate(mrs["spec"]))]


def test_the_rendered_command_becomes_llama_servers_flags():
    argv = _rendered()
    # The GPU flags are in the rendered command and mean nothing to llama-server.
    assert "--gpu-memory-utilization" in argv and "--kv-cache-dtype" in argv
    assert llama_args(argv, {"AGENTFLEET_LLAMA_THREADS": "1"}) == [
        BINARY,
        *("--model", "/mnt/model/qwen.gguf", "--alias", "llama-8b", "--host", "0.0.0.0", "--port", "8000"),
        # 4 sequences of 8192 tokens each: llama-server splits its context among its slots.
        *("--ctx-size", "32768", "--parallel", "4", "--threads", "1", "--jinja", "--metrics"),
    ]


def test_without_a_thread_count_llama_server_picks_its_own():
    out = llama_args(["serve", "/m.gguf", "--port", "9000", "--max-model-len", "4096"], {})
    assert "--threads" not in out
    assert out[out.index("--ctx-size") + 1] == "4096" and out[out.index("--parallel") + 1] == "1"
    assert out[out.index("--alias") + 1] == "/m.gguf"  # vLLM serves the model's path when no name is given


def test_under_a_memory_limit_no_prompt_cache_is_kept_in_host_memory_unless_asked(tmp_path):
    # llama-server's default host-memory prompt cache (8 GiB) outgrew a 3 GiB replica, which was OOMKilled.
    argv = ["serve", "/m.gguf"]
    out = llama_args(argv, {}, limit=3136 * 2**20)
    assert out[out.index("--cache-ram") + 1] == "0"
    assert "--cache-ram" not in llama_args(argv, {})  # no limit: llama-server's own default
    assert "--cache-ram" not in llama_args(argv, {"LLAMA_ARG_CACHE_RAM": "512"}, limit=2**32)  # the env's own
    (tmp_path / "memory.max").write_text("3288334336\n")
    (tmp_path / "none").write_text("max\n")
    assert memory_limit(str(tmp_path / "memory.max")) == 3288334336
    assert memory_limit(str(tmp_path / "none")) is None and memory_limit(str(tmp_path / "absent")) is None
