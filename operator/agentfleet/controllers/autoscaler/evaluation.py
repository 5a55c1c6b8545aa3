"""One evaluation of one object in the framework's shape (agentfleet.reconcile.shape): observe
(pods, Prometheus, the fleets' work, then the task layer, the demand profile and the planner's
room only when the plan asks for them), decide (plan.py, pure), act (the per-object memory and the
demand profile's ConfigMap), write (status under the ``agentfleet-autoscaler`` field manager, Events)."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, ClassVar

from agentfleet_contract.agentfleet import Workers
from agentfleet_contract.common import API_VERSION
from agentfleet_contract.modelreplicaset import ModelReplicaSetSpec

from agentfleet.autoscale.common import AUTOSCALER_CONDITIONS
from agentfleet.autoscale.goodput import objectives_from_slo
from agentfleet.autoscale.pods import fleet_from_pods
from agentfleet.autoscale.policy import FleetView, LoadTime, Observation, PolicyConfig, PolicyState
from agentfleet.autoscale.sleep import SLEEPING, Activity, restore
from agentfleet.autoscale.workers import fleets_using
from agentfleet.controllers import demand
from agentfleet.controllers.autoscaler.plan import combined_work, decide_fleet_workers, decide_model, sleep_config
from agentfleet.controllers.autoscaler.reads import EvaluationServices
from agentfleet.controllers.autoscaler.records import (
    Acted,
    ModelObserved,
    ModelPlan,
    NeedsCapacity,
    NeedsDemand,
    NeedsSignals,
    Subject,
    WorkersObserved,
    WorkersPlan,
)
from agentfleet.controllers.autoscaler.settings import (
    AF,
    AUTOSCALER_FIELDS,
    AUTOSCALER_MANAGER,
    MRS,
    AutoscaleState,
)
from agentfleet.promql import Target
from agentfleet.reconcile.shape import Steps, Wants

log = logging.getLogger("agentfleet.autoscaler")


def subject(kind: str, obj: dict[str, Any], now: float) -> Subject:
    meta, status = obj["metadata"], obj.get("status") or {}
    return Subject(
        kind=kind,
        namespace=meta["namespace"],
        name=meta["name"],
        generation=int(meta.get("generation") or 0),
        obj=obj,
        status=status,
        conditions=tuple(status.get("conditions") or []),
        now=now,
    )


class Evaluation:
    """What both kinds' evaluations share: their object, memory, Events and the status write."""

    services: ClassVar[type] = EvaluationServices

    def __init__(self, ctl: EvaluationServices, obj: dict[str, Any], state: AutoscaleState, now: float) -> None:
        self.ctl = ctl
        self.obj = obj
        self.state = state
        self.now = now

    def warn(self, reason: str, message: str) -> None:
        self.ctl.events.event(self.obj, "Warning", reason, message)

    def report(self, s: Subject, body: dict[str, Any], posts: tuple[Any, ...]) -> float | None:
        # Named: with several objects evaluated, "holding 1: ..." alone says not whose decision it is.
        log.info("%s %s/%s: %s", s.kind, s.namespace, s.name, self.state.reason)
        self.ctl.kube.apply_status(body, manager=AUTOSCALER_MANAGER)
        for p in posts:
            self.ctl.events.event(self.obj, p.type, p.reason, p.message, once=False)
        self.ctl.watch_while_asleep(s.key, self.state.sleep)
        return self.ctl.period(s.kind, self.obj, self.state.sleep)


class ModelEvaluation(Evaluation, Steps[ModelObserved, ModelPlan, Acted]):
    """A ModelReplicaSet's replicas."""

    def observe(self) -> ModelObserved:
        s = subject(MRS, self.obj, self.now)
        parsed = ModelReplicaSetSpec.model_validate(dict(self.obj.get("spec") or {}))
        a, cfg = parsed.autoscaling, self.ctl.settings
        config = PolicyConfig.from_spec(a, initial_load_seconds=cfg.load_prior_seconds)
        policy = self.state.policy or PolicyState.initial(config)
        learned = s.status.get("learnedModelLoadSeconds")
        if policy.load_time.samples == 0 and learned:
            # An operator restart keeps what the last one learned (status is the only memory it has).
            policy = replace(policy, load_time=LoadTime(float(learned), samples=1))
        pf = fleet_from_pods(self.ctl.reads.pods(s.namespace, f"agentfleet.io/modelreplicaset={s.name}"), s.now)
        policy = replace(policy, load_time=policy.load_time.observe(pf.load_seconds))
        current = s.status.get("desiredReplicas")
        if current is None:
            current = len(pf.ready) + len(pf.starting) or parsed.replicas
        fleet = FleetView(current=int(current), ready=pf.ready, starting=pf.starting, ready_ages=pf.ready_ages)
        # Scale to zero (autoscale/sleep.py): asleep, the engines are not asked (there are none).
        sleep_cfg = sleep_config(a.min_replicas, a.sleep_after_idle_seconds)
        slept = self.state.sleep or restore(s.status.get("sleep"), s.now)
        asleep = sleep_cfg.enabled and slept.phase == SLEEPING
        url = a.prometheus_url or cfg.prometheus_url
        target = Target(
            cfg.matchers.format(
                namespace=s.namespace, name=s.name, model=parsed.model.served_name or parsed.model.name
            ),
            cfg.replica_label,
        )
        objectives = objectives_from_slo(
            a.goodput.ttft_milliseconds,
            a.goodput.time_per_output_token_milliseconds,
            a.goodput.e2e_latency_milliseconds,
        )
        metrics = None if asleep else self.ctl.reader(url).observe(target, objectives, a.window_seconds)
        activity = self.model_activity(s, pf.ready, metrics) if sleep_cfg.enabled else Activity(None, 0)
        return ModelObserved(
            subject=s,
            spec=parsed,
            config=config,
            policy=policy,
            fleet=fleet,
            ready=len(pf.ready),
            starting=len(pf.starting),
            sleep_config=sleep_cfg,
            slept=slept,
            activity=activity,
            metrics=metrics,
            url=url,
        )

    def model_activity(self, s: Subject, ready: tuple[str, ...], metrics: Observation | None) -> Activity:
        """The wake and idle signal of a ModelReplicaSet: the tasks queued or in flight at the
        AgentFleets that call it (their Redis streams, readable at zero) and the requests waiting or
        running at its replicas. (A fleet that wakes has its evaluation asked for at once:
        track_fleet_refs.)"""
        names = fleets_using(self.ctl.fleets_in(s.namespace), s.name)
        parts = [self.ctl.reads.fleet_work(s.namespace, n) for n in names]
        if metrics is None or not ready:
            parts.append(0.0)  # asleep, or nothing ready: no engine has work
        elif metrics.error is not None or not metrics.samples:
            parts.append(None)
        else:
            parts.append(sum(x.waiting + x.running for x in metrics.samples))
        return Activity(combined_work(parts), len(ready))

    def decide(self, observed: ModelObserved) -> ModelPlan | Wants:
        return decide_model(observed)

    def observe_more(self, observed: ModelObserved, wants: Wants) -> ModelObserved:
        s = observed.subject
        if isinstance(wants, NeedsDemand):
            metrics = observed.metrics
            if wants.tasks and metrics is not None:
                metrics = replace(metrics, tasks=self.ctl.task_layer(s.namespace, s.name, observed.url))
            config = demand.forecast_config(observed.spec)
            profile = demand.load(self.state.demand, self.ctl.reads, s.namespace, s.name, config)
            return replace(
                observed,
                metrics=metrics,
                demand_read=True,
                profile=profile,
                schedule_error=self.state.demand.schedule_error,
            )
        if isinstance(wants, NeedsCapacity):
            capacity = None
            try:
                capacity = self.ctl.reads.capacity(s.namespace, s.name, observed.spec, wants.extra)
            except Exception as exc:  # noqa: BLE001 - the API server hiccup is logged, the decision stands
                log.warning(f"capacity check failed, scaling without it: {exc}")
            return replace(observed, capacity_asked=True, capacity=capacity)
        return super().observe_more(observed, wants)

    def act(self, observed: ModelObserved, plan: ModelPlan) -> Acted:
        """What this evaluation leaves for the next: the memory, and the demand profile's ConfigMap."""
        s, state = observed.subject, self.state
        state.sleep, state.policy, state.reason = plan.sleep, plan.policy, plan.decision.reason
        if plan.planned is not None:
            state.demand.profile = plan.planned.profile
            demand.save_if_changed(state.demand, self.ctl.reads, dict(self.obj), s.namespace, s.name)
            state.demand.schedule_error = plan.planned.schedule_error
        return Acted()

    def write(self, observed: ModelObserved, plan: ModelPlan, acted: Acted) -> float | None:
        return self.report(observed.subject, mrs_status_apply(self.obj, plan.fields.wire()), plan.posts)


class WorkersEvaluation(Evaluation, Steps[WorkersObserved, WorkersPlan, Acted]):
    """An AgentFleet's workers."""

    def observe(self) -> WorkersObserved:
        s = subject(AF, self.obj, self.now)
        workers = Workers.model_validate(dict((self.obj.get("spec") or {}).get("workers") or {}))
        current = s.status.get("desiredWorkers")
        sleep_cfg = sleep_config(workers.min_replicas, workers.sleep_after_idle_seconds)
        return WorkersObserved(
            subject=s,
            workers=workers,
            current=int(current) if current is not None else workers.replicas,
            ready=int(s.status.get("readyWorkers") or 0),
            sleep_config=sleep_cfg,
            slept=self.state.sleep or restore(s.status.get("sleep"), s.now),
            # Scale to zero: the fleet's own Redis stream is the signal (no worker reports at zero).
            work=self.ctl.reads.fleet_work(s.namespace, s.name) if sleep_cfg.enabled else None,
            remembered=self.state.workers,
        )

    def decide(self, observed: WorkersObserved) -> WorkersPlan | Wants:
        return decide_fleet_workers(observed)

    def observe_more(self, observed: WorkersObserved, wants: Wants) -> WorkersObserved:
        if isinstance(wants, NeedsSignals):
            s, settings = observed.subject, self.ctl.settings
            signals = self.ctl.reader(settings.prometheus_url).worker_signals(
                settings.worker_matchers.format(namespace=s.namespace, name=s.name)
            )
            return replace(observed, signals_read=True, signals=signals)
        return super().observe_more(observed, wants)

    def act(self, observed: WorkersObserved, plan: WorkersPlan) -> Acted:
        self.state.sleep, self.state.reason = plan.sleep, plan.decision.reason
        if plan.workers is not None:
            self.state.workers = plan.workers
        return Acted()

    def write(self, observed: WorkersObserved, plan: WorkersPlan, acted: Acted) -> float | None:
        return self.report(observed.subject, af_status_apply(self.obj, plan.fields.wire()), plan.posts)


def mrs_status_apply(obj: dict[str, Any], written: dict[str, Any]) -> dict[str, Any]:
    """The autoscaler's whole intent for a ModelReplicaSet's status, for server-side apply.

    An apply is the full set of fields this manager owns: one it leaves out is removed. So the
    fields this evaluation did not change (the last scale, the last observation while holding,
    a condition type the decision did not mention) are carried from the current status."""
    current = obj.get("status") or {}
    status = {k: current[k] for k in AUTOSCALER_FIELDS if current.get(k) is not None}
    status.update({k: v for k, v in written.items() if k != "conditions"})
    if isinstance(status.get("observed"), dict):
        status["observed"] = {k: v for k, v in status["observed"].items() if v is not None}
    conds = {c["type"]: c for c in current.get("conditions") or [] if c.get("type") in AUTOSCALER_CONDITIONS}
    conds.update({c["type"]: c for c in written.get("conditions") or []})
    status["conditions"] = [conds[t] for t in sorted(conds)]
    meta = obj["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": MRS,
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        "status": status,
    }


def af_status_apply(obj: dict[str, Any], written: dict[str, Any]) -> dict[str, Any]:
    """The autoscaler's whole intent for an AgentFleet's status: desiredWorkers and its condition
    types (carried over when this evaluation did not mention one); the AgentFleet controller owns
    the rest under its own manager."""
    current = obj.get("status") or {}
    conds = {c["type"]: c for c in current.get("conditions") or [] if c.get("type") in AUTOSCALER_CONDITIONS}
    conds.update({c["type"]: c for c in written.get("conditions") or []})
    status: dict[str, Any] = {"conditions": [conds[t] for t in sorted(conds)]}
    desired = written.get("desiredWorkers", current.get("desiredWorkers"))
    if desired is not None:
        status["desiredWorkers"] = desired
    sleep = written.get("sleep", current.get("sleep"))
    if sleep is not None:
        status["sleep"] = sleep
    meta = obj["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": AF,
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        "status": status,
    }
