"""Admission of a ModelReplicaSet spec: its model's shape (catalog or explicit), the GPU memory it
will get, and whether it fits, with the numbers and the fix."""

from __future__ import annotations

from dataclasses import dataclass, replace

from agentfleet_contract.modelreplicaset import CapacityStatus, ModelReplicaSetSpec

from agentfleet.capacity.memory import weights_bytes
from agentfleet.capacity.replica import (
    KV_HEADROOM_FRACTION,
    ReplicaCapacity,
    ServingConfig,
    fit_problems,
    recommended_tp,
    replica_capacity,
)
from agentfleet.capacity.units import MiB, gib, parse_parameters, parse_quantity
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
