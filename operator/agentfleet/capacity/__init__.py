"""Capacity model of one vLLM replica, and the fleet a workload needs.

Pure arithmetic shared by admission (a spec whose model cannot fit is refused, with the numbers
and the smallest tensor-parallel size that would fit), status (KV tokens and concurrent sequences
per replica) and the `agentfleet` CLI (fleet sizing from a workload profile). Parts: units,
memory (bytes and tokens of one replica), replica (fit and tensor-parallel suggestion),
admission (a ModelReplicaSet spec), fleet (sizing for a workload).
"""

from agentfleet.capacity.admission import (
    Assessment,
    assess,
    explicit_shape,
    gpu_memory_bytes_for,
    resolve_shape,
    serving_config,
)
from agentfleet.capacity.fleet import FleetPlan, WorkloadProfile, calls_per_task, size_fleet
from agentfleet.capacity.memory import (
    KV_BLOCK_TOKENS,
    RESERVE_PER_GPU,
    RESERVE_PER_GPU_SHARDED,
    blocks_for,
    concurrent_sequences,
    kv_bytes_per_token,
    kv_element_bytes,
    kv_tokens,
    reserve_bytes,
    shared_prefix_sequences,
    stored_kv_heads,
    usable_bytes,
    weights_bytes,
)
from agentfleet.capacity.replica import (
    KV_HEADROOM_FRACTION,
    TP_CANDIDATES,
    ReplicaCapacity,
    ServingConfig,
    effective_weight_bits,
    fit_problems,
    recommended_tp,
    replica_capacity,
    smallest_fitting_tp,
)
from agentfleet.capacity.units import (
    CapacityError,
    GiB,
    KiB,
    MiB,
    format_quantity,
    gib,
    parse_parameters,
    parse_quantity,
)

__all__ = [
    "Assessment",
    "CapacityError",
    "FleetPlan",
    "GiB",
    "KV_BLOCK_TOKENS",
    "KV_HEADROOM_FRACTION",
    "KiB",
    "MiB",
    "RESERVE_PER_GPU",
    "RESERVE_PER_GPU_SHARDED",
    "ReplicaCapacity",
    "ServingConfig",
    "TP_CANDIDATES",
    "WorkloadProfile",
    "assess",
    "blocks_for",
    "calls_per_task",
    "concurrent_sequences",
    "effective_weight_bits",
    "explicit_shape",
    "fit_problems",
    "format_quantity",
    "gib",
    "gpu_memory_bytes_for",
    "kv_bytes_per_token",
    "kv_element_bytes",
    "kv_tokens",
    "parse_parameters",
    "parse_quantity",
    "recommended_tp",
    "replica_capacity",
    "reserve_bytes",
    "resolve_shape",
    "serving_config",
    "shared_prefix_sequences",
    "size_fleet",
    "smallest_fitting_tp",
    "stored_kv_heads",
    "usable_bytes",
    "weights_bytes",
]
