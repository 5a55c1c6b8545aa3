"""Pure decisions of the ModelReplicaSet controller: which replicas should exist, which one to
remove, when a failed gang may restart, how a spec change rolls, and what status says about it.

The controller observes (the ModelReplicaSet, its pods, the node inventory, vLLM's /metrics),
calls these functions and carries out what they return. Nothing here does I/O, so every
decision is unit-tested without a cluster and a reconcile is a pure function of what exists.

Vocabulary:
- A replica is one vLLM engine: one pod, or a gang of pods (leader + workers) on several nodes.
  It is named `<mrs>-<spec-hash[:5]>-<ordinal>`; the name is recomputed from what exists (lowest
  free ordinal), so an operator restarted in the middle of a scale-up re-derives the very names
  it was creating and never makes a duplicate.
- A replica's record is its entry in status.placements: where it was planned, its phase and how
  often it was restarted. Its pods carry the same placement (required node affinity), so a record
  lost to a crash is rebuilt from them; a failed replica's record keeps its GPUs and its restart
  count while it waits out its backoff.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agentfleet_contract.conditions import DEGRADED, PROGRESSING, READY, set_condition
from agentfleet_contract.modelreplicaset import ModelReplicaSetSpec

from agentfleet.placement import REPLICA_LABEL, pod_gpus
from agentfleet.render.modelreplicaset import GANG_SIZE_LABEL, ROLE_LABEL, ROLE_SERVER, ROLE_WORKER, SERVING_LABEL, SPEC_HASH_LABEL

SCALING_LIMITED = "ScalingLimited"
# Annotation on a draining replica's pods: when the drain began (RFC 3339). On the pods, not in
# memory, so a restarted operator still honours spec.lifecycle.drainTimeoutSeconds from the start.
DRAINING_SINCE_ANNOTATION = "agentfleet.io/draining-since"

HASH_IN_NAME = 5
# How often a draining replica's in-flight count is read again.
DRAIN_POLL_SECONDS = 2.0
# A pod the kube-scheduler keeps refusing (its node lacks CPU or memory the planner does not
# model, or the cluster moved under the plan) is re-planned after this long.
UNSCHEDULABLE_GRACE_SECONDS = 60.0

PENDING, LOADING, READY_PHASE, DRAINING, FAILED, TERMINATING = "Pending", "Loading", "Ready", "Draining", "Failed", "Terminating"
# Replicas that occupy a slot of the desired count.
ACTIVE = frozenset({PENDING, LOADING, READY_PHASE, FAILED})
# Record phases of a replica whose pods have all existed at once: a member missing now was lost,
# not merely not created yet.
STARTED = frozenset({LOADING, READY_PHASE, DRAINING, FAILED})
_TERMINAL_POD = frozenset({"Succeeded", "Failed"})


# --- Names -----------------------------------------------------------------------------------


def replica_name(mrs: str, spec_hash: str, ordinal: int) -> str:
    return f"{mrs}-{spec_hash[:HASH_IN_NAME]}-{ordinal}"


def parse_replica_name(mrs: str, name: str) -> tuple[str, int] | None:
    """(hash prefix, ordinal) of a replica name of this ModelReplicaSet, or None."""
    m = re.fullmatch(re.escape(mrs) + rf"-([0-9a-f]{{{HASH_IN_NAME}}})-([0-9]+)", name)
    return (m.group(1), int(m.group(2))) if m else None


def new_replica_names(mrs: str, spec_hash: str, taken: Iterable[str], n: int) -> list[str]:
    """n names for new replicas: the lowest ordinals of this spec hash that no replica uses.

    `taken` holds every replica name that still exists in any form (record, pod, terminating pod):
    a name is reused only once the replica that had it is entirely gone."""
    used = set(taken)
    out: list[str] = []
    ordinal = 0
    while len(out) < n:
        name = replica_name(mrs, spec_hash, ordinal)
        if name not in used:
            out.append(name)
        ordinal += 1
    return out


# --- Desired count ---------------------------------------------------------------------------


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
    want, source = (status_desired, "autoscaler") if status_desired is not None else (spec.replicas, "spec.replicas (no autoscaler decision yet)")
    if want < a.min_replicas:
        return Desired(a.min_replicas, source, "TooFewReplicas", f"{source} asks for {want}, below minReplicas {a.min_replicas}")
    if want > a.max_replicas:
        return Desired(a.max_replicas, source, "TooManyReplicas", f"{source} asks for {want}, above maxReplicas {a.max_replicas}")
    return Desired(want, source)


# --- Observed pods ---------------------------------------------------------------------------


def parse_time(value: Any) -> float | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def rfc3339(ts: float, *, precise: bool = False) -> str:
    """UTC timestamp as Kubernetes writes it; `precise` keeps milliseconds (for short timeouts)."""
    t = datetime.fromtimestamp(ts, UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z" if precise else t.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class PodView:
    """What the controller needs to know about one replica pod."""

    name: str
    replica: str
    index: int  # 0 is the server or the gang's leader
    role: str
    node: str | None  # bound node, else the node its affinity pins it to
    bound: bool
    phase: str
    ready: bool
    deleting: bool
    serving: bool | None  # None for workers, which never serve
    spec_hash: str
    gang_size: int
    created: float
    ip: str | None = None
    unschedulable: str | None = None  # the scheduler's message while it refuses the pod
    unschedulable_since: float | None = None
    draining_since: float | None = None
    reason: str = ""  # why a terminal pod ended (Evicted, Error, ...)
    gpus: int = 0

    @property
    def terminal(self) -> bool:
        return self.phase in _TERMINAL_POD


def observe_pod(pod: Mapping[str, Any], pinned: str | None = None, resource: str = "nvidia.com/gpu") -> PodView | None:
    """A PodView of a replica pod as the API returns it (a dict); None if it is not one.
    `pinned`: the node its affinity pins it to (placement.pinned_node), for pods not bound yet."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    replica = labels.get(REPLICA_LABEL)
    if not replica:
        return None
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    role = labels.get(ROLE_LABEL, ROLE_SERVER)
    name = meta.get("name", "")
    index = 0
    if role == ROLE_WORKER:
        tail = name.rsplit("-", 1)[-1]
        index = int(tail) if tail.isdigit() else 1
    conds = {c.get("type"): c for c in status.get("conditions") or []}
    ready = (conds.get("Ready") or {}).get("status") == "True"
    sched = conds.get("PodScheduled") or {}
    unsched = (sched.get("message") or "Unschedulable") if sched.get("status") == "False" and sched.get("reason") == "Unschedulable" else None
    serving_label = labels.get(SERVING_LABEL)
    annotations = meta.get("annotations") or {}
    try:
        gang = int(labels.get(GANG_SIZE_LABEL, "1"))
    except ValueError:
        gang = 1
    return PodView(
        name=name,
        replica=replica,
        index=index,
        role=role,
        node=spec.get("nodeName") or pinned,
        bound=bool(spec.get("nodeName")),
        phase=status.get("phase") or "Pending",
        ready=ready,
        deleting=bool(meta.get("deletionTimestamp")),
        serving=None if role == ROLE_WORKER else serving_label != "false",
        spec_hash=labels.get(SPEC_HASH_LABEL, ""),
        gang_size=max(1, gang),
        created=parse_time(meta.get("creationTimestamp")) or 0.0,
        ip=status.get("podIP"),
        unschedulable=unsched,
        unschedulable_since=parse_time(sched.get("lastTransitionTime")) if unsched else None,
        draining_since=parse_time(annotations.get(DRAINING_SINCE_ANNOTATION)),
        reason=status.get("reason") or "",
        gpus=pod_gpus(pod, resource),
    )


# --- One replica: health and phase -----------------------------------------------------------


@dataclass(frozen=True)
class ReplicaView:
    """A replica as observed: its pods (deleting ones too) and its status record, if any."""

    name: str
    pods: tuple[PodView, ...] = ()
    record: Mapping[str, Any] | None = None  # status.placements entry (wire form)

    @property
    def live(self) -> tuple[PodView, ...]:
        return tuple(p for p in self.pods if not p.deleting)

    @property
    def leader(self) -> PodView | None:
        return next((p for p in self.live if p.index == 0), None)

    @property
    def expected(self) -> int:
        """Pods the replica has when complete: its planned nodes, else what its pods say."""
        if self.record and self.record.get("nodes"):
            return len(self.record["nodes"])
        return max((p.gang_size for p in self.pods), default=1)

    @property
    def recorded_phase(self) -> str | None:
        return (self.record or {}).get("phase")

    @property
    def restarts(self) -> int:
        return int((self.record or {}).get("restarts") or 0)

    @property
    def nodes(self) -> tuple[str, ...]:
        if self.record and self.record.get("nodes"):
            return tuple(self.record["nodes"])
        return tuple(p.node for p in sorted(self.live, key=lambda p: p.index) if p.node)

    @property
    def spec_hash(self) -> str | None:
        lead = self.leader or next(iter(self.pods), None)
        return lead.spec_hash if lead else None

    @property
    def draining(self) -> bool:
        lead = self.leader
        return (lead is not None and lead.serving is False) or (not self.live and self.recorded_phase == DRAINING)

    @property
    def ready(self) -> bool:
        """The engine answers: its leader is Ready and every member runs."""
        lead = self.leader
        live = self.live
        return lead is not None and lead.ready and len(live) >= self.expected and all(p.phase == "Running" for p in live)

    @property
    def created(self) -> float:
        return min((p.created for p in self.pods), default=0.0)


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
    stuck = [p for p in live if p.unschedulable and p.unschedulable_since is not None and now - p.unschedulable_since >= UNSCHEDULABLE_GRACE_SECONDS]
    if stuck:
        p = stuck[0]
        return Health("failed", "Unschedulable", f"the scheduler refuses pod {p.name} on node {p.node}: {p.unschedulable}", replan=True)
    if r.expected > 1 and not r.ready and all(p.bound for p in live) and not r.draining:
        # Time from the newest member: the group started loading once its last pod existed.
        age = now - max(p.created for p in live)
        if age >= startup_timeout:
            return Health(
                "failed", "StartupTimeout", f"replica {r.name} is not ready {int(age)}s after its pods started (startupTimeoutSeconds {int(startup_timeout)})"
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


# --- In-flight work from vLLM's /metrics -----------------------------------------------------

IN_FLIGHT_METRICS = ("vllm:num_requests_running", "vllm:num_requests_waiting")


def parse_in_flight(text: str) -> int | None:
    """Requests a vLLM server holds (running + waiting; waiting ones were accepted too), summed over
    engines, from its Prometheus text exposition; None if the gauges are absent."""
    total = 0.0
    seen = False
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_end = min((i for i in (line.find("{"), line.find(" ")) if i >= 0), default=-1)
        if name_end < 0 or line[:name_end] not in IN_FLIGHT_METRICS:
            continue
        try:
            value = float(line.rsplit("}", 1)[-1].split()[0])
        except (IndexError, ValueError):
            continue
        if math.isfinite(value):
            total += value
            seen = True
    return int(round(total)) if seen else None


# --- The step decision -----------------------------------------------------------------------


@dataclass(frozen=True)
class ReplicaState:
    """A replica reduced to what scaling and rolling decide on."""

    name: str
    current: bool  # carries the spec's hash
    phase: str  # Pending | Loading | Ready | Draining | Failed | Terminating
    ready: bool = False
    ordinal: int = 0
    created: float = 0.0
    in_flight: int | None = None  # None: not known (metrics unreachable)
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
class Decision:
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


def _remove(d: Decision, r: ReplicaState, why: str) -> None:
    # A replica that is not ready serves nothing (Services only route to ready pods): delete it at
    # once. A ready one is drained first.
    if r.ready:
        d.drain.append(r.name)
    else:
        d.delete.append((r.name, why))


def decide(states: Sequence[ReplicaState], desired: int, now: float, t: Timing, *, surge_blocked: bool = False) -> Decision:
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
    d = Decision()
    by_phase: dict[str, list[ReplicaState]] = {}
    for r in states:
        by_phase.setdefault(r.phase, []).append(r)

    # Drains in progress.
    still_draining: list[ReplicaState] = []
    for r in by_phase.get(DRAINING, []):
        since = r.draining_since if r.draining_since is not None else now
        left = t.drain_timeout - (now - since)
        if not r.ready:
            d.delete.append((r.name, "drained: not ready, so it holds no requests"))
        elif r.in_flight == 0:
            d.delete.append((r.name, "drained: 0 requests in flight"))
        elif left <= 0:
            held = "an unknown number of" if r.in_flight is None else str(r.in_flight)
            d.delete.append((r.name, f"drain timeout ({int(t.drain_timeout)}s) with {held} requests in flight"))
        else:
            still_draining.append(r)
            d.wake(min(DRAIN_POLL_SECONDS, left))

    active = [r for r in states if r.phase in ACTIVE]
    current = [r for r in active if r.current]
    outdated = [r for r in active if not r.current]

    # Failed replicas of the current spec restart after their backoff; outdated ones are replaced.
    for r in current:
        if r.phase != FAILED:
            continue
        due = (r.failed_at if r.failed_at is not None else now) + restart_backoff(r.restarts, t.restart_backoff, t.max_restart_backoff)
        if now >= due:
            d.restart.append(r.name)
        else:
            d.wake(due - now)

    if not outdated:
        deficit = desired - len(current)
        if deficit > 0:
            back = sorted((r for r in still_draining if r.current and r.ready), key=lambda r: -(r.draining_since or 0))[:deficit]
            d.undrain = [r.name for r in back]
            d.create = deficit - len(back)
        elif deficit < 0:
            for r in removal_order(current)[:-deficit]:
                _remove(d, r, "scale down: not ready, so it holds no requests")
        return d

    # A rolling update.
    if desired == 0:
        for r in removal_order(active):
            _remove(d, r, "scale to zero: not ready, so it holds no requests")
        return d
    for r in outdated:
        if not r.ready:
            d.delete.append((r.name, "outdated and not ready"))
    serving_old = [r for r in outdated if r.ready]
    terminating = by_phase.get(TERMINATING, [])
    loading = [r for r in current if r.phase != READY_PHASE]
    # Every draining replica counts, including one whose drain ends (and pods are deleted) in this
    # step: its pods and GPUs stay until they are gone, like a terminating one's. Creating the
    # next surge replica beside it would briefly hold desired + 2 replicas.
    going = len(by_phase.get(DRAINING, [])) + len(terminating)
    if going:
        d.waiting = f"waiting for {going} outdated replica(s) to drain and go"
        return d
    if loading:
        d.waiting = f"waiting for new replica {loading[0].name} to become Ready"
        return d
    total = len(current) + len(serving_old)
    if serving_old and (total > desired or (surge_blocked and total >= desired)):
        victim = removal_order(serving_old)[0]
        d.drain.append(victim.name)
        return d
    if len(current) < desired:
        d.create = 1
    return d


# --- Status ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    reason: str
    message: str


@dataclass
class Summary:
    """What the controller found and did in one reconcile, for conditions."""

    desired: int
    replicas: int  # active + draining
    ready: int  # ready and serving
    current: int  # active replicas of the current spec
    outdated: int
    draining: int = 0
    starting: int = 0  # active, not ready
    invalid: str | None = None  # validation error: nothing is done
    capacity_error: str | None = None  # ModelDoesNotFit message: no new pods
    unplaced: Problem | None = None  # the planner's reason and message
    unplaced_count: int = 0
    limited: Problem | None = None  # autoscaling min/max clamp
    failures: list[Problem] = field(default_factory=list)  # restarting / lost replicas
    waiting: str = ""


def compose_conditions(conditions: list[dict[str, Any]], s: Summary, generation: int, now: str | None = None) -> list[dict[str, Any]]:
    """Ready / Progressing / Degraded / ScalingLimited from a Summary. Ready is True only when the
    desired number of replicas is ready and serving: never before."""
    c = list(conditions)

    def put(type_: str, status: bool, reason: str, message: str) -> None:
        nonlocal c
        c = set_condition(c, type_, status, reason, message, generation, now)

    if s.invalid is not None:
        put(READY, False, "InvalidSpec", s.invalid)
        put(PROGRESSING, False, "InvalidSpec", "nothing is changed until the spec is valid")
        return c
    if s.capacity_error is not None:
        put(READY, s.desired > 0 and s.ready >= s.desired, "ModelDoesNotFit", s.capacity_error)
        put(PROGRESSING, False, "ModelDoesNotFit", "no replica is created until the model fits: " + s.capacity_error)
        put(SCALING_LIMITED, True, "ModelDoesNotFit", s.capacity_error)
        return c

    ready_ok = s.ready >= s.desired
    if s.desired == 0:
        put(READY, True, "ScaledToZero", "spec asks for 0 replicas")
    elif ready_ok:
        put(READY, True, "AllReplicasReady", f"{s.ready} of {s.desired} replicas ready")
    elif s.unplaced is not None:
        put(READY, False, s.unplaced.reason, f"{s.ready} of {s.desired} replicas ready; {s.unplaced_count} cannot be placed: {s.unplaced.message}")
    else:
        put(READY, False, "ReplicasNotReady", f"{s.ready} of {s.desired} replicas ready")

    if s.outdated:
        put(
            PROGRESSING,
            True,
            "RollingUpdate",
            f"{s.current} of {s.current + s.outdated} replicas run the current spec" + (f"; {s.waiting}" if s.waiting else ""),
        )
    elif s.unplaced is not None:
        put(PROGRESSING, False, s.unplaced.reason, s.unplaced.message)
    elif s.draining:
        put(PROGRESSING, True, "ScalingDown", f"draining {s.draining} replica(s)")
    elif s.current < s.desired:
        put(PROGRESSING, True, "ScalingUp", f"{s.current} of {s.desired} replicas exist")
    elif s.starting:
        put(PROGRESSING, True, "ReplicasStarting", f"{s.starting} replica(s) loading")
    else:
        put(PROGRESSING, False, "ReplicasUpToDate", f"{s.current} replica(s) run the current spec")

    if s.failures:
        first = s.failures[0]
        more = f" (and {len(s.failures) - 1} more)" if len(s.failures) > 1 else ""
        put(DEGRADED, True, first.reason, first.message + more)
    else:
        put(DEGRADED, False, "AsExpected", "no replica failed")

    if s.unplaced is not None:
        put(SCALING_LIMITED, True, s.unplaced.reason, f"{s.unplaced_count} of {s.desired} replicas cannot be placed: {s.unplaced.message}")
    elif s.limited is not None:
        put(SCALING_LIMITED, True, s.limited.reason, s.limited.message)
    else:
        put(SCALING_LIMITED, False, "DesiredReplicasPlaced", "every desired replica has a placement")
    return c


def strip_transition_times(conditions: Iterable[Mapping[str, Any]]) -> list[tuple]:
    """Conditions compared for change; lastTransitionTime moves only with status anyway."""
    return sorted((c.get("type"), c.get("status"), c.get("reason"), c.get("message"), c.get("observedGeneration")) for c in conditions)


__all__ = [
    "ACTIVE",
    "DRAINING_SINCE_ANNOTATION",
    "Decision",
    "Desired",
    "Health",
    "PodView",
    "Problem",
    "ReplicaState",
    "ReplicaView",
    "SCALING_LIMITED",
    "Summary",
    "Timing",
    "compose_conditions",
    "decide",
    "desired_replicas",
    "new_replica_names",
    "observe_pod",
    "parse_in_flight",
    "parse_replica_name",
    "removal_order",
    "replica_health",
    "replica_name",
    "replica_phase",
    "restart_backoff",
    "rfc3339",
]
