"""What the planner is asked for and what it answers: a replica's needs on a node set, and per
replica an assignment (nodes and GPUs) or the exact reason it has none."""

from __future__ import annotations

from dataclasses import dataclass

from agentfleet.placement.inventory import Toleration, TopologyKeys


@dataclass(frozen=True)
class ReplicaNeeds:
    """What every replica of one ModelReplicaSet needs from a node set."""

    owner: str  # "namespace/name" of the ModelReplicaSet; spread counts per owner
    gpus: int  # TP x PP
    tensor_parallel: int = 1
    product: str | None = None
    min_memory_mib: int | None = None
    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: tuple[Toleration, ...] = ()
    spread_across: str = "Zone"  # Zone | Node | None
    spread_mode: str = "Preferred"  # Preferred | Required
    keys: TopologyKeys = TopologyKeys()
    resource: str = "nvidia.com/gpu"
    # device CPU: a replica takes one slot of a node, a slot being the pod's CPU and memory requests
    # (cpu_millis, memory_bytes) out of what the node has left; `gpus` is then 1 (one slot).
    device: str = "GPU"
    cpu_millis: int = 0
    memory_bytes: int = 0

    @property
    def eligibility(self) -> tuple:
        return (
            self.product,
            self.min_memory_mib,
            self.node_selector,
            self.tolerations,
            self.resource,
            self.keys,
            self.device,
            self.cpu_millis,
            self.memory_bytes,
        )

    @property
    def on_cpu(self) -> bool:
        return self.device == "CPU"

    @property
    def pipeline_parallel(self) -> int:
        return self.gpus // self.tensor_parallel

    def all_tolerations(self) -> tuple[Toleration, ...]:
        # GPU nodes carry a NoSchedule taint keyed by the GPU resource; GPU serving pods always tolerate
        # it, CPU ones never (the render adds no such toleration: a CPU replica stays off GPU nodes).
        if self.on_cpu:
            return self.tolerations
        return (Toleration(key=self.resource, operator="Exists", effect="NoSchedule"), *self.tolerations)

    def what(self, n: int | None = None) -> str:
        if self.on_cpu:
            gib = self.memory_bytes / 2**30
            return f"{self.cpu_millis / 1000:g} CPU and {gib:g} GiB of memory"
        n = self.gpus if n is None else n
        return f"{n} x {self.product}" if self.product else f"{n} GPU" + ("s" if n != 1 else "")


def pod_shape(d: ReplicaNeeds, maxcap: int) -> tuple[int, int, bool] | None:
    """(pods, GPUs per pod, whether a tensor-parallel group spans nodes) for nodes of at most maxcap GPUs.

    A replica that fits on one node is one pod, so its tensor-parallel group never leaves the
    node's NVLink domain; a larger one is a gang of equal pods."""
    if maxcap <= 0:
        return None
    g, tp, pp = d.gpus, d.tensor_parallel, d.pipeline_parallel
    if g <= maxcap:
        return 1, g, False
    if tp <= maxcap:
        # Whole tensor-parallel groups per node; pipeline stages split across nodes.
        per = max(s for s in range(1, pp + 1) if pp % s == 0 and tp * s <= maxcap)
        return g // (tp * per), tp * per, False
    per = max(s for s in range(1, maxcap + 1) if tp % s == 0)
    return g // per, per, True


@dataclass(frozen=True)
class ReplicaRequest:
    key: str  # "namespace/replica", unique in the cluster
    needs: ReplicaNeeds


@dataclass(frozen=True)
class Assignment:
    """A placed replica: one pod per node, leader first, each with gpus_per_node GPUs."""

    key: str
    owner: str
    nodes: tuple[str, ...]
    gpus_per_node: int
    block: str | None = None
    zone: str | None = None

    @property
    def gpus(self) -> int:
        return self.gpus_per_node * len(self.nodes)

    @property
    def multi_node(self) -> bool:
        return len(self.nodes) > 1


@dataclass(frozen=True)
class Unplaced:
    key: str
    owner: str
    reason: str  # CamelCase, for a condition or Event reason
    message: str


@dataclass(frozen=True)
class Plan:
    kept: tuple[Assignment, ...]  # existing placements left as they were
    placed: tuple[Assignment, ...]  # new placements, in the order they were made
    unplaced: tuple[Unplaced, ...]
    displaced: tuple[str, ...] = ()  # keys of existing placements whose nodes left the inventory
