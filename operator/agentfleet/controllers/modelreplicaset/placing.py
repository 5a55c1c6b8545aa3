"""Act's last part: place new replicas, failed ones whose place is gone, and the canary replica
through the ledger's planner (placement.plan over every ModelReplicaSet's placements), and say so.

``place`` records each placed replica in act's working copy (``Acting``) for write to create;
``placement_posts`` (pure) is what the Events say: the planner's own words for a replica it cannot
place, and one Event per scale step with every placement in it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from agentfleet_contract.modelreplicaset import ModelReplicaSetSpec

from agentfleet.controllers.modelreplicaset.caches import Key, Snapshot
from agentfleet.controllers.modelreplicaset.deciding import Plan
from agentfleet.controllers.modelreplicaset.records import Acting, Observed, Post, ReplicaRecord
from agentfleet.controllers.modelreplicaset.services import Ledger
from agentfleet.placement import (
    Assignment,
    Unplaced,
    assignment_from_status,
    inventory_for,
    needs_for,
    placement_status,
    requests_for,
)
from agentfleet.replica_rollout import PENDING, new_replica_names


@dataclass(frozen=True)
class Placed:
    """What ``place`` did: the replicas it could not place, those it placed now and before (the
    set's own placements), the Events, and whether a rolling update's surge found no room (None:
    no surge was placed in this pass)."""

    unplaced: tuple[Unplaced, ...] = ()
    placed: tuple[Assignment, ...] = ()
    own: tuple[Assignment, ...] = ()
    posts: tuple[Post, ...] = ()
    surge_blocked: bool | None = None


def plan_one(
    ledger: Ledger, key: Key, snap: Snapshot, spec: ModelReplicaSetSpec, rname: str, own: list[Assignment]
) -> Assignment | None:
    """One replica of ``spec`` (the canary) placed by the ledger's planner, or None."""
    ns, name = key
    nodes = inventory_for(needs_for(ns, name, spec), snap.nodes, snap.pods)
    result = ledger.plan(key, snap, nodes, requests_for(ns, name, spec, [rname]), own)
    return next((a for a in result.placed if a.owner == f"{ns}/{name}"), None)


def place(
    ledger: Ledger,
    snap: Snapshot,
    obs: Observed,
    plan: Plan,
    work: Acting,
    replan: Mapping[str, int],
    extra: tuple[Assignment, ...] = (),
) -> Placed:
    """New replicas, and failed ones whose place is gone (``replan``: with their restart counts),
    through the ledger's planner. None are created while the model cache is being filled."""
    ns, name, records = obs.ns, obs.name, work.records
    create = plan.step.create if plan.fill.replicas_may_start else 0
    new_names = new_replica_names(name, obs.shash, obs.views.keys(), create) if create > 0 else []
    for rname in new_names:
        work.current[rname] = True
    own = [a for rec in records.values() if (a := assignment_from_status(ns, name, rec.wire())) is not None]
    own += extra
    if not new_names and not replan:
        return Placed(own=tuple(own))
    result = ledger.plan((ns, name), snap, obs.nodes, requests_for(ns, name, obs.spec, [*new_names, *replan]), own)
    placed = [a for a in result.placed if a.owner == obs.owner]
    unplaced = [u for u in result.unplaced if u.owner == obs.owner]
    where: dict[str, str] = {}
    for a in placed:
        rname = a.key.split("/", 1)[1]
        placement = placement_status(a, phase=PENDING, restarts=replan.get(rname, 0))
        records[rname] = ReplicaRecord.from_wire(placement.wire())
        work.to_create[rname] = a
        where[rname] = (
            f"{rname} on {'+'.join(a.nodes)}"
            + (f" (block {a.block})" if a.multi_node and a.block else "")
            + (f" in {a.zone}" if a.zone else "")
        )
    posts = [
        Post("Normal", "Restarting", f"restarting replica {rname} elsewhere: {where[rname]}", once=False)
        for rname in replan
        if rname in where
    ]
    for u in unplaced:
        # A failed replica that no longer fits anywhere gives its slot back; the count is made up
        # by new replicas as soon as there is room.
        records.pop(u.key.split("/", 1)[1], None)
    posts += placement_posts(obs, plan.rolling, new_names, where, unplaced)
    return Placed(
        unplaced=tuple(unplaced),
        placed=tuple(placed),
        own=tuple(own),
        posts=tuple(posts),
        surge_blocked=bool(unplaced) if plan.rolling and new_names else None,
    )


def placement_posts(
    obs: Observed, rolling: bool, new_names: list[str], where: Mapping[str, str], unplaced: list[Unplaced]
) -> list[Post]:
    posts = []
    if unplaced:
        # The planner's exact words: what a replica needs and what the cluster has.
        posts.append(Post("Warning", unplaced[0].reason, unplaced[0].message))
    created = [where[r] for r in new_names if r in where]
    if created:
        # One Event per scale step, with every placement in it (an Event per replica would
        # double the API writes of a scale-up).
        posts.append(
            Post(
                "Normal",
                "RollingUpdate" if rolling else "ScalingUp",
                (
                    f"creating {len(created)} replica(s) for {obs.desired.count} desired ({obs.desired.source}): "
                    f"{'; '.join(created)}"
                )
                + (f"; {len(unplaced)} cannot be placed" if unplaced else ""),
                once=False,
            )
        )
    return posts
