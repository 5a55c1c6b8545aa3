"""ModelReplicaSet spec: the GPUs a replica needs, where replicas are placed, and how they start and stop."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agentfleet_contract.common import QUANTITY, Model, Toleration
from agentfleet_contract.rules import Rule


class GPU(Model):
    product: str | None = Field(
        default=None,
        max_length=128,
        description="Required nvidia.com/gpu.product node label, e.g. NVIDIA-H100-80GB-HBM3; unset accepts any.",
    )
    memory: str | None = Field(
        default=None,
        max_length=32,
        pattern=QUANTITY,
        description="Memory of one GPU, e.g. 80Gi; unset reads the nodes' nvidia.com/gpu.memory label.",
    )
    resource_name: str = Field(
        default="nvidia.com/gpu", max_length=253, description="Extended resource that counts GPUs on nodes."
    )


class Placement(Model):
    rules = (
        Rule(
            cel="self.spreadAcross != 'None' || self.spreadMode == 'Preferred'",
            message=(
                "spec.placement.spreadMode Required needs spec.placement.spreadAcross Node or Zone: set spreadAcross "
                "or use spreadMode Preferred"
            ),
            check=lambda p: p.spread_across != "None" or p.spread_mode == "Preferred",
            field_path=".spreadMode",
        ),
    )

    node_key: str = Field(
        default="kubernetes.io/hostname", max_length=316, description="Node label that identifies one node."
    )
    nvlink_domain_key: str = Field(
        default="agentfleet.io/nvlink-domain",
        max_length=316,
        description="Node label naming the NVLink domain; a tensor-parallel group never crosses it.",
    )
    block_key: str = Field(
        default="agentfleet.io/topology-block",
        max_length=316,
        description="Node label naming the topology block (rack); all pods of a multi-node replica share one.",
    )
    zone_key: str = Field(
        default="topology.kubernetes.io/zone", max_length=316, description="Node label naming the availability zone."
    )
    spread_across: Literal["Zone", "Node", "None"] = Field(
        default="Zone", description="Spread replicas across zones or nodes for availability, or not at all."
    )
    spread_mode: Literal["Preferred", "Required"] = Field(
        default="Preferred",
        description="Preferred spreads when it can; Required leaves a replica unplaced rather than co-locate.",
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, max_length=32, description="Labels a node must carry to host a replica."
    )
    tolerations: list[Toleration] = Field(
        default_factory=list,
        max_length=32,
        description="Taints to tolerate beyond the GPU taint, which is tolerated always.",
    )
    priority_class_name: str | None = Field(default=None, max_length=253, description="PriorityClass of the vLLM pods.")


class Lifecycle(Model):
    rules = (
        Rule(
            cel="self.maxRestartBackoffSeconds >= self.restartBackoffSeconds",
            message="spec.lifecycle.maxRestartBackoffSeconds must be at least restartBackoffSeconds: raise the maximum",
            check=lambda lc: lc.max_restart_backoff_seconds >= lc.restart_backoff_seconds,
            field_path=".maxRestartBackoffSeconds",
        ),
    )

    drain_timeout_seconds: int = Field(
        default=600,
        ge=0,
        le=86400,
        description="Longest a removed replica waits for its running requests before deletion.",
    )
    startup_timeout_seconds: int = Field(
        default=1800, ge=60, le=86400, description="How long a replica may load its model before it counts as failed."
    )
    restart_backoff_seconds: int = Field(
        default=30, ge=1, le=3600, description="Delay before a failed multi-node group restarts; doubles per restart."
    )
    max_restart_backoff_seconds: int = Field(
        default=900, ge=1, le=86400, description="Upper bound of the group-restart delay."
    )
