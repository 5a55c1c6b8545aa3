"""The autoscaler's evaluation in the framework's steps: decide is pure and asks for the reads only
some plans need (the task layer and demand profile when awake, the planner's room only when
growing); a sleeping object reads neither."""

from __future__ import annotations

import copy
import time
from dataclasses import replace
from typing import Any

from agentfleet.autoscale.policy import Capacity, Observation
from agentfleet.controllers.autoscaler import AutoscaleState, ModelEvaluation
from agentfleet.controllers.autoscaler.plan import decide_model
from agentfleet.controllers.autoscaler.records import ModelPlan, NeedsCapacity, NeedsDemand
from agentfleet.reconcile.events import EventRecorder
from tests.unit.autoscale.test_autoscale_controller import FakeReader, FakeReads, mrs_obj, samples3


class CountingReads(FakeReads):
    def __init__(self) -> None:
        super().__init__()
        self.capacity_asked: list[int] = []
        self.profiles_read = 0

    def capacity(self, *args: Any) -> Capacity:
        self.capacity_asked.append(args[-1])
        return Capacity(placeable_extra=10)

    def read_profile(self, namespace: str, name: str) -> dict[str, str] | None:
        self.profiles_read += 1
        return super().read_profile(namespace, name)

    def fleet_work(self, namespace: str, name: str) -> float | None:
        return 0.0


class Ctl:
    """What an evaluation uses of its controller (EvaluationServices), with counting reads."""

    def __init__(self, obs: Observation, reads: CountingReads) -> None:
        from agentfleet.controllers.autoscaler import AutoscalerSettings

        self.kube = None
        self.events = EventRecorder(lambda *a: None)
        self.settings = AutoscalerSettings()
        self.reads = reads
        self.reader = lambda url: FakeReader(obs)
        self.clock = time.time
        self.task_layers = 0

    def fleets_in(self, namespace: str) -> list[dict[str, Any]]:
        return []

    def task_layer(self, namespace: str, model: str, url: str) -> float | None:
        self.task_layers += 1
        return None


def evaluation(status: dict[str, Any], queue: float, spec: dict[str, Any] | None = None) -> tuple[Any, Ctl]:
    samples = tuple(replace(s, waiting=queue) for s in samples3())
    obs = Observation(at=time.time(), samples=samples)
    ctl = Ctl(obs, CountingReads())
    obj = mrs_obj(status)
    if spec is not None:
        obj["spec"] = spec
    return ModelEvaluation(ctl, obj, AutoscaleState(), time.time()), ctl  # type: ignore[arg-type]


def test_growing_asks_for_the_demand_reads_then_the_planner_and_decide_is_pure() -> None:
    ev, ctl = evaluation({"desiredReplicas": 3}, queue=40.0)
    observed = ev.observe()
    before = copy.deepcopy(observed)
    wants = decide_model(observed)
    assert wants == NeedsDemand(tasks=True)
    assert decide_model(observed) == wants and observed == before  # same answer, nothing changed
    assert ctl.task_layers == 0 and ctl.reads.profiles_read == 0  # decide read nothing
    observed = ev.observe_more(observed, wants)
    wants = decide_model(observed)
    assert isinstance(wants, NeedsCapacity) and wants.extra > 0
    assert ctl.reads.capacity_asked == []
    observed, plan = ev.settle(ev.observe())
    assert isinstance(plan, ModelPlan) and plan.decision.desired > 3
    assert ctl.reads.capacity_asked == [wants.extra]


def test_holding_never_asks_the_planner() -> None:
    ev, ctl = evaluation({"desiredReplicas": 3}, queue=8.0)
    _, plan = ev.settle(ev.observe())
    assert plan.decision.desired <= 3
    assert ctl.task_layers == 1 and ctl.reads.capacity_asked == []


def test_a_sleeping_object_reads_no_metrics_task_layer_profile_or_planner() -> None:
    from tests.unit.autoscale.test_autoscale_controller import SPEC

    spec = {**SPEC, "autoscaling": {**SPEC["autoscaling"], "minReplicas": 0}}
    asleep = {"desiredReplicas": 0, "sleep": {"state": "Sleeping"}}
    ev, ctl = evaluation(asleep, queue=0.0, spec=spec)
    observed = ev.observe()
    assert observed.metrics is None
    _, plan = ev.settle(observed)
    assert plan.fields.desired_replicas == 0 and plan.planned is None
    assert ctl.task_layers == 0 and ctl.reads.profiles_read == 0 and ctl.reads.capacity_asked == []
