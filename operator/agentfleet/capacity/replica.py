"""One replica's capacity: what a serving configuration holds (weights, KV tokens, concurrent
sequences), whether the model fits, and the tensor-parallel size to suggest when it does not."""

from __future__ import annotations

from dataclasses import dataclass, replace

from agentfleet_contract.modelreplicaset import gpus_per_replica

from agentfleet.capacity.memory import (
    concurrent_sequences,
    kv_bytes_per_token,
    kv_element_bytes,
    kv_tokens,
    reserve_bytes,
    stored_kv_heads,
    usable_bytes,
    weights_bytes,
)
from agentfleet.capacity.units import gib
from agentfleet.catalog import ModelShape

# Below this share of the memory vLLM may use, a replica's KV cache holds only a few sequences and
# batching stops paying: the recommended tensor-parallel size is the smallest that clears it.
KV_HEADROOM_FRACTION = 0.25

# Tensor-parallel sizes considered when suggesting one: powers of two, as attention head counts
# of the families served here divide by them.
TP_CANDIDATES = (1, 2, 4, 8, 16, 32, 64, 128)


@dataclass(frozen=True)
class ServingConfig:
    """The engine settings that decide a replica's memory."""

    gpu_memory_bytes: int
    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    gpu_memory_utilization: float = 0.9
    kv_cache_dtype: str = "auto"
    dtype: str = "auto"
    max_model_len: int | None = None
    max_num_seqs: int = 256

    @property
    def gpus(self) -> int:
        return gpus_per_replica(self.tensor_parallel, self.pipeline_parallel)


@dataclass(frozen=True)
class ReplicaCapacity:
    gpus: int
    gpu_memory_bytes: int
    usable_bytes: int
    weight_bits: int
    weights_bytes: int
    reserve_bytes: int
    kv_free_bytes: int
    kv_bytes_per_token: int  # the model's, per token, as in the status field
    kv_bytes_per_token_stored: int  # what one token costs this replica (replicated heads included)
    kv_tokens: int
    context: int | None
    concurrent_sequences: int | None  # at `context`, capped by max_num_seqs
    kv_limited_sequences: int | None  # at `context`, without the cap

    @property
    def weights_fit(self) -> bool:
        return self.kv_free_bytes > 0

    @property
    def holds_one_sequence(self) -> bool:
        return self.context is None or self.kv_tokens >= self.context

    @property
    def fits(self) -> bool:
        return self.weights_fit and self.holds_one_sequence

    @property
    def kv_share(self) -> float:
        return self.kv_free_bytes / self.usable_bytes if self.usable_bytes else 0.0


def effective_weight_bits(shape: ModelShape, dtype: str = "auto") -> int:
    bits = shape.weight_bits or 16
    # --dtype float32 loads 16-bit checkpoints in 32 bits; quantised weights keep their width.
    return 32 if dtype == "float32" and bits >= 16 else bits


def replica_capacity(shape: ModelShape, cfg: ServingConfig) -> ReplicaCapacity:
    gpus = cfg.gpus
    bits = effective_weight_bits(shape, cfg.dtype)
    weights = weights_bytes(shape.parameters, bits)
    reserve = reserve_bytes(gpus)
    usable = usable_bytes(gpus, cfg.gpu_memory_bytes, cfg.gpu_memory_utilization)
    kv_free = usable - weights - reserve
    elem = kv_element_bytes(cfg.kv_cache_dtype, cfg.dtype)
    per_token = kv_bytes_per_token(shape.layers, shape.kv_heads, shape.head_dim, elem)
    stored = kv_bytes_per_token(
        shape.layers, stored_kv_heads(shape.kv_heads, cfg.tensor_parallel), shape.head_dim, elem
    )
    tokens = kv_tokens(kv_free, stored)
    context = cfg.max_model_len or shape.max_context
    seqs = limited = None
    if context:
        limited = concurrent_sequences(tokens, context)
        seqs = min(limited, cfg.max_num_seqs)
    return ReplicaCapacity(
        gpus=gpus,
        gpu_memory_bytes=cfg.gpu_memory_bytes,
        usable_bytes=usable,
        weight_bits=bits,
        weights_bytes=weights,
        reserve_bytes=reserve,
        kv_free_bytes=kv_free,
        kv_bytes_per_token=per_token,
        kv_bytes_per_token_stored=stored,
        kv_tokens=tokens,
        context=context,
        concurrent_sequences=seqs,
        kv_limited_sequences=limited,
    )


def _tp_options(shape: ModelShape, current: int) -> list[int]:
    """Tensor-parallel sizes vLLM accepts for this shape: they divide the attention heads, and
    either divide the KV heads or are a multiple of them (then KV heads are replicated)."""
    out = []
    for tp in sorted({*TP_CANDIDATES, current}):
        if shape.attention_heads and shape.attention_heads % tp:
            continue
        if shape.kv_heads % tp and tp % shape.kv_heads:
            continue
        out.append(tp)
    return out


def smallest_fitting_tp(shape: ModelShape, cfg: ServingConfig) -> int | None:
    """Smallest tensor-parallel size (same pipeline stages) whose replica loads and holds one full-context sequence."""
    for tp in _tp_options(shape, cfg.tensor_parallel):
        if replica_capacity(shape, replace(cfg, tensor_parallel=tp)).fits:
            return tp
    return None


def recommended_tp(shape: ModelShape, cfg: ServingConfig) -> int | None:
    """Smallest tensor-parallel size that fits and leaves KV_HEADROOM_FRACTION of usable memory to KV."""
    for tp in _tp_options(shape, cfg.tensor_parallel):
        cap = replica_capacity(shape, replace(cfg, tensor_parallel=tp))
        if cap.fits and cap.kv_share >= KV_HEADROOM_FRACTION:
            return tp
    return None


def fit_problems(shape: ModelShape, cfg: ServingConfig, cap: ReplicaCapacity | None = None) -> list[str]:
    """Why a replica of this shape and config cannot serve, in words with the figures; empty if it can."""
    cap = cap or replica_capacity(shape, cfg)
    problems: list[str] = []
    name = shape.family or "the model"
    budget = (
        f"{cap.gpus} x {gib(cfg.gpu_memory_bytes)} GPU x {cfg.gpu_memory_utilization:.2f} utilization = "
        f"{gib(cap.usable_bytes)} usable, "
        f"minus {gib(cap.reserve_bytes)} working reserve"
    )
    layout = f"tensorParallelSize {cfg.tensor_parallel} x pipelineParallelSize {cfg.pipeline_parallel}"
    if not (shape.kv_heads % cfg.tensor_parallel == 0 or cfg.tensor_parallel % shape.kv_heads == 0):
        problems.append(
            f"tensorParallelSize {cfg.tensor_parallel} neither divides nor is a multiple of the {shape.kv_heads} "
            f"KV heads of {name}"
        )
    if shape.attention_heads and shape.attention_heads % cfg.tensor_parallel:
        problems.append(
            f"tensorParallelSize {cfg.tensor_parallel} does not divide the {shape.attention_heads} attention "
            f"heads of {name}"
        )
    if problems:
        return problems
    if not cap.weights_fit:
        msg = (
            f"{name} does not fit at {layout}: its weights take {gib(cap.weights_bytes)} "
            f"({shape.parameters / 1e9:.2f}B parameters x {cap.weight_bits} bit) but {budget} leaves "
            f"{gib(cap.usable_bytes - cap.reserve_bytes)}"
        )
        problems.append(msg + _suggestion(shape, cfg))
    elif not cap.holds_one_sequence:
        msg = (
            f"{name} at {layout} loads ({gib(cap.weights_bytes)} of weights) but its {gib(cap.kv_free_bytes)} KV "
            "cache holds "
            f"{cap.kv_tokens:,} tokens, fewer than one sequence of maxModelLen {cap.context:,}: vLLM refuses to start; "
            f"lower spec.engine.maxModelLen to at most {cap.kv_tokens:,}"
        )
        problems.append(msg + _suggestion(shape, cfg, lead=" or"))
    return problems


def _suggestion(shape: ModelShape, cfg: ServingConfig, lead: str = ";") -> str:
    tp = smallest_fitting_tp(shape, cfg)
    # The smallest size that fits may be below the current one: once a replica spans GPUs every GPU
    # also reserves RESERVE_PER_GPU_SHARDED, so on small GPUs (or at a low utilization) TP 1 leaves more room.
    if tp is None:
        more = "raise pipelineParallelSize, use a quantised checkpoint, an fp8 KV cache or GPUs with more memory"
        return f"{lead} no tensorParallelSize up to {TP_CANDIDATES[-1]} fits: {more}"
    at = replica_capacity(shape, replace(cfg, tensor_parallel=tp))
    out = (
        f"{lead} the smallest tensorParallelSize that fits is {tp} ({gib(at.kv_free_bytes)} KV, {at.kv_tokens:,} "
        "tokens)"
    )
    rec = recommended_tp(shape, cfg)
    if rec is not None and rec > tp:
        r = replica_capacity(shape, replace(cfg, tensor_parallel=rec))
        out += f"; {rec} is recommended for KV headroom ({gib(r.kv_free_bytes)} KV, {r.kv_tokens:,} tokens)"
    return out
