"""The typed records an evaluation's steps pass on: what observe read (frozen), what decide wants
read besides, and the plan act and write carry out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agentfleet_contract.agentfleet import Workers
from agentfleet_contract.modelreplicaset import ModelReplicaSetSpec

from agentfleet.autoscale.common import Decision
from agentfleet.autoscale.forecast import Lookahead, Profile
from agentfleet.autoscale.policy import Capacity, FleetView, Observation, PolicyConfig, PolicyState
from agentfleet.autoscale.sleep import Activity, SleepConfig, SleepDecision, SleepState
from agentfleet.autoscale.workers import WorkerSignals, WorkerState
from agentfleet.reconcile.shape import Wants


@dataclass(frozen=True)
class Post:
    """One Event to post about the object (``once=False``: every change is an action)."""

    type: str
    reason: str
    message: str

    @classmethod
    def of(cls, t: tuple[str, str, str]) -> Post:
        return cls(*t)

    def wire(self) -> tuple[str, str, str]:
        return (self.type, self.reason, self.message)


@dataclass(frozen=True)
class Subject:
    """The object evaluated, as read this evaluation."""

    kind: str
    namespace: str
    name: str
    generation: int
    obj: Mapping[str, Any]  # the whole object: Events and the status apply name it
    status: Mapping[str, Any]  # its live status (the autoscaler's fields are carried from it)
    conditions: tuple[Mapping[str, Any], ...]  # its conditions before this evaluation
    now: float

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.namespace, self.name)


@dataclass(frozen=True)
class ModelObserved:
    """One ModelReplicaSet evaluation's reads. The demand and capacity reads are made only when a
    plan needs them (``NeedsDemand``, ``NeedsCapacity``): a sleeping or waking set makes neither."""

    subject: Subject
    spec: ModelReplicaSetSpec
    config: PolicyConfig
    policy: PolicyState  # remembered (or restored from status), this evaluation's load time observed
    fleet: FleetView
    ready: int
    starting: int
    sleep_config: SleepConfig
    slept: SleepState  # remembered, or restored from status.sleep
    activity: Activity
    metrics: Observation | None  # None while asleep: there is no engine to ask
    url: str  # the Prometheus the metrics and the task layer come from
    demand_read: bool = False
    profile: Profile | None = None  # the learned demand profile (controllers/demand.py)
    schedule_error: str | None = None  # the last one reported
    capacity_asked: bool = False
    capacity: Capacity | None = None  # None: not asked, or the planner could not be read


@dataclass(frozen=True)
class NeedsDemand(Wants):
    """Awake and measured: the task layer (when the engines' metrics were read) and the profile."""

    tasks: bool


@dataclass(frozen=True)
class NeedsCapacity(Wants):
    """Growing: how many of ``extra`` new replicas the placement planner could place now."""

    extra: int


@dataclass(frozen=True)
class ModelFields:
    """The ModelReplicaSet status fields one evaluation writes (mrs_status_apply carries the rest)."""

    desired_replicas: int
    conditions: tuple[dict[str, Any], ...]
    observed: Mapping[str, Any] | None = None  # status.observed, when the policy measured
    last_scale: tuple[str, str, str] | None = None  # (time, reason, term), when the count changed
    learned_load_seconds: int | None = None
    forecast: Mapping[str, Any] | None = None
    sleep: Mapping[str, Any] | None = None

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"desiredReplicas": self.desired_replicas}
        if self.observed is not None:
            out["observed"] = dict(self.observed)
        if self.last_scale is not None:
            out["lastScaleTime"], out["lastScaleReason"], out["lastScaleTerm"] = self.last_scale
        if self.learned_load_seconds is not None:
            out["learnedModelLoadSeconds"] = self.learned_load_seconds
        out["conditions"] = list(self.conditions)
        if self.forecast is not None:
            out["forecast"] = dict(self.forecast)
        if self.sleep is not None:
            out["sleep"] = dict(self.sleep)
        return out


@dataclass(frozen=True)
class ModelPlan:
    """What a ModelReplicaSet evaluation decided: its status fields, Events and what to remember."""

    decision: Decision
    fields: ModelFields
    posts: tuple[Post, ...]
    sleep: SleepState
    policy: PolicyState
    planned: Lookahead | None = None  # the demand floors (None asleep): the profile to keep and save


@dataclass(frozen=True)
class WorkersObserved:
    """One AgentFleet workers evaluation's reads; the workers' metrics only while awake."""

    subject: Subject
    workers: Workers
    current: int
    ready: int
    sleep_config: SleepConfig
    slept: SleepState
    work: float | None  # tasks in the fleet's stream (only read when it may sleep)
    remembered: WorkerState | None
    signals_read: bool = False
    signals: WorkerSignals | None = None


@dataclass(frozen=True)
class NeedsSignals(Wants):
    """Awake: the workers' own figures from Prometheus."""


@dataclass(frozen=True)
class WorkersFields:
    desired_workers: int
    conditions: tuple[dict[str, Any], ...]
    sleep: Mapping[str, Any] | None = None

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"desiredWorkers": self.desired_workers, "conditions": list(self.conditions)}
        if self.sleep is not None:
            out["sleep"] = dict(self.sleep)
        return out


@dataclass(frozen=True)
class WorkersPlan:
    decision: Decision
    fields: WorkersFields
    posts: tuple[Post, ...]
    sleep: SleepState
    workers: WorkerState | None  # None: asleep, the worker policy was not asked (its memory stays)


@dataclass(frozen=True)
class Acted:
    """What act did: nothing write needs beyond the plan, but named so the shape is the same."""

    remembered: tuple[str, ...] = field(default_factory=tuple)


def sleep_posts(sd: SleepDecision) -> tuple[Post, ...]:
    return (Post.of(sd.event),) if sd.event else ()
