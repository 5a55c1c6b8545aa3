"""Step 2 of a ModelReplicaSet pass: judge each replica (rollout.replica_health) and say what
cannot wait for a decision: a failed replica is deleted and backs off, a lost one (its node gone)
is replaced at once, an incomplete one nobody can finish is removed.

Pure: ``judge_replicas`` reads the pass's observation (``Observed``) and returns a ``Judged``, the
records and states the decision and placement steps read, and the deletions, Events and wake-ups
the pass then carries out (reconcile.py). Nothing here calls back into the pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agentfleet_contract.modelreplicaset import ModelReplicaSetSpec

from agentfleet.placement import Assignment, assignment_from_status, placement_status, replica_key
from agentfleet.rollout import (
    DRAINING,
    FAILED,
    PENDING,
    TERMINATING,
    UNSCHEDULABLE_GRACE_SECONDS,
    ConditionCause,
    ReplicaState,
    ReplicaView,
    Timing,
    parse_replica_name,
    parse_time,
    replica_health,
    replica_phase,
    restart_backoff,
    rfc3339,
)


@dataclass(frozen=True)
class Observed:
    """What one pass observed, with the spec's derived values: read by every later step."""

    ns: str
    name: str
    now: float
    spec: ModelReplicaSetSpec
    shash: str  # the spec's hash: a replica running another is outdated
    timing: Timing
    needs: Any  # placement.ReplicaNeeds of one replica
    nodes: list[Any]  # the node inventory
    node_by_name: Mapping[str, Any]
    assessment: Any  # capacity.assess of the spec on the eligible GPUs
    capacity_error: str | None  # the model does not fit: nothing new starts
    desired: Any  # rollout.Desired: the count and where it comes from
    views: Mapping[str, ReplicaView]  # replica -> its pods and status record
    gone: frozenset[str]  # nodes the replicas reference that no longer exist
    unusable: frozenset[str]  # nodes that exist but a replica may no longer use

    @property
    def owner(self) -> str:
        return f"{self.ns}/{self.name}"


@dataclass
class Judged:
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # replica -> status.placements record
    states: list[ReplicaState] = field(default_factory=list)
    failures: list[ConditionCause] = field(default_factory=list)
    to_create: dict[str, Assignment] = field(
        default_factory=dict
    )  # replicas whose missing pods are applied in this pass
    current: dict[str, bool] = field(default_factory=dict)  # replica -> runs the current spec
    terminating: set[str] = field(default_factory=set)  # replicas on their way out
    # What the pass carries out for this judgment, in order:
    deletes: list[tuple[ReplicaView, frozenset[str]]] = field(
        default_factory=list
    )  # (replica, nodes to force-delete on)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message), each one its own Event
    wakes: list[float] = field(default_factory=list)  # seconds until a timeout or grace runs out
    failed_at: dict[str, float] = field(default_factory=dict)  # replica -> when it failed, to remember
    forget_failed: set[str] = field(default_factory=set)  # replicas whose failure time to forget


def is_current(obs: Observed, v: ReplicaView) -> bool:
    if v.spec_hash:
        return v.spec_hash == obs.shash
    parsed = parse_replica_name(obs.name, v.name)
    return parsed is not None and obs.shash.startswith(parsed[0])


def record_from_pods(obs: Observed, rname: str, v: ReplicaView) -> dict[str, Any]:
    """A placement record rebuilt from the pods (their pinned nodes), when status lacks one."""
    live = sorted(v.live or v.pods, key=lambda p: p.index)
    names = [p.node for p in live if p.node]
    node = obs.node_by_name.get(names[0]) if names else None
    labels = node.labels if node is not None else {}
    a = Assignment(
        key=replica_key(obs.ns, rname),
        owner=obs.owner,
        nodes=tuple(names),
        gpus_per_node=live[0].gpus if live else 0,
        block=labels.get(obs.spec.placement.block_key),
        zone=labels.get(obs.spec.placement.zone_key),
    )
    return placement_status(a, phase=PENDING, restarts=v.restarts).wire()


def timeouts(obs: Observed, v: ReplicaView) -> list[float]:
    """When to look again: a loading gang would pass its startup timeout, or a refused pod its grace."""
    live, out = v.live, []
    if v.expected > 1 and live and not v.ready:
        out.append(max(0.5, max(p.created for p in live) + obs.spec.lifecycle.startup_timeout_seconds - obs.now + 0.5))
    for p in live:
        if p.unschedulable_since is not None:
            out.append(max(0.5, p.unschedulable_since + UNSCHEDULABLE_GRACE_SECONDS - obs.now + 0.5))
    return out


def judge_replicas(obs: Observed, failed_at: Mapping[str, float]) -> Judged:
    """``failed_at``: what the controller remembers of failure times (records older than failedAt)."""
    out = Judged()
    for rname, v in obs.views.items():
        current = is_current(obs, v)
        out.current[rname] = current
        ordinal = (parse_replica_name(obs.name, rname) or ("", 0))[1]
        rec = dict(v.record) if v.record else None
        if rec and rec.get("phase") == FAILED and not v.live:
            _backing_off(obs, out, rname, v, rec, current, ordinal, failed_at)
            continue
        h = replica_health(
            v,
            obs.now,
            startup_timeout=obs.spec.lifecycle.startup_timeout_seconds,
            gone_nodes=obs.gone,
            unusable_nodes=obs.unusable,
        )
        if h.kind == "terminating":
            _terminating(obs, out, rname, v, rec, current, ordinal)
        elif h.kind == "lost":
            # Replaced under a new name (this one is taken until its pods are gone), at once:
            # the node failed, not the model, so there is nothing to back off from.
            out.deletes.append((v, obs.gone))
            out.forget_failed.add(rname)
            out.failures.append(ConditionCause(h.reason, h.message))
            out.events.append(("Warning", h.reason, f"{h.message}; deleting its pods and placing a replacement"))
            _going(out, rname, v, current, ordinal)
        elif h.kind == "failed":
            _failed(obs, out, rname, v, rec, current, ordinal, h)
        elif h.kind == "creating" and (rec is None or not current):
            # Incomplete without a record: made by a process that died before recording its plan,
            # so the plan is unknown. Incomplete and outdated: not worth completing. Remove both.
            out.deletes.append((v, frozenset()))
            _going(out, rname, v, current, ordinal)
        else:
            _whole_or_creating(obs, out, rname, v, rec, current, ordinal, creating=h.kind == "creating")
    return out


def _going(out: Judged, rname: str, v: ReplicaView, current: bool, ordinal: int) -> None:
    out.states.append(ReplicaState(rname, current, TERMINATING, ordinal=ordinal, created=v.created))
    out.terminating.add(rname)


def _backing_off(
    obs: Observed,
    out: Judged,
    rname: str,
    v: ReplicaView,
    rec: dict[str, Any],
    current: bool,
    ordinal: int,
    remembered: Mapping[str, float],
) -> None:
    """A failed replica waiting out its backoff: its pods are gone or going."""
    t = obs.timing
    # The failure time is in status, so an operator restart does not restart the backoff (a
    # restart storm of a group still loading); memory covers old records.
    failed_at = parse_time(rec.get("failedAt"))
    if failed_at is None:
        failed_at = remembered.get(rname, obs.now)
        out.failed_at[rname] = failed_at
    restarts = int(rec.get("restarts") or 0)
    at = failed_at + restart_backoff(restarts, t.restart_backoff, t.max_restart_backoff)
    out.records[rname] = rec
    out.states.append(
        ReplicaState(rname, current, FAILED, ordinal=ordinal, created=v.created, failed_at=failed_at, restarts=restarts)
    )
    out.failures.append(
        ConditionCause("RestartBackoff", f"replica {rname} failed; restart {restarts} at {rfc3339(at)}")
    )


def _terminating(
    obs: Observed, out: Judged, rname: str, v: ReplicaView, rec: dict[str, Any] | None, current: bool, ordinal: int
) -> None:
    if not v.pods:
        out.forget_failed.add(rname)
        return
    phase = rec.get("phase") if rec and rec.get("phase") in (DRAINING, FAILED) else DRAINING
    out.records[rname] = {**(rec or record_from_pods(obs, rname, v)), "phase": phase, "endpoint": None}
    _going(out, rname, v, current, ordinal)


def _failed(
    obs: Observed,
    out: Judged,
    rname: str,
    v: ReplicaView,
    rec: dict[str, Any] | None,
    current: bool,
    ordinal: int,
    h: Any,
) -> None:
    out.deletes.append((v, frozenset()))
    restarts = v.restarts + 1
    out.failed_at[rname] = obs.now
    wait = restart_backoff(restarts, obs.timing.restart_backoff, obs.timing.max_restart_backoff)
    gang = v.expected > 1
    out.events.append(
        (
            "Warning",
            "GangRestart" if gang else "ReplicaRestart",
            (
                f"{h.message}; deleting the {'group' if gang else 'replica'} and restarting it in {int(wait)}s "
                f"(restart {restarts})"
            ),
        )
    )
    out.records[rname] = {
        **(rec or record_from_pods(obs, rname, v)),
        "phase": FAILED,
        "restarts": restarts,
        "endpoint": None,
        "failedAt": rfc3339(obs.now, precise=True),
    }
    if h.replan:
        out.records[rname].update(nodes=[], gpus=0, gpusPerNode=None, block=None, zone=None)
    out.failures.append(ConditionCause(h.reason, f"{h.message}; restart {restarts} at {rfc3339(obs.now + wait)}"))
    out.states.append(
        ReplicaState(rname, current, FAILED, ordinal=ordinal, created=v.created, failed_at=obs.now, restarts=restarts)
    )


def _whole_or_creating(
    obs: Observed,
    out: Judged,
    rname: str,
    v: ReplicaView,
    rec: dict[str, Any] | None,
    current: bool,
    ordinal: int,
    *,
    creating: bool,
) -> None:
    if rec is None:
        rec = record_from_pods(obs, rname, v)
    if creating:
        a = assignment_from_status(obs.ns, obs.name, rec)
        if a is not None:
            out.to_create[rname] = a
    lead = v.leader
    out.records[rname] = {
        **rec,
        "phase": replica_phase(v),
        "endpoint": f"{lead.ip}:{obs.spec.engine.port}" if lead and lead.ip and v.ready else None,
    }
    out.states.append(
        ReplicaState(
            rname,
            current,
            replica_phase(v),
            ready=v.ready,
            ordinal=ordinal,
            created=v.created,
            draining_since=lead.draining_since if lead else None,
            restarts=v.restarts,
        )
    )
    out.wakes += timeouts(obs, v)
