"""The first part of a ModelReplicaSet pass's decide: judge each replica (replica_rollout.replica_health)
and say what cannot wait for a rollout step: a failed replica is deleted and backs off, a lost one
(its node gone) is replaced at once, an incomplete one nobody can finish is removed.

Pure: ``judge_replicas`` reads the pass's observation (``Observed``) and returns a frozen
``Judged``: the typed records and states the rollout step and act read, and the deletions, Events
and wake-ups act carries out (reconcile.py). Nothing here calls back into the pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from agentfleet.controllers.modelreplicaset.records import Observed, Post, ReplicaRecord
from agentfleet.placement import Assignment, assignment_from_status, placement_status, replica_key
from agentfleet.replica_rollout import (
    DRAINING,
    FAILED,
    PENDING,
    TERMINATING,
    UNSCHEDULABLE_GRACE_SECONDS,
    ConditionCause,
    Health,
    ReplicaState,
    ReplicaView,
    parse_replica_name,
    parse_time,
    replica_health,
    replica_phase,
    restart_backoff,
    rfc3339,
)


@dataclass(frozen=True)
class Judged:
    """Every replica judged: read by the rollout step, carried out by act."""

    records: Mapping[str, ReplicaRecord]  # replica -> its status.placements record
    states: tuple[ReplicaState, ...]
    failures: tuple[ConditionCause, ...]
    to_create: Mapping[str, Assignment]  # replicas whose missing pods are applied in this pass
    current: Mapping[str, bool]  # replica -> runs the current spec
    terminating: frozenset[str]  # replicas on their way out
    # What act carries out for this judgment, in order:
    deletes: tuple[tuple[ReplicaView, frozenset[str]], ...]  # (replica, nodes to force-delete on)
    events: tuple[Post, ...]  # each one its own Event
    wakes: tuple[float, ...]  # seconds until a timeout or grace runs out
    failed_at: Mapping[str, float]  # replica -> when it failed, to remember
    forget_failed: frozenset[str]  # replicas whose failure time to forget


@dataclass
class _Judging:
    """The judgment while it is made (judge_replicas freezes it)."""

    records: dict[str, ReplicaRecord] = field(default_factory=dict)
    states: list[ReplicaState] = field(default_factory=list)
    failures: list[ConditionCause] = field(default_factory=list)
    to_create: dict[str, Assignment] = field(default_factory=dict)
    current: dict[str, bool] = field(default_factory=dict)
    terminating: set[str] = field(default_factory=set)
    deletes: list[tuple[ReplicaView, frozenset[str]]] = field(default_factory=list)
    events: list[Post] = field(default_factory=list)
    wakes: list[float] = field(default_factory=list)
    failed_at: dict[str, float] = field(default_factory=dict)
    forget_failed: set[str] = field(default_factory=set)

    def frozen(self) -> Judged:
        return Judged(
            records=dict(self.records),
            states=tuple(self.states),
            failures=tuple(self.failures),
            to_create=dict(self.to_create),
            current=dict(self.current),
            terminating=frozenset(self.terminating),
            deletes=tuple(self.deletes),
            events=tuple(self.events),
            wakes=tuple(self.wakes),
            failed_at=dict(self.failed_at),
            forget_failed=frozenset(self.forget_failed),
        )


def is_current(obs: Observed, v: ReplicaView) -> bool:
    if v.spec_hash:
        return v.spec_hash == obs.shash
    parsed = parse_replica_name(obs.name, v.name)
    return parsed is not None and obs.shash.startswith(parsed[0])


def record_from_pods(obs: Observed, rname: str, v: ReplicaView) -> ReplicaRecord:
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
    return ReplicaRecord.from_wire(placement_status(a, phase=PENDING, restarts=v.restarts).wire())


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
    out = _Judging()
    for rname, v in obs.views.items():
        current = is_current(obs, v)
        out.current[rname] = current
        ordinal = (parse_replica_name(obs.name, rname) or ("", 0))[1]
        rec = ReplicaRecord.from_wire(v.record) if v.record else None
        if rec and rec.phase == FAILED and not v.live:
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
            out.events.append(
                Post("Warning", h.reason, f"{h.message}; deleting its pods and placing a replacement", once=False)
            )
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
    return out.frozen()


def _going(out: _Judging, rname: str, v: ReplicaView, current: bool, ordinal: int) -> None:
    out.states.append(ReplicaState(rname, current, TERMINATING, ordinal=ordinal, created=v.created))
    out.terminating.add(rname)


def _backing_off(
    obs: Observed,
    out: _Judging,
    rname: str,
    v: ReplicaView,
    rec: ReplicaRecord,
    current: bool,
    ordinal: int,
    remembered: Mapping[str, float],
) -> None:
    """A failed replica waiting out its backoff: its pods are gone or going."""
    t = obs.timing
    # The failure time is in status, so an operator restart does not restart the backoff (a
    # restart storm of a group still loading); memory covers old records.
    failed_at = parse_time(rec.failed_at)
    if failed_at is None:
        failed_at = remembered.get(rname, obs.now)
        out.failed_at[rname] = failed_at
    restarts = int(rec.restarts or 0)
    at = failed_at + restart_backoff(restarts, t.restart_backoff, t.max_restart_backoff)
    out.records[rname] = rec
    out.states.append(
        ReplicaState(rname, current, FAILED, ordinal=ordinal, created=v.created, failed_at=failed_at, restarts=restarts)
    )
    out.failures.append(
        ConditionCause("RestartBackoff", f"replica {rname} failed; restart {restarts} at {rfc3339(at)}")
    )


def _terminating(
    obs: Observed, out: _Judging, rname: str, v: ReplicaView, rec: ReplicaRecord | None, current: bool, ordinal: int
) -> None:
    if not v.pods:
        out.forget_failed.add(rname)
        return
    phase = rec.phase if rec and rec.phase in (DRAINING, FAILED) else DRAINING
    out.records[rname] = replace(rec or record_from_pods(obs, rname, v), phase=phase, endpoint=None)
    _going(out, rname, v, current, ordinal)


def _failed(
    obs: Observed,
    out: _Judging,
    rname: str,
    v: ReplicaView,
    rec: ReplicaRecord | None,
    current: bool,
    ordinal: int,
    h: Health,
) -> None:
    out.deletes.append((v, frozenset()))
    restarts = v.restarts + 1
    out.failed_at[rname] = obs.now
    wait = restart_backoff(restarts, obs.timing.restart_backoff, obs.timing.max_restart_backoff)
    gang = v.expected > 1
    out.events.append(
        Post(
            "Warning",
            "GangRestart" if gang else "ReplicaRestart",
            (
                f"{h.message}; deleting the {'group' if gang else 'replica'} and restarting it in {int(wait)}s "
                f"(restart {restarts})"
            ),
            once=False,
        )
    )
    failed = replace(
        rec or record_from_pods(obs, rname, v),
        phase=FAILED,
        restarts=restarts,
        endpoint=None,
        failed_at=rfc3339(obs.now, precise=True),
    )
    if h.replan:
        failed = replace(failed, nodes=(), gpus=0, gpus_per_node=None, block=None, zone=None)
    out.records[rname] = failed
    out.failures.append(ConditionCause(h.reason, f"{h.message}; restart {restarts} at {rfc3339(obs.now + wait)}"))
    out.states.append(
        ReplicaState(rname, current, FAILED, ordinal=ordinal, created=v.created, failed_at=obs.now, restarts=restarts)
    )


def _whole_or_creating(
    obs: Observed,
    out: _Judging,
    rname: str,
    v: ReplicaView,
    rec: ReplicaRecord | None,
    current: bool,
    ordinal: int,
    *,
    creating: bool,
) -> None:
    if rec is None:
        rec = record_from_pods(obs, rname, v)
    if creating:
        a = assignment_from_status(obs.ns, obs.name, rec.wire())
        if a is not None:
            out.to_create[rname] = a
    lead = v.leader
    out.records[rname] = replace(
        rec,
        phase=replica_phase(v),
        endpoint=f"{lead.ip}:{obs.spec.engine.port}" if lead and lead.ip and v.ready else None,
    )
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
