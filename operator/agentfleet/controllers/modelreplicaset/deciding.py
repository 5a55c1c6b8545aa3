"""The decide step of a ModelReplicaSet pass, pure: the model cache's fill (modelcache.py), every
replica judged (judging.py), then one rollout step (agentfleet.replica_rollout). It asks for the in-flight
requests of the replicas a step may drain or delete before it chooses (``NeedsInFlight``)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from agentfleet.controllers.modelreplicaset.canary import CanaryStep, canary_step
from agentfleet.controllers.modelreplicaset.judging import Judged, judge_replicas
from agentfleet.controllers.modelreplicaset.modelcache import CacheFill, decide_fill
from agentfleet.controllers.modelreplicaset.records import NeedsInFlight, Observed, Post
from agentfleet.reconcile.shape import Wants
from agentfleet.replica_rollout import ACTIVE, DRAINING, ReplicaState, RolloutStep, rollout_step


@dataclass(frozen=True)
class Plan:
    """What one pass will do: act carries it out, write reports it."""

    judged: Judged
    states: tuple[ReplicaState, ...]  # the judged states with their in-flight requests
    step: RolloutStep
    fill: CacheFill
    capacity_warning: Post | None  # the model does not fit the eligible GPUs
    canary: CanaryStep | None = None  # the canary replica, with a gated fleet (canarying.py)

    @property
    def rolling(self) -> bool:
        """A rolling update is under way: an active replica runs an outdated spec."""
        return any(not s.current for s in self.judged.states if s.phase in ACTIVE)


def in_flight_targets(obs: Observed, judged: Judged) -> dict[str, tuple[str, int]]:
    """Replicas draining, or candidates when one must go: whose in-flight work the step weighs."""
    active = [s for s in judged.states if s.phase in ACTIVE]
    choosing = len(active) > obs.desired.count or any(not s.current for s in active)
    targets = {}
    for s in judged.states:
        lead = obs.views[s.name].leader
        if s.ready and lead and lead.ip and (s.phase == DRAINING or (choosing and s.phase in ACTIVE)):
            targets[s.name] = (lead.ip, obs.spec.engine.port)
    return targets


def decide(obs: Observed) -> Plan | Wants:
    fill = decide_fill(obs.name, obs.spec, obs.status_in.get("modelCache") or {}, obs.cache_job)
    judged = judge_replicas(obs, obs.failed_at)
    targets = in_flight_targets(obs, judged)
    if targets and not obs.in_flight_read:
        return NeedsInFlight(targets)
    states = tuple(replace(s, in_flight=obs.in_flight.get(s.name)) for s in judged.states)
    step = rollout_step(list(states), obs.desired.count, obs.now, obs.timing, surge_blocked=obs.surge_blocked)
    if obs.capacity_error:
        # Nothing new starts from a spec whose model cannot fit; drains already under way finish.
        draining_now = {s.name for s in states if s.phase == DRAINING}
        step = RolloutStep(
            delete=[(r, why) for r, why in step.delete if r in draining_now], requeue_after=step.requeue_after
        )
    warning = Post("Warning", "ModelDoesNotFit", obs.capacity_error) if obs.capacity_error else None
    canary = None
    if obs.canary is not None:
        canary = canary_step(obs.name, obs.canary, set(obs.views) | set(obs.canary.views))
    return Plan(judged, states, step, fill, warning, canary)
