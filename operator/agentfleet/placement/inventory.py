"""What the cluster offers the planner: nodes with their GPUs, labels and taints, read from Node and
Pod lists as the Kubernetes API returns them, and the ledger of free GPUs per node and per
topology block that one planning run draws from."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from agentfleet.capacity import parse_quantity

GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_MEMORY_LABEL = "nvidia.com/gpu.memory"  # MiB per GPU, as GPU feature discovery writes it
MODELREPLICASET_LABEL = "agentfleet.io/modelreplicaset"
REPLICA_LABEL = "agentfleet.io/replica"


@dataclass(frozen=True)
class Taint:
    key: str
    value: str = ""
    effect: str = "NoSchedule"

    def __str__(self) -> str:
        return f"{self.key}={self.value}:{self.effect}" if self.value else f"{self.key}:{self.effect}"


@dataclass(frozen=True)
class Toleration:
    key: str | None = None
    operator: str = "Equal"
    value: str | None = None
    effect: str | None = None

    def tolerates(self, taint: Taint) -> bool:
        """Kubernetes' matching: an empty key with Exists tolerates everything; an empty effect any effect."""
        if self.effect and self.effect != taint.effect:
            return False
        if not self.key:
            return self.operator == "Exists"
        if self.key != taint.key:
            return False
        return self.operator == "Exists" or (self.value or "") == taint.value

    def wire(self) -> dict[str, str]:
        out = {"key": self.key} if self.key else {}
        out["operator"] = self.operator
        if self.value is not None and self.operator == "Equal":
            out["value"] = self.value
        if self.effect:
            out["effect"] = self.effect
        return out


@dataclass(frozen=True)
class TopologyKeys:
    node: str = "kubernetes.io/hostname"
    nvlink: str = "agentfleet.io/nvlink-domain"
    block: str = "agentfleet.io/topology-block"
    zone: str = "topology.kubernetes.io/zone"


@dataclass(frozen=True, eq=False)
class Node:
    """One node as the planner sees it. `used` counts GPUs of every pod bound (or pinned) there;
    `held` says how many of those belong to each agentfleet replica (key "namespace/replica")."""

    name: str
    gpus: int  # allocatable
    used: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()
    unschedulable: bool = False
    ready: bool = True
    held: Mapping[str, int] = field(default_factory=dict)

    @property
    def free(self) -> int:
        return max(0, self.gpus - self.used)


# --- The ledger of one planning run ----------------------------------------------------------


class Ledger:
    """Free GPUs per node (by index) and per topology block while one plan is made, with each
    node's topology labels. Blocks and free counts order ties: the block with the fewest free
    GPUs first, so whole blocks stay free for large groups."""

    def __init__(self, nodes: Sequence[Node]) -> None:
        self.nodes = list(nodes)
        self.by_name = {n.name: i for i, n in enumerate(self.nodes)}
        self.free = [n.free for n in self.nodes]
        self.cap = [max(0, n.gpus) for n in self.nodes]
        # Names order ties deterministically.
        self.nseq = [0] * len(self.nodes)
        for rank, i in enumerate(sorted(range(len(self.nodes)), key=lambda j: self.nodes[j].name)):
            self.nseq[i] = rank
        self.keys: TopologyKeys | None = None
        self.block_free: dict[str, int] = {}
        self.bseq: dict[str, int] = {}

    def read_topology(self, keys: TopologyKeys) -> None:
        """Read topology labels with the keys of the first replica's needs; one planning run serves one key set."""
        if self.keys == keys:
            return
        if self.keys is not None:
            raise ValueError("one plan() call must use one set of topology keys")
        self.keys = keys
        self.zone_of = [n.labels.get(keys.zone, "") for n in self.nodes]
        self.label_block = [n.labels.get(keys.block) for n in self.nodes]
        self.nvl_of = [n.labels.get(keys.nvlink) for n in self.nodes]
        # Unlabelled nodes are blocks of their own for tie-breaking; "\0" keeps them apart from labels.
        self.block_of = [
            b if b is not None else "\0" + n.name for b, n in zip(self.label_block, self.nodes, strict=True)
        ]
        for i, b in enumerate(self.block_of):
            self.block_free[b] = self.block_free.get(b, 0) + self.free[i]
        for rank, b in enumerate(sorted(self.block_free)):
            self.bseq[b] = rank

    def bkey(self, b: str) -> tuple[int, int]:
        return (self.block_free[b], self.bseq[b])

    def reserve(self, i: int, g: int) -> None:
        """Hold GPUs before any pool exists (existing placements): plain bookkeeping."""
        g = min(g, self.free[i])
        self.free[i] -= g
        if self.keys is not None:
            self.block_free[self.block_of[i]] -= g


# --- From the Kubernetes API (plain dicts as the API returns them) ---------------------------

_TERMINAL = {"Succeeded", "Failed"}


def _int_quantity(v: Any) -> int:
    try:
        return int(v)  # GPU counts are plain integers; other quantity forms are rare
    except (TypeError, ValueError):
        pass
    try:
        return int(parse_quantity(str(v)))
    except ValueError:
        return 0


def _container_request(c: Mapping[str, Any], resource: str, scale: float = 1) -> int:
    res = c.get("resources") or {}
    req = (res.get("requests") or {}).get(resource)
    if req is None:
        # A limit alone implies an equal request (extended resources, and cpu/memory too).
        req = (res.get("limits") or {}).get(resource)
    if req is None:
        return 0
    if scale == 1:
        return _int_quantity(req)
    try:
        return int(parse_quantity(str(req)) * scale)
    except ValueError:
        return 0


def pod_request(pod: Mapping[str, Any], resource: str, scale: float = 1) -> int:
    """A pod's request of one resource as the scheduler counts it: containers plus restartable
    (sidecar) init containers, or the largest plain init container if that is more (times scale:
    1000 reads cpu in millicores)."""
    spec = pod.get("spec") or {}
    sidecars = sum(
        _container_request(c, resource, scale)
        for c in spec.get("initContainers") or []
        if c.get("restartPolicy") == "Always"
    )
    main = sum(_container_request(c, resource, scale) for c in spec.get("containers") or []) + sidecars
    init = max(
        (
            _container_request(c, resource, scale)
            for c in spec.get("initContainers") or []
            if c.get("restartPolicy") != "Always"
        ),
        default=0,
    )
    return max(main, init)


def pod_gpus(pod: Mapping[str, Any], resource: str = "nvidia.com/gpu") -> int:
    """GPUs a pod holds as the scheduler counts them."""
    return pod_request(pod, resource)


def pinned_node(pod: Mapping[str, Any], node_key: str = "kubernetes.io/hostname") -> str | None:
    """The node a pod is bound to, or the one node its required node affinity allows (a planned
    replica pod or a DaemonSet pod not yet bound still claims that node's GPUs)."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    terms = (
        ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
        or {}
    ).get("nodeSelectorTerms") or []
    if len(terms) != 1:
        return None
    t = terms[0]
    for expr in [*(t.get("matchFields") or []), *(t.get("matchExpressions") or [])]:
        key_ok = expr.get("key") in ("metadata.name", node_key)
        if key_ok and expr.get("operator") == "In" and len(expr.get("values") or []) == 1:
            return expr["values"][0]
    return None


def _ready(node: Mapping[str, Any]) -> bool:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    # kwok and freshly registered nodes may not report conditions yet; don't hide their GPUs.
    return True


def inventory_from_k8s(
    nodes: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    resource: str = "nvidia.com/gpu",
    node_key: str = "kubernetes.io/hostname",
) -> list[Node]:
    """Planner nodes from a Node list and a Pod list as the Kubernetes API returns them (dicts)."""
    used: Counter[str] = Counter()
    held: dict[str, Counter[str]] = defaultdict(Counter)
    for pod in pods:
        if (pod.get("status") or {}).get("phase") in _TERMINAL:
            continue
        # A terminating pod keeps its GPUs until it is gone; count it.
        where = pinned_node(pod, node_key)
        g = pod_gpus(pod, resource)
        if where is None or g == 0:
            continue
        used[where] += g
        meta = pod.get("metadata") or {}
        replica = (meta.get("labels") or {}).get(REPLICA_LABEL)
        if replica:
            held[where][f"{meta.get('namespace', 'default')}/{replica}"] += g
    out = []
    for n in nodes:
        meta = n.get("metadata") or {}
        name = meta.get("name", "")
        spec = n.get("spec") or {}
        alloc = ((n.get("status") or {}).get("allocatable") or {}).get(resource, 0)
        taints = tuple(
            Taint(t.get("key", ""), t.get("value") or "", t.get("effect", "NoSchedule"))
            for t in spec.get("taints") or []
        )
        out.append(
            Node(
                name=name,
                gpus=_int_quantity(alloc),
                used=used.get(name, 0),
                labels=dict(meta.get("labels") or {}),
                taints=taints,
                unschedulable=bool(spec.get("unschedulable")),
                ready=_ready(n),
                held=dict(held.get(name, {})),
            )
        )
    return out


def _quantity(v: Any, scale: float = 1) -> int:
    try:
        return int(parse_quantity(str(v)) * scale)
    except ValueError:
        return 0


def slot_inventory_from_k8s(
    nodes: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    cpu_millis: int,
    memory_bytes: int,
    node_key: str = "kubernetes.io/hostname",
) -> list[Node]:
    """Planner nodes for CPU replicas: a node's "GPUs" are slots, how many pods of the given CPU and
    memory requests its allocatable holds (capacity) and still holds after every pod pinned there
    (free), as the scheduler's resource fit counts them."""
    cpu_used: Counter[str] = Counter()
    mem_used: Counter[str] = Counter()
    for pod in pods:
        if (pod.get("status") or {}).get("phase") in _TERMINAL:
            continue
        where = pinned_node(pod, node_key)
        if where is None:
            continue
        cpu_used[where] += pod_request(pod, "cpu", 1000)
        mem_used[where] += pod_request(pod, "memory")
    out = []
    cpu_need, mem_need = max(1, cpu_millis), max(1, memory_bytes)
    nodes = list(nodes)
    for raw, n in zip(nodes, inventory_from_k8s(nodes, (), node_key=node_key), strict=True):
        alloc = (raw.get("status") or {}).get("allocatable") or {}
        cpu, mem = _quantity(alloc.get("cpu", 0), 1000), _quantity(alloc.get("memory", 0))
        cap = min(cpu // cpu_need, mem // mem_need)
        free = min(max(0, cpu - cpu_used[n.name]) // cpu_need, max(0, mem - mem_used[n.name]) // mem_need)
        out.append(replace(n, gpus=cap, used=max(0, cap - free), held={}))
    return out
