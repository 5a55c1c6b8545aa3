"""Admission of a ModelReplicaSet spec: its model's shape (catalog or explicit), the GPU memory it
will get, and whether it fits, with the numbers and the fix."""

from __future__ import annotations

from dataclasses import dataclass, replace

from agentfleet_contract.modelreplicaset import CapacityStatus, ModelReplicaSetSpec

from agentfleet.capacity.memory import CPU_RESERVE, cpu_kv_cache_gib, reserve_bytes, weights_bytes
from agentfleet.capacity.replica import (
    KV_HEADROOM_FRACTION,
    ReplicaCapacity,
    ServingConfig,
    effective_weight_bits,
    fit_problems,
    recommended_tp,
    replica_capacity,
)
from agentfleet.capacity.units import GiB, MiB, gib, parse_parameters, parse_quantity
from agentfleet.catalog import ModelShape, gpu_memory_mib, lookup


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


def explicit_shape(
    parameters: str | int,
    layers: int,
    kv_heads: int,
    head_dim: int,
    weight_bits: int | None,
    *,
    name: str | None,
    family: str,
) -> ModelShape:
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
        shape = explicit_shape(
            g.parameters,
            g.layers,
            g.kv_heads,
            g.head_dim,
            g.weight_bits,
            name=spec.model.name,
            family=_short(spec.model.name),
        )
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


def cpu_kv_cache(spec: ModelReplicaSetSpec) -> tuple[int, str | None]:
    """VLLM_CPU_KVCACHE_SPACE (GiB) of a device-CPU replica, and why it cannot serve (None when it can).

    On CPU, vLLM's --gpu-memory-utilization is a fraction of the host's RAM, not of the pod's limit, so
    the KV cache is sized explicitly from spec.engine.memory: weights and the backend's reserve first.
    """
    shape, _ = resolve_shape(spec)
    if shape is None:
        return 0, (
            f"model {spec.model.name!r} is not a known family, and spec.engine.device CPU sizes the KV cache from "
            "the weights: set spec.model.geometry"
        )
    memory = int(parse_quantity(spec.engine.memory))
    weights = weights_bytes(shape.parameters, effective_weight_bits(shape, spec.engine.dtype))
    space = cpu_kv_cache_gib(memory, weights, CPU_RESERVE)
    if space < 1:
        need = -(-(weights + CPU_RESERVE + GiB) // GiB)
        return 0, (
            f"spec.engine.memory {spec.engine.memory} leaves no KV cache on CPU after {gib(weights)} of weights and "
            f"the {gib(CPU_RESERVE)} the CPU backend keeps: raise spec.engine.memory to at least {need}Gi"
        )
    return space, None


def _assess_cpu(spec: ModelReplicaSetSpec) -> Assessment:
    shape, source = resolve_shape(spec)
    space, problem = cpu_kv_cache(spec)
    if problem is not None:
        return Assessment(shape, source, None, errors=(problem,))
    assert shape is not None  # cpu_kv_cache reports an unknown shape as a problem
    weights = weights_bytes(shape.parameters, effective_weight_bits(shape, spec.engine.dtype))
    # The GPU capacity model over one "device" whose usable memory leaves exactly the KV space after
    # weights and its reserve: the tokens and sequences then follow as they do on a GPU.
    cfg = ServingConfig(
        gpu_memory_bytes=space * GiB + weights + reserve_bytes(1),
        gpu_memory_utilization=1.0,
        kv_cache_dtype=spec.engine.kv_cache_dtype,
        dtype=spec.engine.dtype,
        max_model_len=spec.engine.max_model_len,
        max_num_seqs=spec.engine.max_num_seqs,
    )
    cap = replica_capacity(shape, cfg)
    errors = []
    if cap.context is not None and not cap.holds_one_sequence:
        errors.append(
            f"the {space} GiB KV cache left on CPU holds {cap.kv_tokens:,} tokens, less than one "
            f"{cap.context:,}-token sequence: raise spec.engine.memory or lower spec.engine.maxModelLen"
        )
    return Assessment(shape, source, cap, tuple(errors), (), None, "spec.engine.memory")


def assess(spec: ModelReplicaSetSpec, node_gpu_memory_mib: int | None = None) -> Assessment:
    """Status figures and validation errors for a ModelReplicaSet spec.

    node_gpu_memory_mib: the smallest nvidia.com/gpu.memory label among nodes the replicas may use,
    when the caller has the node list; spec.gpu.memory or a known product stands in otherwise.
    Errors mean the replicas cannot serve (refuse the spec); warnings mean figures are missing.
    """
    if spec.engine.device == "CPU":
        return _assess_cpu(spec)
    shape, source = resolve_shape(spec)
    if shape is None:
        return Assessment(
            None,
            "",
            None,
            warnings=(
                (
                    f"model {spec.model.name!r} is not a known family: set spec.model.geometry to get capacity "
                    "figures and fit checks"
                ),
            ),
        )
    memory, memory_source = gpu_memory_bytes_for(spec, node_gpu_memory_mib)
    if memory is None:
        return Assessment(
            shape,
            source,
            None,
            warnings=(
                (
                    "GPU memory unknown: set spec.gpu.memory or spec.gpu.product, or label the nodes with "
                    "nvidia.com/gpu.memory"
                ),
            ),
        )
    cfg = serving_config(spec, memory)
    cap = replica_capacity(shape, cfg)
    warnings: list[str] = []
    errors = fit_problems(shape, cfg, cap)
    if cap.context is None:
        warnings.append("context length unknown: set spec.engine.maxModelLen to get concurrent sequences per replica")
    elif spec.engine.max_model_len and shape.max_context and spec.engine.max_model_len > shape.max_context:
        msg = (
            f"spec.engine.maxModelLen {spec.engine.max_model_len:,} exceeds the {shape.max_context:,}-token context "
            f"of {shape.family}"
        )
        # vLLM refuses a longer context unless told the model was extended (rope scaling overrides) or
        # explicitly allowed to go beyond it: it reads VLLM_ALLOW_LONG_MAX_MODEL_LEN as on only for "1" or
        # "true" (any case, spaces stripped), so "false" or "yes" leave it off.
        extended = any(a.startswith(("--hf-overrides", "--rope-scaling")) for a in spec.engine.extra_args) or any(
            v.name == "VLLM_ALLOW_LONG_MAX_MODEL_LEN" and v.value.strip().lower() in ("1", "true")
            for v in spec.engine.env
        )
        if extended:
            warnings.append(msg + ": relying on the rope-scaling override or VLLM_ALLOW_LONG_MAX_MODEL_LEN in the spec")
        else:
            errors.append(
                msg + ": vLLM refuses it; lower maxModelLen, or extend the context with --hf-overrides (rope scaling)"
            )
    if not errors and cap.kv_share < KV_HEADROOM_FRACTION:
        rec = recommended_tp(shape, cfg)
        hint = (
            f"; tensorParallelSize {rec} would leave {KV_HEADROOM_FRACTION:.0%}"
            if rec and rec > cfg.tensor_parallel
            else ""
        )
        warnings.append(
            f"only {cap.kv_share:.0%} of usable memory ({gib(cap.kv_free_bytes)}) is left for KV cache{hint}"
        )
    return Assessment(shape, source, cap, tuple(errors), tuple(warnings), cfg, memory_source)
