"""Spread of each owner's replicas across zones or nodes. Preferred: fewest of the owner's
replicas first. Required: Kubernetes' max-skew-1 rule, over the domains that could ever host the
replica (capacity, not current use), as Kubernetes counts domains of every node passing the pod's
node affinity."""

from __future__ import annotations

from collections import Counter, defaultdict

from agentfleet.placement.eligibility import Pool
from agentfleet.placement.inventory import Ledger
from agentfleet.placement.types import Assignment, ReplicaNeeds


class Spread:
    """Replicas per owner per zone and per node, as placements are kept or made."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.zone_count: dict[str, Counter[str]] = defaultdict(Counter)
        self.node_count: dict[str, Counter[int]] = defaultdict(Counter)

    def record(self, a: Assignment) -> None:
        lg = self.ledger
        idx = [lg.by_name[n] for n in a.nodes]
        self.zone_count[a.owner][lg.zone_of[idx[0]] if lg.keys else (a.zone or "")] += 1
        for i in idx:
            self.node_count[a.owner][i] += 1

    def capable(self, p: Pool, per_pod: int) -> tuple[list[int], set[str]]:
        """The pool's nodes that could ever host a pod of this size, and their zones."""
        hit = p.capable.get(per_pod)
        if hit is None:
            lg = self.ledger
            nodes = [i for i in p.nodes if lg.cap[i] >= per_pod]
            hit = p.capable[per_pod] = (nodes, {lg.zone_of[i] for i in nodes})
        return hit

    def zone_min(self, d: ReplicaNeeds, p: Pool, per_pod: int) -> int:
        counts = self.zone_count[d.owner]
        return min((counts[z] for z in self.capable(p, per_pod)[1]), default=0)

    def node_min(self, d: ReplicaNeeds, p: Pool, per_pod: int) -> int:
        counts = self.node_count[d.owner]
        capable = self.capable(p, per_pod)[0]
        cap = self.ledger.cap
        occupied = sum(1 for i, c in counts.items() if c and cap[i] >= per_pod and i in p.member)
        if occupied < len(capable):
            return 0
        return min((counts[i] for i in capable), default=0)
