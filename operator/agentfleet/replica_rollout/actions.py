"""One step of scaling and rolling: how many replicas of the current spec should exist, and what
to do now to get closer -- create, take back from draining, drain, delete, restart. Pure and
idempotent, so a reconcile is a pure function of what exists."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from agentfleet_contract.modelreplicaset import ModelReplicaSetSpec

from agentfleet.replica_rollout.health import restart_backoff
from agentfleet.replica_rollout.phases import ACTIVE, DRAINING, FAILED, READY_PHASE, TERMINATING

# How often a draining replica's in-flight count is read again.
DRAIN_POLL_SECONDS = 2.0


@dataclass(frozen=True)
class Desired:
    count: int
    source: str  # for events and lastScaleReason
    limited_reason: str | None = None  # autoscaling bound hit: TooFewReplicas / TooManyReplicas
    limited_message: str = ""


def desired_replicas(spec: ModelReplicaSetSpec, status_desired: int | None) -> Desired:
    """spec.replicas while autoscaling is off (kubectl scale, HPA and KEDA write it); else what the
    autoscaler put into status.desiredReplicas, clamped to min/max. The operator never writes spec,
    and never writes status.desiredReplicas while the autoscaler owns it."""
    a = spec.autoscaling
    if not a.enabled:
        return Desired(spec.replicas, "spec.replicas")
    want, source = (
        (status_desired, "autoscaler")
        if status_desired is not None
        else (spec.replicas, "spec.replicas (no autoscaler decision yet)")
    )
    if want < a.min_replicas:
        return Desired(
            a.min_replicas, source, "TooFewReplicas", f"{source} asks for {want}, below minReplicas {a.min_replicas}"
        )
    if want > a.max_replicas:
        return Desired(
            a.max_replicas, source, "TooManyReplicas", f"{source} asks for {want}, above maxReplicas {a.max_replicas}"
        )
    return Desired(want, source)


@dataclass(frozen=True)
class ReplicaState:
    """A replica reduced to what scaling and rolling decide on."""

    name: str
    current: bool  # carries the spec's hash
    phase: str  # Pending | Loading | Ready | Draining | Failed | Terminating
    ready: bool = False
    ordinal: int = 0
    created: float = 0.0
    in_flight: int | None = None  # None: not known (/metrics unreachable, or no IN_FLIGHT_METRICS)
    draining_since: float | None = None
    failed_at: float | None = None
    restarts: int = 0


@dataclass(frozen=True)
class Timing:
    drain_timeout: float
    restart_backoff: float
    max_restart_backoff: float

    @classmethod
    def of(cls, spec: ModelReplicaSetSpec) -> Timing:
        lc = spec.lifecycle
        return cls(lc.drain_timeout_seconds, lc.restart_backoff_seconds, lc.max_restart_backoff_seconds)


@dataclass
class RolloutStep:
    """What one reconcile does to the replicas (the output of rollout_step)."""

    create: int = 0  # new replicas of the current spec to plan and start
    undrain: list[str] = field(default_factory=list)  # draining replicas taken back into service
    drain: list[str] = field(default_factory=list)  # replicas to take out of service, then delete
    delete: list[tuple[str, str]] = field(default_factory=list)  # (replica, why): delete its pods now
    restart: list[str] = field(default_factory=list)  # failed replicas whose backoff is over
    waiting: str = ""  # why a rolling update holds still (for Progressing)
    requeue_after: float | None = None

    def wake(self, seconds: float) -> None:
        seconds = max(0.05, seconds)
        self.requeue_after = seconds if self.requeue_after is None else min(self.requeue_after, seconds)


def removal_order(states: Sequence[ReplicaState]) -> list[ReplicaState]:
    """Best replica to remove first: outdated before current, not ready (it has no in-flight work)
    before ready, then the least in-flight work (unknown counts as the most), then the newest."""

    def key(r: ReplicaState) -> tuple:
        load = r.in_flight if r.in_flight is not None else math.inf
        return (r.current, r.ready, load, -r.created, -r.ordinal, r.name)

    return sorted(states, key=key)


def _remove(step: RolloutStep, r: ReplicaState, why: str) -> None:
    # A replica that is not ready serves nothing (Services only route to ready pods): delete it at
    # once. A ready one is drained first.
    if r.ready:
        step.drain.append(r.name)
    else:
        step.delete.append((r.name, why))


def rollout_step(
    states: Sequence[ReplicaState], desired: int, now: float, t: Timing, *, surge_blocked: bool = False
) -> RolloutStep:
    """One step towards `desired` replicas of the current spec. Idempotent: called again on the
    outcome of its own actions it asks for nothing more until something changes.

    - Scale up: take current-spec replicas that are still draining back first (their model is
      loaded), then create new ones.
    - Scale down: remove per removal_order; ready ones drain (out of every Service) until their
      in-flight work is 0, they stop being ready, or drainTimeoutSeconds passes.
    - Spec change: one replica at a time: surge one new replica, wait until it is Ready, drain and
      delete one outdated replica, wait until it is gone. Outdated replicas that are not ready
      are removed at once. If the surge replica cannot be placed (no spare GPUs), one outdated
      replica is drained first instead (surge_blocked).
    - Failed replicas restart when their backoff is over.
    """
    step = RolloutStep()
    by_phase: dict[str, list[ReplicaState]] = {}
    for r in states:
        by_phase.setdefault(r.phase, []).append(r)
    still_draining = _finish_drains(step, by_phase.get(DRAINING, []), now, t)
    active = [r for r in states if r.phase in ACTIVE]
    current = [r for r in active if r.current]
    outdated = [r for r in active if not r.current]
    _restart_failed(step, current, now, t)
    if not outdated:
        _scale(step, current, still_draining, desired)
    else:
        _roll(step, active, current, outdated, by_phase, desired, surge_blocked)
    return step


def _finish_drains(step: RolloutStep, draining: Sequence[ReplicaState], now: float, t: Timing) -> list[ReplicaState]:
    """Delete drained replicas (not ready, no requests in flight, or out of time); return the rest."""
    still_draining: list[ReplicaState] = []
    for r in draining:
        since = r.draining_since if r.draining_since is not None else now
        left = t.drain_timeout - (now - since)
        if not r.ready:
            step.delete.append((r.name, "drained: not ready, so it holds no requests"))
        elif r.in_flight == 0:
            step.delete.append((r.name, "drained: 0 requests in flight"))
        elif left <= 0:
            held = "an unknown number of" if r.in_flight is None else str(r.in_flight)
            step.delete.append((r.name, f"drain timeout ({int(t.drain_timeout)}s) with {held} requests in flight"))
        else:
            still_draining.append(r)
            step.wake(min(DRAIN_POLL_SECONDS, left))
    return still_draining


def _restart_failed(step: RolloutStep, current: Sequence[ReplicaState], now: float, t: Timing) -> None:
    """Failed replicas of the current spec restart after their backoff (outdated ones are replaced)."""
    for r in current:
        if r.phase != FAILED:
            continue
        due = (r.failed_at if r.failed_at is not None else now) + restart_backoff(
            r.restarts, t.restart_backoff, t.max_restart_backoff
        )
        if now >= due:
            step.restart.append(r.name)
        else:
            step.wake(due - now)


def _scale(
    step: RolloutStep, current: Sequence[ReplicaState], still_draining: Sequence[ReplicaState], desired: int
) -> None:
    """Every replica runs the current spec: scale up (draining ones back first) or down."""
    deficit = desired - len(current)
    if deficit > 0:
        back = sorted((r for r in still_draining if r.current and r.ready), key=lambda r: -(r.draining_since or 0))[
            :deficit
        ]
        step.undrain = [r.name for r in back]
        step.create = deficit - len(back)
    elif deficit < 0:
        for r in removal_order(current)[:-deficit]:
            _remove(step, r, "scale down: not ready, so it holds no requests")


def _roll(
    step: RolloutStep,
    active: Sequence[ReplicaState],
    current: Sequence[ReplicaState],
    outdated: Sequence[ReplicaState],
    by_phase: dict[str, list[ReplicaState]],
    desired: int,
    surge_blocked: bool,
) -> None:
    """A rolling update: one surge replica at a time, then one outdated replica drained and gone."""
    if desired == 0:
        for r in removal_order(active):
            _remove(step, r, "scale to zero: not ready, so it holds no requests")
        return
    for r in outdated:
        if not r.ready:
            step.delete.append((r.name, "outdated and not ready"))
    serving_old = [r for r in outdated if r.ready]
    terminating = by_phase.get(TERMINATING, [])
    loading = [r for r in current if r.phase != READY_PHASE]
    # Every draining replica counts, including one whose drain ends (and pods are deleted) in this
    # step: its pods and GPUs stay until they are gone, like a terminating one's. Creating the
    # next surge replica beside it would briefly hold desired + 2 replicas.
    going = len(by_phase.get(DRAINING, [])) + len(terminating)
    if going:
        step.waiting = f"waiting for {going} outdated replica(s) to drain and go"
        return
    if loading:
        step.waiting = f"waiting for new replica {loading[0].name} to become Ready"
        return
    total = len(current) + len(serving_old)
    if serving_old and (total > desired or (surge_blocked and total >= desired)):
        victim = removal_order(serving_old)[0]
        step.drain.append(victim.name)
        return
    if len(current) < desired:
        step.create = 1
