"""Capacity model of one vLLM replica, and the fleet a workload needs.

Pure arithmetic shared by admission (a spec whose model cannot fit is refused, with the numbers
and the smallest tensor-parallel size that would fit), status (KV tokens and concurrent sequences
per replica) and the ``agentfleet`` CLI (fleet sizing from a workload profile).

Units: bytes for memory, tokens for KV, seconds for time. GiB = 2**30; GPU memory labels are MiB.
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from agentfleet_contract.modelreplicaset import CapacityStatus, ModelReplicaSetSpec

from agentfleet.catalog import ModelShape, gpu_memory_mib, lookup

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30

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

# Below this share of the memory vLLM may use, a replica's KV cache holds only a few sequences and
# batching stops paying: the recommended tensor-parallel size is the smallest that clears it.
KV_HEADROOM_FRACTION = 0.25

# Tensor-parallel sizes considered when suggesting one: powers of two, as attention head counts
# of the families served here divide by them.
TP_CANDIDATES = (1, 2, 4, 8, 16, 32, 64, 128)

_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_SUFFIX = {
    None: 1,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
_PARAMS = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([KMBT]?)$")
_PARAM_SUFFIX = {"": 1, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}


class CapacityError(ValueError):
    """A capacity input that cannot be interpreted."""


# --- Units -----------------------------------------------------------------------------------


def parse_quantity(q: str | int | float) -> float:
    """A Kubernetes quantity ("80Gi", "512Mi", "1.5", "500m") as a plain number."""
    if isinstance(q, int | float):
        return float(q)
    m = _QUANTITY.match(q.strip())
    if not m:
        raise CapacityError(f"not a Kubernetes quantity: {q!r}")
    return float(m.group(1)) * _SUFFIX[m.group(2)]


def format_quantity(n_bytes: int) -> str:
    """Bytes as the shortest exact binary quantity (80Gi, 1536Mi, 1000)."""
    for suffix, unit in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if n_bytes and n_bytes % unit == 0:
            return f"{n_bytes // unit}{suffix}"
    return str(n_bytes)


def parse_parameters(s: str | int) -> int:
    """A parameter count as written in spec.model.geometry.parameters: "8B", "70.6B", "135M"."""
    if isinstance(s, int):
        return s
    m = _PARAMS.match(s.strip())
    if not m:
        raise CapacityError(f"not a parameter count: {s!r} (write e.g. 8B, 70.6B or 135M)")
    return round(float(m.group(1)) * _PARAM_SUFFIX[m.group(2)])


def gib(n_bytes: float) -> str:
    return f"{n_bytes / GiB:.1f} GiB"


# --- Memory arithmetic -----------------------------------------------------------------------


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


def free_kv_bytes(gpus: int, gpu_memory_bytes: int, utilization: float, weights: int, reserve: int | None = None) -> int:
    """KV cache memory of a replica; negative when the weights and reserve alone do not fit."""
    if reserve is None:
        reserve = reserve_bytes(gpus)
    return usable_bytes(gpus, gpu_memory_bytes, utilization) - weights - reserve


def kv_tokens(free_kv: int, bytes_per_token: int, block_tokens: int = KV_BLOCK_TOKENS) -> int:
    """Tokens of KV cache that fit, in whole blocks."""
    if free_kv <= 0 or bytes_per_token <= 0:
        return 0
    return free_kv // (bytes_per_token * block_tokens) * block_tokens


def blocks_for(tokens: int, block_tokens: int = KV_BLOCK_TOKENS) -> int:
    return -(-tokens // block_tokens)


def concurrent_sequences(kv_token_capacity: int, context: int, max_num_seqs: int | None = None, block_tokens: int = KV_BLOCK_TOKENS) -> int:
    """Sequences of `context` tokens a replica holds at once, capped by --max-num-seqs."""
    if context <= 0:
        raise CapacityError("context must be positive")
    n = (kv_token_capacity // block_tokens) // blocks_for(context, block_tokens)
    return min(n, max_num_seqs) if max_num_seqs is not None else n


def shared_prefix_sequences(kv_token_capacity: int, context: int, prefix: int, max_num_seqs: int | None = None, block_tokens: int = KV_BLOCK_TOKENS) -> int:
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


def prefix_sharing_gain(kv_token_capacity: int, context: int, prefix: int, block_tokens: int = KV_BLOCK_TOKENS) -> float:
    """How many times more sequences fit when the prefix is stored once rather than per sequence."""
    plain = concurrent_sequences(kv_token_capacity, context, block_tokens=block_tokens)
    shared = shared_prefix_sequences(kv_token_capacity, context, prefix, block_tokens=block_tokens)
    return shared / plain if plain else math.inf if shared else 1.0


def static_batching_utilization(output_lengths: Sequence[int], batch_size: int | None = None) -> float:
    """Slot utilization of static batching: each batch of B runs until its longest output ends.

    Per batch the slots do sum(g_i) useful steps out of B x max(g_i); requests are batched in the
    order given, and a short last batch still occupies all B slots.
    """
    lengths = list(output_lengths)
    if not lengths:
        return 1.0
    b = batch_size or len(lengths)
    useful = sum(lengths)
    occupied = sum(b * max(lengths[i : i + b]) for i in range(0, len(lengths), b))
    return useful / occupied if occupied else 1.0


def continuous_batching_utilization(output_lengths: Sequence[int], slots: int) -> float:
    """Slot utilization of continuous batching: a finished sequence's slot takes the next request.

    Requests start in the order given on the first free slot; utilization is useful steps over
    slots x the steps until the last one ends. With a steady queue it approaches 1; with nothing
    left to refill it falls back to the static figure.
    """
    lengths = list(output_lengths)
    if not lengths:
        return 1.0
    free_at = [0] * slots
    heapq.heapify(free_at)
    end = 0
    for g in lengths:
        start = heapq.heappop(free_at)
        heapq.heappush(free_at, start + g)
        end = max(end, start + g)
    return sum(lengths) / (slots * end) if end else 1.0


# --- One replica -----------------------------------------------------------------------------


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
        return self.tensor_parallel * self.pipeline_parallel


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
    stored = kv_bytes_per_token(shape.layers, stored_kv_heads(shape.kv_heads, cfg.tensor_parallel), shape.head_dim, elem)
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
        f"{cap.gpus} x {gib(cfg.gpu_memory_bytes)} GPU x {cfg.gpu_memory_utilization:.2f} utilization = {gib(cap.usable_bytes)} usable, "
        f"minus {gib(cap.reserve_bytes)} working reserve"
    )
    layout = f"tensorParallelSize {cfg.tensor_parallel} x pipelineParallelSize {cfg.pipeline_parallel}"
    if not (shape.kv_heads % cfg.tensor_parallel == 0 or cfg.tensor_parallel % shape.kv_heads == 0):
        problems.append(f"tensorParallelSize {cfg.tensor_parallel} neither divides nor is a multiple of the {shape.kv_heads} KV heads of {name}")
    if shape.attention_heads and shape.attention_heads % cfg.tensor_parallel:
        problems.append(f"tensorParallelSize {cfg.tensor_parallel} does not divide the {shape.attention_heads} attention heads of {name}")
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
            f"{name} at {layout} loads ({gib(cap.weights_bytes)} of weights) but its {gib(cap.kv_free_bytes)} KV cache holds "
            f"{cap.kv_tokens:,} tokens, fewer than one sequence of maxModelLen {cap.context:,}: vLLM refuses to start; "
            f"lower spec.engine.maxModelLen to at most {cap.kv_tokens:,}"
        )
        problems.append(msg + _suggestion(shape, cfg, lead=" or"))
    return problems


def _suggestion(shape: ModelShape, cfg: ServingConfig, lead: str = ";") -> str:
    tp = smallest_fitting_tp(shape, cfg)
    if tp is None or tp <= cfg.tensor_parallel:
        more = "raise pipelineParallelSize, use a quantised checkpoint, an fp8 KV cache or GPUs with more memory"
        return f"{lead} no tensorParallelSize up to {TP_CANDIDATES[-1]} fits: {more}"
    at = replica_capacity(shape, replace(cfg, tensor_parallel=tp))
    out = f"{lead} the smallest tensorParallelSize that fits is {tp} ({gib(at.kv_free_bytes)} KV, {at.kv_tokens:,} tokens)"
    rec = recommended_tp(shape, cfg)
    if rec is not None and rec > tp:
        r = replica_capacity(shape, replace(cfg, tensor_parallel=rec))
        out += f"; {rec} is recommended for KV headroom ({gib(r.kv_free_bytes)} KV, {r.kv_tokens:,} tokens)"
    return out


# --- A ModelReplicaSet spec ------------------------------------------------------------------


@dataclass(frozen=True)
class Assessment:
    """The capacity model applied to a spec: figures for status, refusals, and caveats."""

    shape: ModelShape | None
    shape_source: str  # "spec.model.geometry", "catalog:<family>" or "" when unknown
    capacity: ReplicaCapacity | None
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    config: ServingConfig | None = None
    memory_source: str = ""  # where the GPU memory figure came from

    @property
    def ok(self) -> bool:
        return not self.errors

    def status(self) -> CapacityStatus:
        """The status.capacity block; fields the model could not compute stay unset."""
        s = self.shape
        cap = self.capacity
        if s is None:
            return CapacityStatus()
        if cap is None:
            # No GPU memory known: weights and per-token KV are still facts of the model.
            return CapacityStatus(weights_bytes=weights_bytes(s.parameters, s.weight_bits or 16))
        return CapacityStatus(
            weights_bytes=cap.weights_bytes,
            kv_bytes_per_token=cap.kv_bytes_per_token,
            kv_tokens_per_replica=cap.kv_tokens,
            concurrent_sequences=cap.concurrent_sequences,
            context_tokens=cap.context,
            gpu_memory_bytes=self.config.gpu_memory_bytes if self.config else None,
        )


def explicit_shape(parameters: str | int, layers: int, kv_heads: int, head_dim: int, weight_bits: int | None, *, name: str | None, family: str) -> ModelShape:
    """A shape given explicitly; the catalog still knows the context and head count of a named family."""
    known = lookup(name) if name else None
    return ModelShape(
        parameters=parse_parameters(parameters),
        layers=layers,
        kv_heads=kv_heads,
        head_dim=head_dim,
        weight_bits=weight_bits,
        attention_heads=known.attention_heads if known else None,
        max_context=known.max_context if known else None,
        family=family,
    )


def resolve_shape(spec: ModelReplicaSetSpec) -> tuple[ModelShape | None, str]:
    """The model's shape from spec.model.geometry, else from the catalog by name."""
    known = lookup(spec.model.name)
    g = spec.model.geometry
    if g is not None:
        shape = explicit_shape(g.parameters, g.layers, g.kv_heads, g.head_dim, g.weight_bits, name=spec.model.name, family=_short(spec.model.name))
        return shape, "spec.model.geometry"
    if known is not None:
        return replace(known, family=_short(spec.model.name)), f"catalog:{known.family}"
    return None, ""


def _short(name: str) -> str:
    return name.rstrip("/").rsplit("/", 1)[-1]


def gpu_memory_bytes_for(spec: ModelReplicaSetSpec, node_gpu_memory_mib: int | None = None) -> tuple[int | None, str]:
    """GPU memory per GPU and where it came from: the smaller of spec.gpu.memory and the nodes' label.

    NVML reports a little less than the marketing figure (81559 MiB for an "80Gi" H100), so when both
    are known the label wins where it is lower; a known product's label value stands in when neither is set.
    """
    known: list[tuple[int, str]] = []
    if spec.gpu.memory:
        known.append((int(parse_quantity(spec.gpu.memory)), "spec.gpu.memory"))
    if node_gpu_memory_mib:
        known.append((node_gpu_memory_mib * MiB, "node label nvidia.com/gpu.memory"))
    if not known:
        mib = gpu_memory_mib(spec.gpu.product)
        if mib:
            known.append((mib * MiB, f"known memory of {spec.gpu.product}"))
    if not known:
        return None, ""
    return min(known)


def serving_config(spec: ModelReplicaSetSpec, gpu_memory: int) -> ServingConfig:
    e = spec.engine
    return ServingConfig(
        gpu_memory_bytes=gpu_memory,
        tensor_parallel=e.tensor_parallel_size,
        pipeline_parallel=e.pipeline_parallel_size,
        gpu_memory_utilization=e.gpu_memory_utilization,
        kv_cache_dtype=e.kv_cache_dtype,
        dtype=e.dtype,
        max_model_len=e.max_model_len,
        max_num_seqs=e.max_num_seqs,
    )


def assess(spec: ModelReplicaSetSpec, node_gpu_memory_mib: int | None = None) -> Assessment:
    """Status figures and validation errors for a ModelReplicaSet spec.

    node_gpu_memory_mib: the smallest nvidia.com/gpu.memory label among nodes the replicas may use,
    when the caller has the node list; spec.gpu.memory or a known product stands in otherwise.
    Errors mean the replicas cannot serve (refuse the spec); warnings mean figures are missing.
    """
    shape, source = resolve_shape(spec)
    if shape is None:
        return Assessment(
            None,
            "",
            None,
            warnings=(f"model {spec.model.name!r} is not a known family: set spec.model.geometry to get capacity figures and fit checks",),
        )
    memory, memory_source = gpu_memory_bytes_for(spec, node_gpu_memory_mib)
    if memory is None:
        return Assessment(
            shape,
            source,
            None,
            warnings=("GPU memory unknown: set spec.gpu.memory or spec.gpu.product, or label the nodes with nvidia.com/gpu.memory",),
        )
    cfg = serving_config(spec, memory)
    cap = replica_capacity(shape, cfg)
    warnings: list[str] = []
    errors = fit_problems(shape, cfg, cap)
    if cap.context is None:
        warnings.append("context length unknown: set spec.engine.maxModelLen to get concurrent sequences per replica")
    elif spec.engine.max_model_len and shape.max_context and spec.engine.max_model_len > shape.max_context:
        msg = f"spec.engine.maxModelLen {spec.engine.max_model_len:,} exceeds the {shape.max_context:,}-token context of {shape.family}"
        # vLLM refuses a longer context unless told the model was extended (rope scaling overrides) or
        # explicitly allowed to go beyond it.
        extended = any(a.startswith(("--hf-overrides", "--rope-scaling")) for a in spec.engine.extra_args) or any(
            v.name == "VLLM_ALLOW_LONG_MAX_MODEL_LEN" and v.value not in ("", "0") for v in spec.engine.env
        )
        if extended:
            warnings.append(msg + ": relying on the rope-scaling override or VLLM_ALLOW_LONG_MAX_MODEL_LEN in the spec")
        else:
            errors.append(msg + ": vLLM refuses it; lower maxModelLen, or extend the context with --hf-overrides (rope scaling)")
    if not errors and cap.kv_share < KV_HEADROOM_FRACTION:
        rec = recommended_tp(shape, cfg)
        hint = f"; tensorParallelSize {rec} would leave {KV_HEADROOM_FRACTION:.0%}" if rec and rec > cfg.tensor_parallel else ""
        warnings.append(f"only {cap.kv_share:.0%} of usable memory ({gib(cap.kv_free_bytes)}) is left for KV cache{hint}")
    return Assessment(shape, source, cap, tuple(errors), tuple(warnings), cfg, memory_source)


# --- A fleet for a workload ------------------------------------------------------------------


@dataclass(frozen=True)
class WorkloadProfile:
    """An agent workload: who runs how many tasks, and what each model call costs."""

    users: float
    tasks_per_user_per_day: float
    steps_per_task: float
    tokens_in_per_call: int
    tokens_out_per_call: int
    step_latency_s: float  # one model call, end to end, at the target load
    branch_fraction: float = 0.0  # share of steps that fan out to sub-agents
    fan_out: float = 0.0  # sub-agents per branching step
    price_in_per_mtok: float = 0.0
    price_out_per_mtok: float = 0.0
    peak_factor: float = 8.0  # peak call rate over the daily mean
    tool_latency_s: float = 0.0  # tool time between calls, while the task's KV stays warm
    shared_prefix_tokens: int = 0  # system prompt + tool schemas every call shares


@dataclass(frozen=True)
class FleetPlan:
    calls_per_task: float
    tasks_per_day: float
    calls_per_day: float
    tokens_in_per_day: float
    tokens_out_per_day: float
    cost_per_day: float
    cost_per_task: float
    mean_qps: float
    peak_qps: float
    concurrent_calls: float  # Little's law at peak: peak QPS x step latency
    p_task_sees_p99_call: float  # 1 - 0.99^calls: the tail a task inherits
    context_tokens: int
    sequences_per_replica: int | None
    replicas_for_calls: int | None
    warm_tasks: float  # tasks mid-flight at peak, each keeping its history resident
    replicas_for_warm_tasks: int | None
    replicas: int | None
    gpus: int | None
    notes: tuple[str, ...] = field(default=())


def calls_per_task(steps: float, branch_fraction: float = 0.0, fan_out: float = 0.0) -> float:
    """c = s (1 + f g): every step is a call, and a branching step adds g sub-agent calls."""
    return steps * (1 + branch_fraction * fan_out)


def size_fleet(profile: WorkloadProfile, replica: ReplicaCapacity | None = None, max_num_seqs: int | None = None) -> FleetPlan:
    """Calls, tokens, cost, peak concurrency and replicas for a workload on replicas of `replica`'s shape."""
    p = profile
    c = calls_per_task(p.steps_per_task, p.branch_fraction, p.fan_out)
    tasks = p.users * p.tasks_per_user_per_day
    calls = tasks * c
    tin = calls * p.tokens_in_per_call
    tout = calls * p.tokens_out_per_call
    cost = tin / 1e6 * p.price_in_per_mtok + tout / 1e6 * p.price_out_per_mtok
    mean_qps = calls / 86400
    peak_qps = mean_qps * p.peak_factor
    in_flight = peak_qps * p.step_latency_s
    # A task runs its steps one after another (sub-agents in parallel with their parent's step), so it
    # lives s x (call + tool) seconds; by Little's law that many tasks are mid-flight at the peak task rate.
    task_seconds = p.steps_per_task * (p.step_latency_s + p.tool_latency_s)
    warm = tasks / 86400 * p.peak_factor * task_seconds
    context = p.tokens_in_per_call + p.tokens_out_per_call
    notes: list[str] = []
    seqs = r_calls = r_warm = replicas = gpus = None
    if replica is not None:
        if p.shared_prefix_tokens:
            seqs = shared_prefix_sequences(replica.kv_tokens, context, min(p.shared_prefix_tokens, context), max_num_seqs)
        else:
            seqs = concurrent_sequences(replica.kv_tokens, context, max_num_seqs)
        if seqs <= 0:
            notes.append(f"one replica's KV cache ({replica.kv_tokens:,} tokens) cannot hold one {context:,}-token call")
        else:
            r_calls = max(1, math.ceil(in_flight / seqs))
            # Keeping a waiting task's history resident costs its whole prompt of KV.
            r_warm = max(1, math.ceil(warm * p.tokens_in_per_call / replica.kv_tokens)) if replica.kv_tokens else None
            replicas = max(r_calls, r_warm or 0)
            gpus = replicas * replica.gpus
            if r_warm and r_warm > r_calls:
                notes.append("residency, not in-flight calls, sets the replica count: tasks waiting on tools keep their KV warm")
    return FleetPlan(
        calls_per_task=c,
        tasks_per_day=tasks,
        calls_per_day=calls,
        tokens_in_per_day=tin,
        tokens_out_per_day=tout,
        cost_per_day=cost,
        cost_per_task=cost / tasks if tasks else 0.0,
        mean_qps=mean_qps,
        peak_qps=peak_qps,
        concurrent_calls=in_flight,
        p_task_sees_p99_call=1 - 0.99**c,
        context_tokens=context,
        sequences_per_replica=seqs,
        replicas_for_calls=r_calls,
        warm_tasks=warm,
        replicas_for_warm_tasks=r_warm,
        replicas=replicas,
        gpus=gpus,
        notes=tuple(notes),
    )
