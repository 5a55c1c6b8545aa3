"""Step 2 of a ModelReplicaSet pass: judge each replica (rollout.replica_health) and act on what
cannot wait for a decision: a failed replica is deleted and backs off, a lost one (its node gone)
is replaced at once, an incomplete one nobody can finish is removed.

The result, ``Judged``, is what the decision step (rollout) and the placement step read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentfleet.placement import Assignment, assignment_from_status
from agentfleet.rollout import (
    DRAINING,
    FAILED,
    TERMINATING,
    ConditionCause,
    ReplicaState,
    ReplicaView,
    parse_replica_name,
    parse_time,
    replica_health,
    replica_phase,
    restart_backoff,
    rfc3339,
)

if TYPE_CHECKING:
    from agentfleet.controllers.modelreplicaset.reconcile import ModelReplicaSetPass


@dataclass
class Judged:
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # replica -> status.placements record
    states: list[ReplicaState] = field(default_factory=list)
    failures: list[ConditionCause] = field(default_factory=list)
    to_create: dict[str, Assignment] = field(default_factory=dict)  # replicas whose missing pods are applied in this pass


def judge_replicas(p: ModelReplicaSetPass, views: dict[str, ReplicaView]) -> Judged:
    out = Judged()
    for rname, v in views.items():
        current = p.is_current(v)
        p.current[rname] = current
        ordinal = (parse_replica_name(p.name, rname) or ("", 0))[1]
        rec = dict(v.record) if v.record else None
        if rec and rec.get("phase") == FAILED and not v.live:
            _backing_off(p, out, rname, v, rec, current, ordinal)
            continue
        h = replica_health(v, p.now, startup_timeout=p.spec.lifecycle.startup_timeout_seconds, gone_nodes=p.gone, unusable_nodes=p.unusable)
        if h.kind == "terminating":
            _terminating(p, out, rname, v, rec, current, ordinal)
        elif h.kind == "lost":
            # Replaced under a new name (this one is taken until its pods are gone), at once:
            # the node failed, not the model, so there is nothing to back off from.
            p.delete_replica(v, force_nodes=p.gone)
            p.state.failed_at.pop(rname, None)
            out.failures.append(ConditionCause(h.reason, h.message))
            p.event("Warning", h.reason, f"{h.message}; deleting its pods and placing a replacement", once=False)
            _going(p, out, rname, v, current, ordinal)
        elif h.kind == "failed":
            _failed(p, out, rname, v, rec, current, ordinal, h)
        elif h.kind == "creating" and (rec is None or not current):
            # Incomplete without a record: made by a process that died before recording its plan,
            # so the plan is unknown. Incomplete and outdated: not worth completing. Remove both.
            p.delete_replica(v)
            _going(p, out, rname, v, current, ordinal)
        else:
            _whole_or_creating(p, out, rname, v, rec, current, ordinal, creating=h.kind == "creating")
    return out


def _going(p: ModelReplicaSetPass, out: Judged, rname: str, v: ReplicaView, current: bool, ordinal: int) -> None:
    out.states.append(ReplicaState(rname, current, TERMINATING, ordinal=ordinal, created=v.created))
    p.terminating.add(rname)


def _backing_off(p: ModelReplicaSetPass, out: Judged, rname: str, v: ReplicaView, rec: dict[str, Any], current: bool, ordinal: int) -> None:
    """A failed replica waiting out its backoff: its pods are gone or going."""
    t = p.timing
    # The failure time is in status, so an operator restart does not restart the backoff (a
    # restart storm of a group still loading); memory covers old records.
    failed_at = parse_time(rec.get("failedAt")) or p.state.failed_at.setdefault(rname, p.now)
    restarts = int(rec.get("restarts") or 0)
    at = failed_at + restart_backoff(restarts, t.restart_backoff, t.max_restart_backoff)
    out.records[rname] = rec
    out.states.append(ReplicaState(rname, current, FAILED, ordinal=ordinal, created=v.created, failed_at=failed_at, restarts=restarts))
    out.failures.append(ConditionCause("RestartBackoff", f"replica {rname} failed; restart {restarts} at {rfc3339(at)}"))


def _terminating(p: ModelReplicaSetPass, out: Judged, rname: str, v: ReplicaView, rec: dict[str, Any] | None, current: bool, ordinal: int) -> None:
    if not v.pods:
        p.state.failed_at.pop(rname, None)
        return
    phase = rec.get("phase") if rec and rec.get("phase") in (DRAINING, FAILED) else DRAINING
    out.records[rname] = {**(rec or p.record_from_pods(rname, v)), "phase": phase, "endpoint": None}
    _going(p, out, rname, v, current, ordinal)


def _failed(p: ModelReplicaSetPass, out: Judged, rname: str, v: ReplicaView, rec: dict[str, Any] | None, current: bool, ordinal: int, h: Any) -> None:
    p.delete_replica(v)
    restarts = v.restarts + 1
    p.state.failed_at[rname] = p.now
    wait = restart_backoff(restarts, p.timing.restart_backoff, p.timing.max_restart_backoff)
    gang = v.expected > 1
    p.event(
        "Warning",
        "GangRestart" if gang else "ReplicaRestart",
        f"{h.message}; deleting the {'group' if gang else 'replica'} and restarting it in {int(wait)}s (restart {restarts})",
        once=False,
    )
    out.records[rname] = {
        **(rec or p.record_from_pods(rname, v)),
        "phase": FAILED,
        "restarts": restarts,
        "endpoint": None,
        "failedAt": rfc3339(p.now, precise=True),
    }
    if h.replan:
        out.records[rname].update(nodes=[], gpus=0, gpusPerNode=None, block=None, zone=None)
    out.failures.append(ConditionCause(h.reason, f"{h.message}; restart {restarts} at {rfc3339(p.now + wait)}"))
    out.states.append(ReplicaState(rname, current, FAILED, ordinal=ordinal, created=v.created, failed_at=p.now, restarts=restarts))


def _whole_or_creating(
    p: ModelReplicaSetPass, out: Judged, rname: str, v: ReplicaView, rec: dict[str, Any] | None, current: bool, ordinal: int, *, creating: bool
) -> None:
    if rec is None:
        rec = p.record_from_pods(rname, v)
    if creating:
        a = assignment_from_status(p.ns, p.name, rec)
        if a is not None:
            out.to_create[rname] = a
    lead = v.leader
    out.records[rname] = {**rec, "phase": replica_phase(v), "endpoint": f"{lead.ip}:{p.spec.engine.port}" if lead and lead.ip and v.ready else None}
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
    p.watch_timeouts(v)
