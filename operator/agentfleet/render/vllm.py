"""The vLLM command line of a replica: what the engine serves and how its gang starts (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from agentfleet_contract.modelreplicaset import ModelReplicaSetSpec

MASTER_PORT = 29501  # vLLM's default --master-port for multi-node multiprocessing
MODEL_SOURCE_PATH = "/mnt/model"  # where a pvc:// model's claim is mounted

Backend = Literal["ray", "mp"]


def _flag_value(args: Iterable[str], flag: str) -> str | None:
    it = iter(args)
    for a in it:
        if a == flag:
            return next(it, None)
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def multi_node_backend(spec: ModelReplicaSetSpec) -> Backend:
    """How a gang starts, as spec.engine.multiNodeBackend says."""
    return "mp" if spec.engine.multi_node_backend == "Multiprocessing" else "ray"


def model_argument(spec: ModelReplicaSetSpec) -> str:
    """What `vllm serve` loads: repo ids, paths and object-store URIs as given; pvc://claim/path from its mount."""
    name = spec.model.name
    if name.startswith("pvc://"):
        _, _, path = name[len("pvc://") :].partition("/")
        return f"{MODEL_SOURCE_PATH}/{path}".rstrip("/")
    return name


def served_name(spec: ModelReplicaSetSpec) -> str:
    return spec.model.served_name or spec.model.name


def vllm_args(
    spec: ModelReplicaSetSpec,
    *,
    nnodes: int = 1,
    node_rank: int = 0,
    master_addr: str | None = None,
    backend: Backend | None = None,
) -> list[str]:
    """`vllm serve` arguments (after the subcommand) for one pod of a replica."""
    e = spec.engine
    args = [
        model_argument(spec),
        "--served-model-name",
        served_name(spec),
        "--host",
        "0.0.0.0",
        "--port",
        str(e.port),
        "--tensor-parallel-size",
        str(e.tensor_parallel_size),
        "--pipeline-parallel-size",
        str(e.pipeline_parallel_size),
    ]
    if e.max_model_len:
        args += ["--max-model-len", str(e.max_model_len)]
    args += [
        "--max-num-seqs",
        str(e.max_num_seqs),
    ]
    if e.device == "GPU":
        # On CPU this flag is a fraction of the whole host's RAM, not the pod's: the KV cache is sized
        # by VLLM_CPU_KVCACHE_SPACE instead (render/modelreplicaset.py).
        args += ["--gpu-memory-utilization", str(e.gpu_memory_utilization)]
    args += [
        "--enable-prefix-caching" if e.enable_prefix_caching else "--no-enable-prefix-caching",
        "--kv-cache-dtype",
        e.kv_cache_dtype,
        "--dtype",
        e.dtype,
    ]
    if spec.model.revision:
        args += ["--revision", spec.model.revision]
    if spec.adapters:
        # Adapters themselves are loaded at run time (the operator, through vLLM's adapter API):
        # only the GPU slots and the largest rank shape the pod, so adding one restarts nothing.
        args += ["--enable-lora", "--max-loras", str(e.max_loras), "--max-lora-rank", str(lora_rank(spec))]
    # Object stores are read through the Run:ai model streamer (vLLM's documented S3/GCS loader).
    if spec.model.name.startswith(("s3://", "gs://")) and _flag_value(e.extra_args, "--load-format") is None:
        args += ["--load-format", "runai_streamer"]
    if nnodes > 1:
        backend = backend or multi_node_backend(spec)
        explicit = _flag_value(e.extra_args, "--distributed-executor-backend") is not None
        if backend == "ray" and not explicit:
            args += ["--distributed-executor-backend", "ray"]
        if backend == "mp":
            args += [
                "--nnodes",
                str(nnodes),
                "--node-rank",
                str(node_rank),
                "--master-addr",
                master_addr or "",
                "--master-port",
                str(MASTER_PORT),
            ]
            if node_rank > 0:
                args.append("--headless")
    args += list(e.extra_args)
    return args


def lora_rank(spec: ModelReplicaSetSpec) -> int:
    """--max-lora-rank: the largest adapter's rank (each is one vLLM accepts); 0 without adapters."""
    return max((a.max_rank for a in spec.adapters), default=0)
