"""A replica's health and phase. Gangs are all or nothing: a member that fails or disappears
breaks the engine, so the whole group is restarted after a backoff."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from agentfleet.replica_rollout.observe import ReplicaView
from agentfleet.replica_rollout.phases import DRAINING, LOADING, PENDING, READY_PHASE, STARTED

# A pod the kube-scheduler keeps refusing (its node lacks CPU or memory the planner does not
# model, or the cluster moved under the plan) is re-planned after this long.
UNSCHEDULABLE_GRACE_SECONDS = 60.0


@dataclass(frozen=True)
class Health:
    kind: str  # ok | creating | terminating | lost | failed
    reason: str = ""
    message: str = ""
    replan: bool = False  # the failure says the plan itself is wrong: place it afresh on restart


def replica_health(
    r: ReplicaView,
    now: float,
    *,
    startup_timeout: float,
    gone_nodes: Iterable[str] = (),
    unusable_nodes: Iterable[str] = (),
) -> Health:
    """Whether a replica is whole, still being created, going away, lost with a node, or failed.

    Gangs are all or nothing: a member that fails or disappears breaks the engine, so the whole
    group is restarted (after a backoff). Slow model loading is not a failure: a gang is failed for
    being unready only after startupTimeoutSeconds (or when a pod itself failed).
    A replica is lost, and replaced at once elsewhere, when a node it runs on is gone
    (`gone_nodes`), or when it lost pods on a node it can no longer use (`unusable_nodes`:
    cordoned, NotReady or newly tainted, e.g. drained for maintenance): restarting it in place
    would only wait for a node that is not coming back.
    """
    gone = set(gone_nodes)
    blocked = gone | set(unusable_nodes)
    live = r.live
    if r.pods and not live:
        return Health("terminating")
    lost = {p.node for p in live if p.node in gone}
    if len(live) < r.expected:
        lost |= {n for n in r.nodes if n in blocked}
    if lost:
        return Health("lost", "NodeLost", f"replica {r.name} lost node {', '.join(sorted(lost))}", replan=True)
    if not r.pods and (not r.record or r.recorded_phase == DRAINING):
        # Nothing left of it: a drained replica whose pods are gone is done, not lost.
        return Health("terminating")
    failed = [p for p in live if p.terminal]
    if failed:
        p = failed[0]
        why = f" ({p.reason})" if p.reason else ""
        return Health("failed", "MemberFailed", f"pod {p.name} of replica {r.name} is {p.phase}{why}")
    started = r.recorded_phase in STARTED
    if len(live) < r.expected:
        if started:
            have = {p.index for p in live}
            missing = [i for i in range(r.expected) if i not in have]
            what = ", ".join(f"#{i}" for i in missing)
            return Health("failed", "MemberLost", f"replica {r.name} lost pod {what} of {r.expected}")
        return Health("creating")
    stuck = [
        p
        for p in live
        if p.unschedulable
        and p.unschedulable_since is not None
        and now - p.unschedulable_since >= UNSCHEDULABLE_GRACE_SECONDS
    ]
    if stuck:
        p = stuck[0]
        return Health(
            "failed",
            "Unschedulable",
            f"the scheduler refuses pod {p.name} on node {p.node}: {p.unschedulable}",
            replan=True,
        )
    if r.expected > 1 and not r.ready and all(p.bound for p in live) and not r.draining:
        # Time from the newest member: the group started loading once its last pod existed.
        age = now - max(p.created for p in live)
        if age >= startup_timeout:
            return Health(
                "failed",
                "StartupTimeout",
                (
                    f"replica {r.name} is not ready {int(age)}s after its pods started (startupTimeoutSeconds "
                    f"{int(startup_timeout)})"
                ),
            )
    return Health("ok")


def replica_phase(r: ReplicaView) -> str:
    """status.placements[].phase of a replica whose pods exist (or are being created)."""
    if r.draining:
        return DRAINING
    live = r.live
    if r.ready:
        return READY_PHASE
    if live and len(live) >= r.expected and all(p.bound for p in live):
        return LOADING
    return PENDING


def restart_backoff(restarts: int, base: float, cap: float) -> float:
    """Delay before restart number `restarts` (1 for the first): base, doubling, at most cap."""
    if restarts <= 0:
        return 0.0
    return float(min(cap, base * 2 ** min(restarts - 1, 32)))
