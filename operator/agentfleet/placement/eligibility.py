"""Which nodes a group may use: product and memory labels, nodeSelector, taints (the GPU taint is
tolerated always), cordons and NotReady nodes. Nodes eligible for one eligibility signature form
a pool, indexed by zone and free GPUs for best-fit queries."""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping

from agentfleet.placement.inventory import GPU_MEMORY_LABEL, GPU_PRODUCT_LABEL, Ledger, Node, Toleration
from agentfleet.placement.types import ReplicaNeeds

# spec.gpu.memory is written the marketing way ("80Gi", "24Gi") while the label carries NVML's total,
# a few percent lower (81559 MiB on an H100 80GB, 23034 MiB on an L4 24GB). A node qualifies when its
# label reaches this share of the request.
MEMORY_MATCH_TOLERANCE = 0.9


def _memory_mib(labels: Mapping[str, str]) -> int | None:
    raw = labels.get(GPU_MEMORY_LABEL)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def ineligibility(node: Node, d: ReplicaNeeds, tolerations: tuple[Toleration, ...] | None = None) -> str | None:
    """Why this node can never host a pod of the needs, or None if it can (capacity aside)."""
    if not node.ready:
        return "are not Ready"
    if node.unschedulable:
        return "are cordoned"
    if node.gpus <= 0:
        if d.on_cpu:
            return "have less allocatable CPU or memory than spec.engine.cpu and spec.engine.memory"
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


def eligible_gpu_memory_mib(nodes: Iterable[Node], d: ReplicaNeeds) -> int | None:
    """Smallest GPU memory label among nodes that could host the needs: the capacity model's input."""
    mems = [m for n in nodes if ineligibility(n, d) is None and (m := _memory_mib(n.labels))]
    return min(mems) if mems else None


# --- Pools: the eligible nodes of one signature, indexed -------------------------------------


class ZoneIndex:
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


class Pool:
    """The nodes eligible for one eligibility signature, indexed for best-fit queries."""

    def __init__(self, needs: ReplicaNeeds) -> None:
        self.needs = needs
        self.nodes: list[int] = []
        self.excluded: Counter[str] = Counter()
        self.total = 0
        self.maxcap = 0
        self.zones: dict[str, ZoneIndex] = {}
        self.block_nodes: dict[str, list[int]] = defaultdict(list)  # labelled blocks only
        self.member: set[int] = set()
        self.block_zones: dict[str, set[str]] = defaultdict(set)  # zones where a block has nodes of this pool
        # A labelled block whose nodes sit in several zones: the per-zone indexes then each see
        # only part of it, so gangs take the general path.
        self.zone_split_blocks = False
        self.capable: dict[int, tuple[list[int], set[str]]] = {}


class Pools:
    """One pool per eligibility signature, and which pools each node and block belongs to (a
    change in a node's free GPUs updates every index that holds it)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.by_sig: dict[tuple, Pool] = {}
        self.node_pools: list[list[Pool]] = [[] for _ in ledger.nodes]
        self.block_pools: dict[str, list[Pool]] = defaultdict(list)
        self._sigs: list[tuple] | None = None

    def _base_sig(self) -> list[tuple]:
        if self._sigs is None:
            self._sigs = [
                (
                    n.ready,
                    n.unschedulable,
                    n.gpus > 0,
                    n.labels.get(GPU_PRODUCT_LABEL),
                    n.labels.get(GPU_MEMORY_LABEL),
                    n.taints,
                )
                for n in self.ledger.nodes
            ]
        return self._sigs

    def pool(self, d: ReplicaNeeds) -> Pool:
        sig = d.eligibility
        p = self.by_sig.get(sig)
        if p is not None:
            return p
        lg = self.ledger
        lg.read_topology(d.keys)
        p = self.by_sig[sig] = Pool(d)
        seen_blocks: set[str] = set()
        tols = d.all_tolerations()
        # Nodes look alike: decide once per distinct set of the attributes that matter.
        verdicts: dict[tuple, str | None] = {}
        sel_keys = [k for k, _ in d.node_selector]
        base = self._base_sig()
        cap, free, zone_of, block_of, label_block = lg.cap, lg.free, lg.zone_of, lg.block_of, lg.label_block
        for i, n in enumerate(lg.nodes):
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
                zi = p.zones[z] = ZoneIndex()
            zi.add(i, free[i], b, lg.bkey(b))
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
        """Take g GPUs of node i: its free count, its block's, and every index that orders them."""
        lg = self.ledger
        old, new = lg.free[i], lg.free[i] - g
        b = lg.block_of[i]
        bk = lg.bkey(b)
        for p in self.node_pools[i]:
            zi = p.zones[lg.zone_of[i]]
            zi.remove(i, old, b, bk)
            zi.add(i, new, b, bk)
        lg.free[i] = new
        lg.block_free[b] -= g
        nk = lg.bkey(b)
        for p in self.block_pools[b]:
            for z in p.block_zones[b]:
                p.zones[z].rekey(b, bk, nk)
