"""The planning steps: keep existing placements, order the new replicas (largest groups first),
then place each by best fit -- a single node for a replica that fits on one, else a gang of equal
pods inside one topology block (one NVLink domain when a tensor-parallel group spans nodes), all
or nothing -- or say exactly why not."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

from agentfleet.placement.eligibility import Pool, Pools, ZoneIndex
from agentfleet.placement.inventory import Ledger, Node
from agentfleet.placement.reasons import why_not
from agentfleet.placement.spread import Spread
from agentfleet.placement.types import Assignment, Plan, ReplicaNeeds, ReplicaRequest, Unplaced, pod_shape

Shape = tuple[int, int, bool]  # (pods, GPUs per pod, tensor-parallel group spans nodes)


class _Planner:
    """One planning run: the free-GPU ledger, the eligible pools and the spread counts, and the
    best-fit searches over them."""

    def __init__(self, nodes: Sequence[Node]) -> None:
        self.ledger = Ledger(nodes)
        self.pools = Pools(self.ledger)
        self.spread = Spread(self.ledger)

    # --- single-node replicas ---

    def _best_in_zone(self, zi: ZoneIndex, g: int, maxf: int, ok: Callable[[int], bool] | None) -> tuple | None:
        """Best fit in one zone: the fewest free GPUs left over, then the fullest block, then the name."""
        nseq = self.ledger.nseq
        for f in range(g, maxf + 1):
            lst = zi.order.get(f)
            if not lst:
                continue
            for bf, bs, b in lst:
                members = zi.buckets[f][b]
                cands = sorted(members, key=nseq.__getitem__) if ok else [min(members, key=nseq.__getitem__)]
                for i in cands:
                    if ok is None or ok(i):
                        return (f - g, bf, bs, nseq[i], i)
        return None

    def place_single(self, d: ReplicaNeeds, p: Pool, g: int) -> int | None:
        if d.spread_across == "Node":
            return self._place_single_node_spread(d, p, g)
        owner_z = self.spread.zone_count[d.owner]
        required = d.spread_mode == "Required"
        zmin = self.spread.zone_min(d, p, g) if d.spread_across == "Zone" else 0
        best = None
        for z in sorted(p.zones):
            pen = owner_z[z] if d.spread_across == "Zone" else 0
            if required and d.spread_across == "Zone" and pen > zmin:
                continue
            c = self._best_in_zone(p.zones[z], g, p.maxcap, None)
            if c and (best is None or (pen, *c) < best):
                best = (pen, *c)
        return best[-1] if best else None

    def _place_single_node_spread(self, d: ReplicaNeeds, p: Pool, g: int) -> int | None:
        """Spread across nodes: try the nodes holding the fewest of the owner's replicas first
        (Required: only those at the minimum)."""
        owner_n = self.spread.node_count[d.owner]
        floor = self.spread.node_min(d, p, g)
        limits = (
            [floor]
            if d.spread_mode == "Required"
            else sorted({floor, *owner_n.values()} | {max(owner_n.values(), default=0) + 1})
        )
        for lim in limits:
            best = None
            for zi in p.zones.values():
                c = self._best_in_zone(zi, g, p.maxcap, (lambda i, lim=lim: owner_n[i] <= lim) if owner_n else None)
                if c and (best is None or c < best):
                    best = c
            if best:
                return best[-1]
        return None

    # --- gangs ---

    def place_gang(self, d: ReplicaNeeds, p: Pool, pods: int, per: int, nvlink: bool) -> list[int] | None:
        zmin = self.spread.zone_min(d, p, per) if d.spread_across == "Zone" else 0
        # Wholly free nodes hold none of the owner's replicas, so node spread never excludes them here.
        if per == p.maxcap and not nvlink and not p.zone_split_blocks:
            return self._place_whole_node_gang(d, p, pods, per, zmin)
        return self._place_gang_in_blocks(d, p, pods, per, nvlink, zmin)

    def _place_gang_in_blocks(
        self, d: ReplicaNeeds, p: Pool, pods: int, per: int, nvlink: bool, zmin: int
    ) -> list[int] | None:
        """The general gang: in every labelled block (and NVLink domain, if needed) with room, the
        pods on the nodes that leave the least remainder; the best block wins."""
        lg = self.ledger
        free, nseq, nvl_of, block_free = lg.free, lg.nseq, lg.nvl_of, lg.block_free
        owner_z = self.spread.zone_count[d.owner]
        owner_n = self.spread.node_count[d.owner]
        by_node = d.spread_across == "Node"
        required = d.spread_mode == "Required"
        nlim = self.spread.node_min(d, p, per) if by_node and required else None
        best = None
        for b, members in p.block_nodes.items():
            z = lg.zone_of[members[0]]
            pen = owner_z[z] if d.spread_across == "Zone" else 0
            if required and d.spread_across == "Zone" and pen > zmin:
                continue
            if block_free[b] < pods * per:
                continue
            capable = [i for i in members if free[i] >= per and (nlim is None or owner_n[i] <= nlim)]
            if len(capable) < pods:
                continue
            groups = [capable]
            if nvlink:
                by: dict[str | None, list[int]] = defaultdict(list)
                for i in capable:
                    if nvl_of[i] is not None:
                        by[nvl_of[i]].append(i)
                groups = [v for v in by.values() if len(v) >= pods]
            for grp in groups:
                grp = sorted(grp, key=lambda i: (owner_n[i] if by_node else 0, free[i], nseq[i]))[:pods]
                # Charged for the owner's replicas on the nodes taken, not on every node with room.
                npen = sum(owner_n[i] for i in grp) if by_node else 0
                rem = sum(free[i] - per for i in grp)
                score = (pen, npen if by_node else 0, rem, block_free[b], lg.bseq[b])
                if best is None or score < best[0]:
                    best = (score, grp)
        return best[1] if best else None

    def _place_whole_node_gang(self, d: ReplicaNeeds, p: Pool, pods: int, per: int, zmin: int) -> list[int] | None:
        """The common gang: pods as large as the largest node, so only wholly free nodes qualify and
        none leaves a remainder. The best block is the first, in (free GPUs, name) order, that has
        enough of them: the zone indexes keep exactly that order."""
        owner_z = self.spread.zone_count[d.owner]
        best = None
        for z, zi in p.zones.items():
            pen = owner_z[z] if d.spread_across == "Zone" else 0
            if d.spread_mode == "Required" and d.spread_across == "Zone" and pen > zmin:
                continue
            members = zi.buckets.get(per, {})
            for bf, bs, b in zi.order.get(per, ()):
                if b in p.block_nodes and len(members[b]) >= pods:
                    if best is None or (pen, bf, bs) < best[0]:
                        best = ((pen, bf, bs), sorted(members[b], key=self.ledger.nseq.__getitem__)[:pods])
                    break
        return best[1] if best else None

    # --- the steps of plan() ---

    def keep_existing(self, existing: Sequence[Assignment]) -> tuple[list[Assignment], list[str]]:
        """Existing placements keep their nodes and hold their GPUs there, less what their own
        bound pods already count in Node.used; those on a node that left are displaced."""
        lg = self.ledger
        kept: list[Assignment] = []
        displaced: list[str] = []
        for a in existing:
            idx = [lg.by_name.get(n) for n in a.nodes]
            if not a.nodes or any(i is None for i in idx):
                displaced.append(a.key)
                continue
            for i in idx:
                held = lg.nodes[i].held.get(a.key, 0)
                lg.reserve(i, max(0, a.gpus_per_node - held))
            kept.append(a)
            if lg.keys is not None:
                self.spread.record(a)
        return kept, displaced

    def shaped_in_order(self, todo: Sequence[ReplicaRequest]) -> list[tuple[ReplicaRequest, Pool, Shape | None]]:
        """Each request with its pool and shape, largest groups first (by GPUs, then GPUs per
        pod); the key keeps the order stable. Shapes depend on the largest node a pool offers,
        so pools are built before ordering."""
        shaped = []
        for r in todo:
            p = self.pools.pool(r.needs)
            shaped.append((r, p, pod_shape(r.needs, p.maxcap)))
        shaped.sort(key=lambda t: (-t[0].needs.gpus, -(t[2][1] if t[2] else 0), t[0].key))
        return shaped

    def place(self, r: ReplicaRequest, p: Pool, shape: Shape | None) -> Assignment | Unplaced:
        """Place one replica and take its GPUs, or say why it cannot be placed."""
        d = r.needs
        chosen: list[int] | None = None
        if shape is not None:
            pods, per, nvlink = shape
            if pods == 1:
                i = self.place_single(d, p, per)
                chosen = [i] if i is not None else None
            else:
                chosen = self.place_gang(d, p, pods, per, nvlink)
        if not chosen:
            reason, msg = why_not(self.ledger, self.spread, d, p, shape)
            return Unplaced(r.key, d.owner, reason, msg)
        per = shape[1]
        for i in chosen:
            self.pools.take(i, per)
        lg = self.ledger
        lead = chosen[0]
        a = Assignment(
            key=r.key,
            owner=d.owner,
            nodes=tuple(lg.nodes[i].name for i in chosen),
            # A CPU replica took one slot of CPU and memory, and holds no GPU.
            gpus_per_node=0 if d.on_cpu else per,
            block=lg.label_block[lead],
            zone=lg.zone_of[lead] or None,
        )
        self.spread.record(a)
        return a


def plan(nodes: Sequence[Node], requests: Sequence[ReplicaRequest], existing: Sequence[Assignment] = ()) -> Plan:
    """Place the requested replicas that have no placement yet.

    `existing` are placements already made (this and other ModelReplicaSets'): each keeps its nodes
    and holds its GPUs there, less what its own bound pods already count in Node.used (Node.held),
    so a placement whose pods are not yet created is never given away. An existing placement on a
    node that left the inventory is dropped and reported in `displaced`; if its key is requested it
    is planned afresh.
    """
    pl = _Planner(nodes)
    keys = next((r.needs.keys for r in requests), None)
    if keys is not None:
        pl.ledger.read_topology(keys)
    kept, displaced = pl.keep_existing(existing)
    kept_keys = {a.key for a in kept}
    placed: list[Assignment] = []
    unplaced: list[Unplaced] = []
    for r, p, shape in pl.shaped_in_order([r for r in requests if r.key not in kept_keys]):
        outcome = pl.place(r, p, shape)
        (placed if isinstance(outcome, Assignment) else unplaced).append(outcome)
    return Plan(tuple(kept), tuple(placed), tuple(unplaced), tuple(displaced))
