"""Act's part for the replica rollout's step (replica_rollout.rollout_step, decided in deciding.py):
undrain, drain and delete replicas, then restart failed ones whose backoff ran out. Each function
changes act's working copy of the replicas (``Acting``) and the remembered failure times it is
given, and returns the Events to post, in order; the pods' writes go through ``ReplicaPods``."""

from __future__ import annotations

from dataclasses import replace

from agentfleet.controllers.modelreplicaset.deciding import Plan
from agentfleet.controllers.modelreplicaset.records import Acting, Observed, Post
from agentfleet.controllers.modelreplicaset.replica_pods import ReplicaPods
from agentfleet.placement import assignment_from_status
from agentfleet.replica_rollout import DRAINING, PENDING, READY_PHASE

# The first look at a replica just marked draining: routers need a moment to stop sending to it.
DRAIN_FIRST_POLL_SECONDS = 2.0
# A replica to restart whose old pods still terminate: its pod names are not free yet.
RESTART_POLL_SECONDS = 1.0


def roll(pods: ReplicaPods, obs: Observed, plan: Plan, work: Acting, failed_at: dict[str, float]) -> list[Post]:
    """Undrain, drain and delete as the step says."""
    views, records, state_of = obs.views, work.records, {s.name: s for s in plan.states}
    posts: list[Post] = []
    for rname in plan.step.undrain:
        pods.set_draining(views[rname], False)
        records[rname] = replace(records[rname], phase=READY_PHASE)
        posts.append(
            Post("Normal", "Undrained", f"replica {rname} serves again: scaled up while it was draining", once=False)
        )
    for rname in plan.step.drain:
        s = state_of[rname]
        pods.set_draining(views[rname], True)
        records[rname] = replace(records[rname], phase=DRAINING, endpoint=None)
        held = (
            "in-flight requests unknown (/metrics unreachable, or without an engine's in-flight gauges)"
            if s.in_flight is None
            else f"{s.in_flight} requests in flight"
        )
        why = "rolling update" if not s.current else f"scale down to {obs.desired.count} ({obs.desired.source})"
        posts.append(
            Post(
                "Normal",
                "Draining",
                (
                    f"draining replica {rname} for {why}: out of every Service now, deleted when idle or after "
                    f"{int(obs.timing.drain_timeout)}s; {held}"
                ),
                once=False,
            )
        )
        work.wakes.append(DRAIN_FIRST_POLL_SECONDS)
    for rname, why in plan.step.delete:
        v = views[rname]
        pods.delete(v)
        work.terminating.add(rname)
        if v.pods and rname in records:
            # Listed until its pods are gone.
            records[rname] = replace(records[rname], phase=DRAINING, endpoint=None)
        else:
            records.pop(rname, None)
        failed_at.pop(rname, None)
        posts.append(Post("Normal", "ReplicaDeleted", f"deleted replica {rname}: {why}", once=False))
    return posts


def restart(obs: Observed, plan: Plan, work: Acting, failed_at: dict[str, float]) -> tuple[dict[str, int], list[Post]]:
    """Restarts: at the recorded placement while it still stands (its pods created by write), else
    to be placed afresh: (those replicas with their restart counts, the Events). No I/O."""
    replan: dict[str, int] = {}
    posts: list[Post] = []
    for rname in plan.step.restart:
        v = obs.views[rname]
        if v.pods:
            work.wakes.append(RESTART_POLL_SECONDS)
            continue
        rec = work.records[rname]
        a = assignment_from_status(obs.ns, obs.name, rec.wire())
        if a is not None and all(n in obs.node_by_name and n not in obs.unusable for n in a.nodes):
            work.to_create[rname] = a
            work.records[rname] = replace(rec, phase=PENDING)
            posts.append(
                Post(
                    "Normal",
                    "Restarting",
                    f"restarting replica {rname} on {', '.join(a.nodes)} (restart {rec.restarts or 0})",
                    once=False,
                )
            )
        else:
            replan[rname] = int(rec.restarts or 0)
        failed_at.pop(rname, None)
    return replan, posts
