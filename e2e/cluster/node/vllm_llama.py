#!/opt/agentfleet/bin/python
"""`vllm serve MODEL --served-model-name NAME --port PORT ...` served by llama.cpp's llama-server.

The llama engine image (e2e/cluster/node/engine-llama.Containerfile) installs this file as
/opt/agentfleet/bin/vllm, so a ModelReplicaSet's pods run exactly the command the operator renders
(agentfleet/render/vllm.py) with a GGUF model on CPU: the model path (a pvc:// model's mount), the
served name, the address, the context of one sequence and the sequences decoded together become
llama-server's flags. The GPU flags (parallelism, memory utilization, KV dtype, prefix caching: llama-server
keeps each slot's cache anyway) mean nothing on CPU and are dropped; an unknown flag is dropped too,
so a newer operator's command still starts.

AGENTFLEET_LLAMA_THREADS sets llama-server's threads: the replicas of one node share its cores, and
each taking them all would oversubscribe them (llama-server's default is every core).

Under a memory limit (the container's cgroup memory.max) llama-server keeps no prompt cache in host
memory (--cache-ram 0) unless LLAMA_ARG_CACHE_RAM says how much: besides each slot's own KV cache it
keeps finished prompts there, up to 8 GiB by default, and that outgrew the 3 GiB limit of a replica of
the 1.5B, which was OOMKilled after 48 minutes of distinct prompts (an eval replay, 2026-11-29). The
slots' caches are what sticky routing reuses.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

BINARY = "/opt/agentfleet/bin/llama-server"
# llama-server's context when the command names no --max-model-len: per sequence, as the demo's
# process servers had it (e2e/harness/llama_server.py CONTEXT_PER_SLOT).
DEFAULT_CONTEXT = 8192
MEMORY_MAX = "/sys/fs/cgroup/memory.max"  # cgroup v2: the container's memory limit, "max" when none


def memory_limit(path: str = MEMORY_MAX) -> int | None:
    """The container's memory limit in bytes, or None when it has none (or no cgroup v2 file says)."""
    try:
        raw = Path(path).read_text().strip()
    except OSError:
        return None
    return int(raw) if raw.isdigit() else None


def llama_args(argv: list[str], env: dict[str, str], limit: int | None = None) -> list[str]:
    """llama-server's command line for ``vllm`` ARGV (after the program name), ENV and the container's
    memory LIMIT (bytes, None: none). Pure.

    vLLM's --max-model-len is one sequence's context and --max-num-seqs the sequences in flight;
    llama-server splits its --ctx-size among its --parallel slots, so the context is their product."""
    p = argparse.ArgumentParser(prog="vllm", add_help=False)
    p.add_argument("command", choices=["serve"])
    p.add_argument("model")
    p.add_argument("--served-model-name")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-num-seqs", type=int, default=1)
    p.add_argument("--max-model-len", type=int, default=DEFAULT_CONTEXT)
    args, _ = p.parse_known_args(argv)
    out = [
        BINARY,
        *("--model", args.model, "--alias", args.served_model_name or args.model),
        *("--host", args.host, "--port", str(args.port)),
        *("--ctx-size", str(args.max_model_len * args.max_num_seqs), "--parallel", str(args.max_num_seqs)),
    ]
    if env.get("AGENTFLEET_LLAMA_THREADS"):
        out += ["--threads", env["AGENTFLEET_LLAMA_THREADS"]]
    if limit is not None and "LLAMA_ARG_CACHE_RAM" not in env:
        out += ["--cache-ram", "0"]
    # --jinja: the GGUF's own chat template, with tools; --metrics: /metrics for the Prometheus.
    return out + ["--jinja", "--metrics"]


if __name__ == "__main__":
    cmd = llama_args(sys.argv[1:], dict(os.environ), memory_limit())
    print("vllm -> " + " ".join(cmd), flush=True)
    os.execv(cmd[0], cmd)
