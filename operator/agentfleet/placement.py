"""Topology-aware placement of model replicas on GPU nodes: a pure planner.

Input: the node inventory (allocatable GPUs, GPUs already held by pods, GPU product and memory
labels, topology labels, taints, cordons) and the replicas to place, each a tensor-parallel group
of TP x PP GPUs. Output: per replica the nodes and GPU counts it gets, or the exact reason it gets
none. The controller writes a plan into each pod as required node affinity, so the real
kube-scheduler still binds (and still refuses if the cluster moved under the plan).

Rules, in order of precedence:
- Eligibility: product and memory labels, nodeSelector, taints (the GPU taint is tolerated
  always), cordons and NotReady nodes.
- A replica that fits on one node is one pod on one node: its tensor-parallel group then never
  leaves the node's NVLink domain. A larger one is a gang of equal pods, all inside one topology
  block (and one NVLink domain when a tensor-parallel group itself spans nodes), placed all or
  nothing.
- Spread across zones or nodes (Preferred: fewest of the owner's replicas first; Required: the
  max-skew-1 rule of Kubernetes topology spread, over the domains that could ever host the replica).
- Best fit: the node whose free GPUs leave the least remainder, ties to the topology block with
  the fewest free GPUs, so whole nodes and whole blocks stay free for large groups; groups are
  placed largest first.
- Stability: replicas already placed keep their nodes; only new ones are planned.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentfleet_contract.modelreplicaset import ModelReplicaSetSpec, ReplicaPlacement

from agentfleet.capacity import MiB, parse_quantity

GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_MEMORY_LABEL = "nvidia.com/gpu.memory"  # MiB per GPU, as GPU feature discovery writes it
MODELREPLICASET_LABEL = "agentfleet.io/modelreplicaset"
REPLICA_LABEL = "agentfleet.io/replica"

# spec.gpu.memory is written the marketing way ("80Gi", "24Gi") while the label carries NVML's total,
# a few percent lower (81559 MiB on an H100 80GB, 23034 MiB on an L4 24GB). A node qualifies when its
# label reaches this share of the request.
MEMORY_MATCH_TOLERANCE = 0.9


# --- Inventory -------------------------------------------------------------------------------


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


# --- Requests and results --------------------------------------------------------------------


@dataclass(frozen=True)
class Demand:
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

    @property
    def eligibility(self) -> tuple:
        return (self.product, self.min_memory_mib, self.node_selector, self.tolerations, self.resource, self.keys)

    @property
    def pipeline_parallel(self) -> int:
        return self.gpus // self.tensor_parallel

    def all_tolerations(self) -> tuple[Toleration, ...]:
        # GPU nodes carry a NoSchedule taint keyed by the GPU resource; serving pods always tolerate it.
        return (Toleration(key=self.resource, operator="Exists", effect="NoSchedule"), *self.tolerations)

    def what(self, n: int | None = None) -> str:
        n = self.gpus if n is None else n
        return f"{n} x {self.product}" if self.product else f"{n} GPU" + ("s" if n != 1 else "")


@dataclass(frozen=True)
class ReplicaRequest:
    key: str  # "namespace/replica", unique in the cluster
    demand: Demand


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

    def assignment(self, key: str) -> Assignment | None:
        return next((a for a in (*self.kept, *self.placed) if a.key == key), None)

    def problem(self, key: str) -> Unplaced | None:
        return next((u for u in self.unplaced if u.key == key), None)


# --- Eligibility -----------------------------------------------------------------------------


def _memory_mib(labels: Mapping[str, str]) -> int | None:
    raw = labels.get(GPU_MEMORY_LABEL)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def ineligibility(node: Node, d: Demand, tolerations: tuple[Toleration, ...] | None = None) -> str | None:
    """Why this node can never host a pod of the demand, or None if it can (capacity aside)."""
    if not node.ready:
        return "are not Ready"
    if node.unschedulable:
        return "are cordoned"
    if node.gpus <= 0:
        return f"have no {d.resource}"
    if d.product and node.labels.get(GPU_PRODUCT_LABEL) != d.product:
        return f"are not {d.product}"
    if d.min_memory_mib:
        mem = _memory_mib(node.labels)
        if mem is None:
            return f"have no {GPU_MEMORY_LABEL} label to check spec.gpu.memory against"
        if mem < d.min_memory_mib * MEMORY_MATCH_TOLERANCE:
            return f"have less than {d.min_memory_mib} MiB per GPU"
    for k, v in d.node_selector:
        if node.labels.get(k) != v:
            return "do not match spec.placement.nodeSelector"
    tols = tolerations if tolerations is not None else d.all_tolerations()
    for t in node.taints:
        if t.effect in ("NoSchedule", "NoExecute") and not any(tol.tolerates(t) for tol in tols):
            return f"have the untolerated taint {t}"
    return None


def eligible_gpu_memory_mib(nodes: Iterable[Node], d: Demand) -> int | None:
    """Smallest GPU memory label among nodes that could host the demand: the capacity model's input."""
    mems = [m for n in nodes if ineligibility(n, d) is None and (m := _memory_mib(n.labels))]
    return min(mems) if mems else None


# --- The planner -----------------------------------------------------------------------------


class _ZoneIndex:
    """Nodes of one pool in one zone, bucketed by free GPUs; within a bucket, blocks ordered by
    their free GPUs (fewest first) so that ties go to the most used block."""

    __slots__ = ("buckets", "order")

    def __init__(self) -> None:
        self.buckets: dict[int, dict[str, set[int]]] = defaultdict(dict)
        self.order: dict[int, list[tuple[int, int, str]]] = defaultdict(list)

    def add(self, i: int, f: int, b: str, bkey: tuple[int, int]) -> None:
        if f <= 0:
            return
        members = self.buckets[f].get(b)
        if members is None:
            self.buckets[f][b] = {i}
            bisect.insort(self.order[f], (*bkey, b))
        else:
            members.add(i)

    def remove(self, i: int, f: int, b: str, bkey: tuple[int, int]) -> None:
        if f <= 0:
            return
        members = self.buckets[f][b]
        members.discard(i)
        if not members:
            del self.buckets[f][b]
            lst = self.order[f]
            del lst[bisect.bisect_left(lst, (*bkey, b))]

    def rekey(self, b: str, old: tuple[int, int], new: tuple[int, int]) -> None:
        for f, blocks in self.buckets.items():
            if b in blocks:
                lst = self.order[f]
                del lst[bisect.bisect_left(lst, (*old, b))]
                bisect.insort(lst, (*new, b))


class _Pool:
    """The nodes eligible for one eligibility signature, indexed for best-fit queries."""

    def __init__(self, demand: Demand) -> None:
        self.demand = demand
        self.nodes: list[int] = []
        self.excluded: Counter[str] = Counter()
        self.total = 0
        self.maxcap = 0
        self.zones: dict[str, _ZoneIndex] = {}
        self.block_nodes: dict[str, list[int]] = defaultdict(list)  # labelled blocks only
        self.member: set[int] = set()
        self.block_zones: dict[str, set[str]] = defaultdict(set)  # zones where a block has nodes of this pool
        # A labelled block whose nodes sit in several zones: the per-zone indexes then each see
        # only part of it, so gangs take the general path.
        self.zone_split_blocks = False
        self.capable: dict[int, tuple[list[int], set[str]]] = {}


class _Planner:
    def __init__(self, nodes: Sequence[Node]) -> None:
        self.nodes = list(nodes)
        self.by_name = {n.name: i for i, n in enumerate(self.nodes)}
        self.free = [n.free for n in self.nodes]
        self.cap = [max(0, n.gpus) for n in self.nodes]
        # Names order ties deterministically.
        self.nseq = [0] * len(self.nodes)
        for rank, i in enumerate(sorted(range(len(self.nodes)), key=lambda j: self.nodes[j].name)):
            self.nseq[i] = rank
        self.pools: dict[tuple, _Pool] = {}
        self.node_pools: list[list[_Pool]] = [[] for _ in self.nodes]
        self.block_pools: dict[str, list[_Pool]] = defaultdict(list)
        self._keys: TopologyKeys | None = None
        self._sigs: list[tuple] | None = None
        self.block_free: dict[str, int] = {}
        self.bseq: dict[str, int] = {}
        # Spread bookkeeping per owner: replicas per zone and per node.
        self.zone_count: dict[str, Counter[str]] = defaultdict(Counter)
        self.node_count: dict[str, Counter[int]] = defaultdict(Counter)

    # Topology labels are read with the keys of the first demand; one planner run serves one key set.
    def _topology(self, keys: TopologyKeys) -> None:
        if self._keys == keys:
            return
        if self._keys is not None:
            raise ValueError("one plan() call must use one set of topology keys")
        self._keys = keys
        self.zone_of = [n.labels.get(keys.zone, "") for n in self.nodes]
        self.label_block = [n.labels.get(keys.block) for n in self.nodes]
        self.nvl_of = [n.labels.get(keys.nvlink) for n in self.nodes]
        # Unlabelled nodes are blocks of their own for tie-breaking; "\0" keeps them apart from labels.
        self.block_of = [b if b is not None else "\0" + n.name for b, n in zip(self.label_block, self.nodes, strict=True)]
        for i, b in enumerate(self.block_of):
            self.block_free[b] = self.block_free.get(b, 0) + self.free[i]
        for rank, b in enumerate(sorted(self.block_free)):
            self.bseq[b] = rank

    def _base_sig(self) -> list[tuple]:
        if self._sigs is None:
            self._sigs = [(n.ready, n.unschedulable, n.gpus > 0, n.labels.get(GPU_PRODUCT_LABEL), n.labels.get(GPU_MEMORY_LABEL), n.taints) for n in self.nodes]
        return self._sigs

    def bkey(self, b: str) -> tuple[int, int]:
        return (self.block_free[b], self.bseq[b])

    def pool(self, d: Demand) -> _Pool:
        sig = d.eligibility
        p = self.pools.get(sig)
        if p is not None:
            return p
        self._topology(d.keys)
        p = self.pools[sig] = _Pool(d)
        seen_blocks: set[str] = set()
        tols = d.all_tolerations()
        # Nodes look alike: decide once per distinct set of the attributes that matter.
        verdicts: dict[tuple, str | None] = {}
        sel_keys = [k for k, _ in d.node_selector]
        base = self._base_sig()
        cap, free, zone_of, block_of, label_block = self.cap, self.free, self.zone_of, self.block_of, self.label_block
        for i, n in enumerate(self.nodes):
            sig = (base[i], *(n.labels.get(k) for k in sel_keys)) if sel_keys else base[i]
            why = verdicts.get(sig, "?")
            if why == "?":
                why = verdicts[sig] = ineligibility(n, d, tols)
            if why:
                p.excluded[why] += 1
                continue
            p.nodes.append(i)
            p.member.add(i)
            if cap[i] > p.maxcap:
                p.maxcap = cap[i]
            b = block_of[i]
            z = zone_of[i]
            zi = p.zones.get(z)
            if zi is None:
                zi = p.zones[z] = _ZoneIndex()
            zi.add(i, free[i], b, self.bkey(b))
            p.block_zones[b].add(z)
            self.node_pools[i].append(p)
            if b not in seen_blocks:
                seen_blocks.add(b)
                self.block_pools[b].append(p)
            if label_block[i] is not None:
                p.block_nodes[b].append(i)
        p.total = len(p.nodes)
        p.zone_split_blocks = any(len(p.block_zones[b]) > 1 for b in p.block_nodes)
        return p

    def take(self, i: int, g: int) -> None:
        old, new = self.free[i], self.free[i] - g
        b = self.block_of[i]
        bk = self.bkey(b)
        for p in self.node_pools[i]:
            zi = p.zones[self.zone_of[i]]
            zi.remove(i, old, b, bk)
            zi.add(i, new, b, bk)
        self.free[i] = new
        self.block_free[b] -= g
        nk = self.bkey(b)
        for p in self.block_pools[b]:
            for z in p.block_zones[b]:
                p.zones[z].rekey(b, bk, nk)

    def reserve(self, i: int, g: int) -> None:
        """Hold GPUs before any pool exists (existing placements): plain bookkeeping."""
        g = min(g, self.free[i])
        self.free[i] -= g
        if self._keys is not None:
            self.block_free[self.block_of[i]] -= g

    # --- shapes ---

    @staticmethod
    def shape(d: Demand, maxcap: int) -> tuple[int, int, bool] | None:
        """(pods, GPUs per pod, whether a tensor-parallel group spans nodes) for nodes of at most maxcap GPUs."""
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

    # --- spread ---

    # Spread domains are those that could ever host a pod of this size (capacity, not current use),
    # as Kubernetes counts domains of every node passing the pod's node affinity.
    def _capable(self, p: _Pool, per_pod: int) -> tuple[list[int], set[str]]:
        hit = p.capable.get(per_pod)
        if hit is None:
            nodes = [i for i in p.nodes if self.cap[i] >= per_pod]
            hit = p.capable[per_pod] = (nodes, {self.zone_of[i] for i in nodes})
        return hit

    def _spread_zone_min(self, d: Demand, p: _Pool, per_pod: int) -> int:
        counts = self.zone_count[d.owner]
        return min((counts[z] for z in self._capable(p, per_pod)[1]), default=0)

    def _spread_node_min(self, d: Demand, p: _Pool, per_pod: int) -> int:
        counts = self.node_count[d.owner]
        capable = self._capable(p, per_pod)[0]
        occupied = sum(1 for i, c in counts.items() if c and self.cap[i] >= per_pod and i in p.member)
        if occupied < len(capable):
            return 0
        return min((counts[i] for i in capable), default=0)

    def record(self, a: Assignment) -> None:
        idx = [self.by_name[n] for n in a.nodes]
        self.zone_count[a.owner][self.zone_of[idx[0]] if self._keys else (a.zone or "")] += 1
        for i in idx:
            self.node_count[a.owner][i] += 1

    # --- single-node replicas ---

    def _best_in_zone(self, zi: _ZoneIndex, g: int, maxf: int, ok: Callable[[int], bool] | None) -> tuple | None:
        for f in range(g, maxf + 1):
            lst = zi.order.get(f)
            if not lst:
                continue
            for bf, bs, b in lst:
                members = zi.buckets[f][b]
                cands = sorted(members, key=self.nseq.__getitem__) if ok else [min(members, key=self.nseq.__getitem__)]
                for i in cands:
                    if ok is None or ok(i):
                        return (f - g, bf, bs, self.nseq[i], i)
        return None

    def place_single(self, d: Demand, p: _Pool, g: int) -> int | None:
        owner_z = self.zone_count[d.owner]
        owner_n = self.node_count[d.owner]
        required = d.spread_mode == "Required"
        if d.spread_across == "Node":
            floor = self._spread_node_min(d, p, g)
            limits = [floor] if required else sorted({floor, *owner_n.values()} | {max(owner_n.values(), default=0) + 1})
            for lim in limits:
                best = None
                for zi in p.zones.values():
                    c = self._best_in_zone(zi, g, p.maxcap, (lambda i, lim=lim: owner_n[i] <= lim) if owner_n else None)
                    if c and (best is None or c < best):
                        best = c
                if best:
                    return best[-1]
            return None
        zmin = self._spread_zone_min(d, p, g) if d.spread_across == "Zone" else 0
        best = None
        for z in sorted(p.zones):
            pen = owner_z[z] if d.spread_across == "Zone" else 0
            if required and d.spread_across == "Zone" and pen > zmin:
                continue
            c = self._best_in_zone(p.zones[z], g, p.maxcap, None)
            if c and (best is None or (pen, *c) < best):
                best = (pen, *c)
        return best[-1] if best else None

    # --- gangs ---

    def place_gang(self, d: Demand, p: _Pool, pods: int, per: int, nvlink: bool) -> list[int] | None:
        owner_z = self.zone_count[d.owner]
        owner_n = self.node_count[d.owner]
        required = d.spread_mode == "Required"
        zmin = self._spread_zone_min(d, p, per) if d.spread_across == "Zone" else 0
        # Wholly free nodes hold none of the owner's replicas, so node spread never excludes them here.
        if per == p.maxcap and not nvlink and not p.zone_split_blocks:
            return self._place_whole_node_gang(d, p, pods, per, zmin)
        nlim = self._spread_node_min(d, p, per) if d.spread_across == "Node" and required else None
        best = None
        for b, members in p.block_nodes.items():
            z = self.zone_of[members[0]]
            pen = owner_z[z] if d.spread_across == "Zone" else 0
            if required and d.spread_across == "Zone" and pen > zmin:
                continue
            if self.block_free[b] < pods * per:
                continue
            capable = [i for i in members if self.free[i] >= per and (nlim is None or owner_n[i] <= nlim)]
            if len(capable) < pods:
                continue
            groups = [capable]
            if nvlink:
                by: dict[str | None, list[int]] = defaultdict(list)
                for i in capable:
                    if self.nvl_of[i] is not None:
                        by[self.nvl_of[i]].append(i)
                groups = [v for v in by.values() if len(v) >= pods]
            for grp in groups:
                npen = sum(owner_n[i] for i in grp) if d.spread_across == "Node" else 0
                grp = sorted(grp, key=lambda i: (owner_n[i] if d.spread_across == "Node" else 0, self.free[i], self.nseq[i]))[:pods]
                rem = sum(self.free[i] - per for i in grp)
                score = (pen, npen if d.spread_across == "Node" else 0, rem, self.block_free[b], self.bseq[b])
                if best is None or score < best[0]:
                    best = (score, grp)
        return best[1] if best else None

    def _place_whole_node_gang(self, d: Demand, p: _Pool, pods: int, per: int, zmin: int) -> list[int] | None:
        """The common gang: pods as large as the largest node, so only wholly free nodes qualify and
        none leaves a remainder. The best block is the first, in (free GPUs, name) order, that has
        enough of them: the zone indexes keep exactly that order."""
        owner_z = self.zone_count[d.owner]
        best = None
        for z, zi in p.zones.items():
            pen = owner_z[z] if d.spread_across == "Zone" else 0
            if d.spread_mode == "Required" and d.spread_across == "Zone" and pen > zmin:
                continue
            members = zi.buckets.get(per, {})
            for bf, bs, b in zi.order.get(per, ()):
                if b in p.block_nodes and len(members[b]) >= pods:
                    if best is None or (pen, bf, bs) < best[0]:
                        best = ((pen, bf, bs), sorted(members[b], key=self.nseq.__getitem__)[:pods])
                    break
        return best[1] if best else None

    # --- messages ---

    def largest_free(self, p: _Pool) -> tuple[int, str | None]:
        best, where = 0, None
        for i in p.nodes:
            if self.free[i] > best or (self.free[i] == best and where is not None and self.nodes[i].name < where):
                best, where = self.free[i], self.nodes[i].name
        return best, where

    def why_not(self, d: Demand, p: _Pool, shape: tuple[int, int, bool] | None) -> tuple[str, str]:
        keys = self._keys or d.keys
        excluded = ", ".join(f"{n} {why}" for why, n in sorted(p.excluded.items(), key=lambda kv: (-kv[1], kv[0])))
        if not p.nodes:
            return "NoEligibleNodes", f"needs {d.what()} but no node qualifies: of {len(self.nodes)} nodes, {excluded or 'none exist'}"
        if shape is None:
            return "NoEligibleNodes", f"needs {d.what()} but no eligible node has any"
        pods, per, nvlink = shape
        big, where = self.largest_free(p)
        free_total = sum(self.free[i] for i in p.nodes)
        tail = f" ({p.total} eligible nodes, {free_total} free GPUs in all"
        tail += f"; excluded: {excluded})" if excluded else ")"
        if pods == 1:
            head = f"needs {d.what()} in one nvlink domain (one node)"
            if d.spread_mode == "Required" and d.spread_across != "None" and big >= per:
                spread = f"spread Required across {d.spread_across} leaves no allowed domain with room: {self._spread_text(d, p, per)}"
                return "SpreadConstraint", f"{head}; {spread}{tail}"
            room = f"the largest free block is {big} on node {where}" if where else "no eligible node has a free GPU"
            return "InsufficientGPUs", f"{head}; {room}{tail}"
        unit = f"one {keys.nvlink} domain of one {keys.block} block" if nvlink else f"one topology block ({keys.block})"
        head = f"needs {pods} nodes x {d.what(per)} ({d.gpus} GPUs, TP {d.tensor_parallel} x PP {d.pipeline_parallel}) in {unit}"
        if not p.block_nodes:
            return "NoTopologyBlock", f"{head}; no eligible node carries the {keys.block} label" + tail
        bb, bn = None, -1
        for b, members in sorted(p.block_nodes.items()):
            n = sum(1 for i in members if self.free[i] >= per)
            if n > bn:
                bb, bn = b, n
        msg = f"{head}; the best block is {bb} with {bn} of {pods} nodes having >= {per} free GPUs"
        msg += f"; the largest free block is {big} on node {where}" if where else ""
        if bn >= pods and d.spread_mode == "Required" and d.spread_across != "None":
            return (
                "SpreadConstraint",
                f"{head}; spread Required across {d.spread_across} leaves no allowed domain with room: {self._spread_text(d, p, per)}" + tail,
            )
        return "InsufficientGPUs", msg + tail

    def _spread_text(self, d: Demand, p: _Pool, per: int) -> str:
        if d.spread_across == "Zone":
            counts = self.zone_count[d.owner]
            zones = sorted({self.zone_of[i] for i in p.nodes if self.cap[i] >= per})
            return ", ".join(f"{z or '(no zone)'} holds {counts[z]}" for z in zones)
        counts_n = self.node_count[d.owner]
        full = sum(1 for i in p.nodes if counts_n[i])
        return f"{full} of {p.total} eligible nodes already hold a replica of {d.owner}"


def plan(nodes: Sequence[Node], requests: Sequence[ReplicaRequest], existing: Sequence[Assignment] = ()) -> Plan:
    """Place the requested replicas that have no placement yet.

    `existing` are placements already made (this and other ModelReplicaSets'): each keeps its nodes
    and holds its GPUs there, less what its own bound pods already count in Node.used (Node.held),
    so a placement whose pods are not yet created is never given away. An existing placement on a
    node that left the inventory is dropped and reported in `displaced`; if its key is requested it
    is planned afresh.
    """
    pl = _Planner(nodes)
    keys = next((r.demand.keys for r in requests), None)
    if keys is not None:
        pl._topology(keys)
    kept: list[Assignment] = []
    displaced: list[str] = []
    for a in existing:
        idx = [pl.by_name.get(n) for n in a.nodes]
        if not a.nodes or any(i is None for i in idx):
            displaced.append(a.key)
            continue
        for i in idx:
            held = pl.nodes[i].held.get(a.key, 0)
            pl.reserve(i, max(0, a.gpus_per_node - held))
        kept.append(a)
        if pl._keys is not None:
            pl.record(a)
    kept_keys = {a.key for a in kept}
    todo = [r for r in requests if r.key not in kept_keys]

    # Shapes depend on the largest node a pool offers, so build pools before ordering.
    shaped = []
    for r in todo:
        p = pl.pool(r.demand)
        shaped.append((r, p, pl.shape(r.demand, p.maxcap)))
    # Largest groups first (by GPUs, then GPUs per pod); the key keeps the order stable.
    shaped.sort(key=lambda t: (-t[0].demand.gpus, -(t[2][1] if t[2] else 0), t[0].key))

    placed: list[Assignment] = []
    unplaced: list[Unplaced] = []
    for r, p, shape in shaped:
        d = r.demand
        chosen: list[int] | None = None
        if shape is not None:
            pods, per, nvlink = shape
            if pods == 1:
                i = pl.place_single(d, p, per)
                chosen = [i] if i is not None else None
            else:
                chosen = pl.place_gang(d, p, pods, per, nvlink)
        if not chosen:
            reason, msg = pl.why_not(d, p, shape)
            unplaced.append(Unplaced(r.key, d.owner, reason, msg))
            continue
        per = shape[1]
        for i in chosen:
            pl.take(i, per)
        lead = chosen[0]
        a = Assignment(
            key=r.key,
            owner=d.owner,
            nodes=tuple(pl.nodes[i].name for i in chosen),
            gpus_per_node=per,
            block=pl.label_block[lead],
            zone=pl.zone_of[lead] or None,
        )
        pl.record(a)
        placed.append(a)
    return Plan(tuple(kept), tuple(placed), tuple(unplaced), tuple(displaced))


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


def _container_gpus(c: Mapping[str, Any], resource: str) -> int:
    res = c.get("resources") or {}
    req = (res.get("requests") or {}).get(resource)
    if req is None:
        # Extended resources: a limit alone implies an equal request.
        req = (res.get("limits") or {}).get(resource)
    return _int_quantity(req) if req is not None else 0


def pod_gpus(pod: Mapping[str, Any], resource: str = "nvidia.com/gpu") -> int:
    """GPUs a pod holds as the scheduler counts them: containers plus restartable (sidecar) init
    containers, or the largest plain init container if that is more."""
    spec = pod.get("spec") or {}
    sidecars = sum(_container_gpus(c, resource) for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always")
    main = sum(_container_gpus(c, resource) for c in spec.get("containers") or []) + sidecars
    init = max((_container_gpus(c, resource) for c in spec.get("initContainers") or [] if c.get("restartPolicy") != "Always"), default=0)
    return max(main, init)


def pinned_node(pod: Mapping[str, Any], node_key: str = "kubernetes.io/hostname") -> str | None:
    """The node a pod is bound to, or the one node its required node affinity allows (a planned
    replica pod or a DaemonSet pod not yet bound still claims that node's GPUs)."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    terms = (((spec.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get(
        "nodeSelectorTerms"
    ) or []
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
        taints = tuple(Taint(t.get("key", ""), t.get("value") or "", t.get("effect", "NoSchedule")) for t in spec.get("taints") or [])
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


# --- From and to the ModelReplicaSet API -----------------------------------------------------


def replica_key(namespace: str, replica: str) -> str:
    return f"{namespace}/{replica}"


def demand_for(namespace: str, name: str, spec: ModelReplicaSetSpec) -> Demand:
    e, g, p = spec.engine, spec.gpu, spec.placement
    return Demand(
        owner=f"{namespace}/{name}",
        gpus=e.tensor_parallel_size * e.pipeline_parallel_size,
        tensor_parallel=e.tensor_parallel_size,
        product=g.product,
        min_memory_mib=int(parse_quantity(g.memory) // MiB) if g.memory else None,
        node_selector=tuple(sorted(p.node_selector.items())),
        tolerations=tuple(Toleration(t.key, t.operator, t.value, t.effect) for t in p.tolerations),
        spread_across=p.spread_across,
        spread_mode=p.spread_mode,
        keys=TopologyKeys(node=p.node_key, nvlink=p.nvlink_domain_key, block=p.block_key, zone=p.zone_key),
        resource=g.resource_name,
    )


def requests_for(namespace: str, name: str, spec: ModelReplicaSetSpec, replicas: Iterable[str]) -> list[ReplicaRequest]:
    d = demand_for(namespace, name, spec)
    return [ReplicaRequest(replica_key(namespace, r), d) for r in replicas]


def assignment_from_status(namespace: str, name: str, p: ReplicaPlacement | Mapping[str, Any]) -> Assignment | None:
    """A placement recorded in status.placements, back as an Assignment (None if it has no nodes yet)."""
    if not isinstance(p, ReplicaPlacement):
        p = ReplicaPlacement.model_validate(p)
    if not p.nodes or p.gpus <= 0:
        return None
    return Assignment(
        key=replica_key(namespace, p.name),
        owner=f"{namespace}/{name}",
        nodes=tuple(p.nodes),
        gpus_per_node=p.gpus // len(p.nodes),
        block=p.block,
        zone=p.zone,
    )


def placement_status(a: Assignment, **extra: Any) -> ReplicaPlacement:
    """The status.placements entry for a placement (phase, endpoint and restarts passed through)."""
    return ReplicaPlacement(name=a.key.split("/", 1)[-1], nodes=list(a.nodes), gpus=a.gpus, gpus_per_node=a.gpus_per_node, block=a.block, zone=a.zone, **extra)
