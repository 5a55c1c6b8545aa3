"""The built-in autoscaler: a periodic evaluation per ModelReplicaSet (and per AgentFleet's workers).

It never writes spec (GitOps tools own it): it writes ``status.desiredReplicas`` (the
ModelReplicaSet controller acts on it when ``spec.autoscaling.enabled`` and drains on the way
down), ``status.observed``, ``status.lastScaleTime`` / ``lastScaleReason``,
``status.learnedModelLoadSeconds`` and the conditions ScalingActive, ScalingLimited and
MetricsAvailable - by server-side apply under its own field manager (``agentfleet-autoscaler``),
so the ModelReplicaSet controller's writes of its own conditions never drop these - and emits an Event for every change
of the desired count and for every change of the reason it cannot scale (not every period).

Period: each object's key sits in the autoscaler's work queue (agentfleet.reconcile) and is
evaluated every ``evaluationPeriodSeconds`` (15 s for an AgentFleet's workers): the reconcile
returns the time until the next evaluation. The queue is fed by kopf events
(agentfleet.handlers.autoscaler), not a kopf timer: timers make kopf put a finalizer on every
object, and deleting a ModelReplicaSet must never wait for the operator.

Configuration (environment of the operator):
- ``AGENTFLEET_PROMETHEUS_URL``: default Prometheus when spec.autoscaling.prometheusURL is unset;
- ``AGENTFLEET_PROMETHEUS_MATCHERS``: label matchers selecting one ModelReplicaSet's vLLM series,
  a template with ``{namespace}``, ``{name}`` and ``{model}`` (default
  ``namespace="{namespace}",model_name="{model}"``);
- ``AGENTFLEET_PROMETHEUS_REPLICA_LABEL``: the label naming a replica's pod (default ``pod``);
- ``AGENTFLEET_MODEL_LOAD_SECONDS``: prior for the model load time before one was observed (300).

The task layer: the tasks queued and in flight at the AgentFleets of the same namespace whose
modelRef (or routineModelRef) names a ModelReplicaSet are read from the Prometheus its autoscaling
reads, with ``AGENTFLEET_WORKER_MATCHERS`` (the workers' ``agentfleet_queue_depth`` and
``agentfleet_tasks_in_flight``), and given to its policy as ``Observation.tasks``. The fleets'
model references come from the AgentFleet watch, not from a list per evaluation.

An evaluation: observe (pods, Prometheus, task layer) -> decide (autoscale.policy, pure; the
placement planner asked only when growing) -> apply (status under the autoscaler's manager) ->
report (Events for a change of count or of the cause it cannot scale).
"""

from __future__ import annotations

import base64
import logging
import os
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from agentfleet_contract import conditions as cond
from agentfleet_contract.agentfleet import Workers
from agentfleet_contract.common import API_VERSION
from agentfleet_contract.modelreplicaset import ModelReplicaSetSpec

from agentfleet.autoscale.common import (
    AUTOSCALER_CONDITIONS,
    METRICS_AVAILABLE,
    SCALING_ACTIVE,
    ConditionUpdate,
    Decision,
)
from agentfleet.autoscale.floors import MINIMUM
from agentfleet.autoscale.goodput import objectives_from_slo
from agentfleet.autoscale.pods import fleet_from_pods
from agentfleet.autoscale.policy import Capacity, FleetView, LoadTime, Outcome, PolicyConfig, PolicyState, decide
from agentfleet.autoscale.sleep import (
    SLEEPING,
    WAKING,
    Activity,
    SleepConfig,
    SleepDecision,
    SleepState,
    decide_sleep,
    restore,
    to_status,
)
from agentfleet.autoscale.workers import WorkerPolicyConfig, WorkerState, decide_workers, fleets_using, task_demand
from agentfleet.controllers import demand
from agentfleet.controllers.agentfleet import REDIS_TIMEOUT_SECONDS, probe_redis, redis_client
from agentfleet.controllers.demand import DemandMemory
from agentfleet.controllers.settings import CONFIG
from agentfleet.controllers.wakewatch import WakeWatch
from agentfleet.kube import Kube
from agentfleet.placement import (
    ReplicaRequest,
    assignment_from_status,
    inventory_from_k8s,
    needs_for,
    plan,
    replica_key,
)
from agentfleet.promql import PromReader, Target
from agentfleet.reconcile.controller import FORGET, Controller
from agentfleet.reconcile.events import EventRecorder, post_with_kube
from agentfleet.render.agentfleet import REDIS_PASSWORD_KEY, managed_redis_url, redis_secret_name
from agentfleet.render.common import secret_problem

log = logging.getLogger("agentfleet.autoscaler")

MRS, AF = "ModelReplicaSet", "AgentFleet"
# Status is shared with the kinds' controllers: each writer server-side applies its own fields
# under its own manager, so neither drops the other's (see mrs_status_apply, af_status_apply).
AUTOSCALER_MANAGER = "agentfleet-autoscaler"
AUTOSCALER_FIELDS = (
    "desiredReplicas",
    "observed",
    "lastScaleTime",
    "lastScaleReason",
    "lastScaleTerm",
    "learnedModelLoadSeconds",
    "forecast",
    "sleep",
)
WORKERS_PERIOD_SECONDS = 15.0
# The field's minimum period; an evaluation asked for earlier (a resync, an edit) waits this long at most.
MIN_PERIOD_SECONDS = 5.0
# While asleep or waking, the wake signal (a task in a fleet's Redis stream) is polled this often:
# it is most of the operator's share of a wake's latency (docs/scale-to-zero.md). One XINFO per
# fleet per second.
SLEEP_POLL_SECONDS = 1.0

Key = tuple[str, str, str]  # (kind, namespace, name)


@dataclass(frozen=True)
class AutoscalerSettings:
    """From the operator's environment (see the module docstring)."""

    prometheus_url: str = "http://prometheus.monitoring:9090"
    matchers: str = 'namespace="{namespace}",model_name="{model}"'
    replica_label: str = "pod"
    worker_matchers: str = 'namespace="{namespace}",agentfleet="{name}"'
    load_prior_seconds: float = 300.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> AutoscalerSettings:
        d = cls()
        return cls(
            prometheus_url=env.get("AGENTFLEET_PROMETHEUS_URL", d.prometheus_url),
            matchers=env.get("AGENTFLEET_PROMETHEUS_MATCHERS", d.matchers),
            replica_label=env.get("AGENTFLEET_PROMETHEUS_REPLICA_LABEL", d.replica_label),
            worker_matchers=env.get("AGENTFLEET_WORKER_MATCHERS", d.worker_matchers),
            load_prior_seconds=float(env.get("AGENTFLEET_MODEL_LOAD_SECONDS", d.load_prior_seconds)),
        )


@dataclass
class AutoscaleState:
    """What the autoscaler remembers of one object between evaluations (safe to lose: the learned
    load time is kept in status)."""

    last_eval: float = 0.0
    policy: PolicyState | None = None  # a ModelReplicaSet's
    workers: WorkerState | None = None  # an AgentFleet's
    release: bool = False  # autoscaling was turned off: give back the status fields it owned
    sleep: SleepState | None = None  # scale to zero (autoscale/sleep.py); restored from status.sleep
    woken: bool = False  # a task arrived on a sleeping object's stream (wakewatch.py): evaluate now
    demand: DemandMemory = field(default_factory=DemandMemory)  # the learned profile (controllers/demand.py)
    reason: str = ""  # the last evaluation's decision, logged with the object's name


@dataclass
class ClusterReads:
    """The autoscaler's reads besides Prometheus, replaceable in tests."""

    kube: Kube

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return self.kube.list("v1", "Pod", namespace, selector)

    def read_profile(self, namespace: str, name: str) -> dict[str, str] | None:
        cm = self.kube.get("v1", "ConfigMap", name, namespace)
        return None if cm is None else dict(cm.get("data") or {})

    def write_profile(self, owner: dict[str, Any], namespace: str, name: str, data: dict[str, str]) -> None:
        self.kube.apply(demand.configmap(owner, namespace, name, data))

    def fleet_redis(self, namespace: str, name: str) -> tuple[str, str | None] | None:
        """AgentFleet ``name``'s Redis URL and password, read as the AgentFleet controller reads them;
        None when the fleet is gone or they cannot be used."""
        af = self.kube.get(API_VERSION, AF, name, namespace)
        if af is None:
            return None
        redis = (af.get("spec") or {}).get("redis") or {}
        ref = redis.get("passwordSecretRef") or {}
        if redis.get("deploy") is not None:
            url, secret, key = managed_redis_url(name, namespace), redis_secret_name(name), REDIS_PASSWORD_KEY
        else:
            url, secret, key = redis.get("url"), ref.get("name"), ref.get("key", "password")
        password = None
        if secret:
            s = self.kube.get("v1", "Secret", secret, namespace)
            # The AgentFleet controller reports a Secret it may not use; here it is simply not read.
            field = "spec.redis.passwordSecretRef"
            refused = not redis.get("deploy") and secret_problem(s, field, secret, key, namespace)
            if s is None or refused:
                return None
            raw = (s.get("data") or {}).get(key)
            password = base64.b64decode(raw).decode() if raw else None
        return (url, password) if url else None

    def fleet_work(self, namespace: str, name: str) -> float | None:
        """Tasks queued + in flight in AgentFleet ``name``'s Redis stream (the wake signal: it exists
        with no worker and no replica running); None when the fleet or its Redis cannot be read."""
        found = self.fleet_redis(namespace, name)
        if found is None:
            return None
        url, password = found
        ok, error, stats = probe_redis(url, password, name, namespace=namespace)
        if not ok or stats is None:
            log.info("%s/%s: reading the task queue failed: %.300s", namespace, name, error or "no figures")
            return None
        return float(stats.queue_depth + stats.in_flight)

    def task_stream(self, namespace: str, name: str, socket_timeout: float) -> Any | None:
        """A client of AgentFleet ``name``'s Redis for a blocking read of its task stream (wakewatch.py)."""
        found = self.fleet_redis(namespace, name)
        if found is None:
            return None
        return redis_client(*found, timeout=socket_timeout, connect_timeout=REDIS_TIMEOUT_SECONDS)

    def capacity(self, namespace: str, name: str, spec: ModelReplicaSetSpec, extra: int) -> Capacity:
        """How many of ``extra`` new replicas the placement planner could place now."""
        inventory = inventory_from_k8s(
            self.kube.list("v1", "Node"), self.kube.list("v1", "Pod"), spec.gpu.resource_name, spec.placement.node_key
        )
        existing = []
        for mrs in self.kube.list(API_VERSION, MRS):
            m = mrs.get("metadata") or {}
            for p in (mrs.get("status") or {}).get("placements") or []:
                a = assignment_from_status(m.get("namespace", "default"), m.get("name", ""), p)
                if a is not None:
                    existing.append(a)
        d = needs_for(namespace, name, spec)
        probes = [ReplicaRequest(replica_key(namespace, f"{name}-autoscale-probe-{i}"), d) for i in range(extra)]
        result = plan(inventory, probes, existing)
        return Capacity(
            placeable_extra=len(result.placed), message=result.unplaced[0].message if result.unplaced else ""
        )


def merged_conditions(old: list[dict[str, Any]], decision: Decision, generation: int) -> list[dict[str, Any]]:
    """The autoscaler's condition types after a decision (the one condition helper, per type)."""
    out = list(old)
    for c in decision.conditions:
        out = cond.set_condition(out, c.type, c.status, c.reason, c.message[:1024], generation)
    return [c for c in out if c["type"] in AUTOSCALER_CONDITIONS]


def scale_events(decision: Decision, old_conditions: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(type, reason, message) to post: every change of count, and a Warning per change of the
    cause it cannot scale (not one per period)."""
    out = []
    if decision.changed:
        out.append(("Normal", "ScaledUp" if decision.desired > decision.current else "ScaledDown", decision.reason))
    if decision.warning:
        prev = cond.get_condition(old_conditions, METRICS_AVAILABLE)
        if prev is None or prev.get("reason") != decision.warning or prev.get("status") != "False":
            out.append(("Warning", decision.warning, decision.reason))
    return out


class AutoscalerController(Controller[AutoscaleState]):
    api_version, kind, name = API_VERSION, "Autoscaler", "autoscaler"

    def __init__(
        self,
        kube: Kube,
        events: EventRecorder | None = None,
        *,
        settings: AutoscalerSettings | None = None,
        reads: ClusterReads | None = None,
        readers: Callable[[str], Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # One evaluation at a time is plenty: each is a few Prometheus queries every 15 s.
        super().__init__(
            kube,
            events or EventRecorder(post_with_kube(kube)),
            workers=2,
            resync=CONFIG.resync_seconds,
            backoff=(MIN_PERIOD_SECONDS, 60.0),
        )
        self.settings = settings or AutoscalerSettings.from_env()
        self.reads = reads or ClusterReads(kube)
        self._readers: dict[str, PromReader] = {}
        self.reader = readers or self._reader
        self.clock = clock
        # Every AgentFleet's model references, from the watch (track_agentfleet): the task layer of
        # an evaluation reads them here instead of listing the namespace's AgentFleets each time.
        self.fleets: dict[tuple[str, str], dict[str, Any]] = {}
        # While an object sleeps, its fleets' task streams are watched, so a task wakes it at once.
        self.wake_watch = WakeWatch(self.reads.task_stream, self.woken)

    def _reader(self, url: str) -> PromReader:
        if url not in self._readers:
            self._readers[url] = PromReader(url)
        return self._readers[url]

    def new_state(self) -> AutoscaleState:
        return AutoscaleState()

    # --- what to evaluate (on the event loop, from the handlers) ---

    def track(self, kind: str, namespace: str, name: str, *, wanted: bool, deleted: bool) -> None:
        key: Key = (kind, namespace, name)
        if deleted:
            self.wake_watch.watch(key, namespace, ())
            self.forget(key)
        elif wanted:
            new = self.known_state(key) is None
            self.state(key).release = False
            # A new object is first evaluated a tick later, as its pods are only being created:
            # "no replica to measure" at once would read an empty fleet.
            self.enqueue(key, MIN_PERIOD_SECONDS if new else 0.0)
        elif self.known_state(key) is not None and kind == MRS:
            # Turned off: its status fields and conditions are released (an empty apply under its
            # manager), so no stale ScalingActive stays.
            self.state(key).release = True
            self.enqueue(key)

    def track_fleet_refs(
        self,
        namespace: str,
        name: str,
        spec: Mapping[str, Any] | None,
        meta: Mapping[str, Any],
        *,
        deleted: bool,
        status: Mapping[str, Any] | None = None,
    ) -> None:
        if deleted:
            self.fleets.pop((namespace, name), None)
            return
        refs = {k: dict(spec[k]) for k in ("modelRef", "routineModelRef") if (spec or {}).get(k)}
        phase = ((status or {}).get("sleep") or {}).get("state")
        self.fleets[(namespace, name)] = {
            "metadata": {"name": name, "deletionTimestamp": meta.get("deletionTimestamp")},
            "spec": refs,
            "sleep": phase,
        }
        if phase == WAKING:
            # A fleet waking wakes the sleeping ModelReplicaSets it calls now, not a poll later.
            for ref in refs.values():
                key: Key = (MRS, namespace, str(ref.get("name")))
                known = self.known_state(key)
                if known is not None and known.sleep is not None and known.sleep.phase == SLEEPING:
                    self.enqueue(key)

    def fleets_in(self, namespace: str) -> list[dict[str, Any]]:
        return [af for (ns, _), af in list(self.fleets.items()) if ns == namespace]

    # --- one evaluation ---

    def reconcile(self, key: Hashable, _: Any) -> Any:
        kind, namespace, name = key  # type: ignore[misc]
        state = self.state(key)
        if state.release:
            self.wake_watch.watch(key, namespace, ())
            self.apply_status(kind, namespace, name, {})
            return FORGET
        obj = self.kube.get(API_VERSION, kind, name, namespace)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            self.wake_watch.watch(key, namespace, ())
            return None
        period = self.period(kind, obj, state.sleep)
        now = self.clock()
        if now - state.last_eval < period - 0.5 and not state.woken:
            return max(min(MIN_PERIOD_SECONDS, period), period - (now - state.last_eval))
        state.last_eval, state.woken = now, False
        if kind == MRS:
            written, posts = self.evaluate_modelreplicaset(obj, state, now)
        else:
            written, posts = self.evaluate_workers(obj, state, now)
        # Named: with several objects evaluated, "holding 1: ..." alone says not whose decision it is.
        log.info("%s %s/%s: %s", kind, namespace, name, state.reason)
        body = mrs_status_apply(obj, written) if kind == MRS else af_status_apply(obj, written)
        self.kube.apply_status(body, manager=AUTOSCALER_MANAGER)
        for type_, reason, message in posts:
            self.events.event(obj, type_, reason, message, once=False)
        self.watch_while_asleep(key, state.sleep)
        return self.period(kind, obj, state.sleep)

    def watch_while_asleep(self, key: Key, sleep: SleepState | None) -> None:
        """A sleeping object wakes on a task in its fleets' streams (wakewatch.py), a ModelReplicaSet
        on those of the fleets that call it, an AgentFleet's workers on its own."""
        kind, namespace, name = key
        fleets: list[str] = []
        if sleep is not None and sleep.phase == SLEEPING:
            fleets = fleets_using(self.fleets_in(namespace), name) if kind == MRS else [name]
        self.wake_watch.watch(key, namespace, fleets)

    def woken(self, key: Hashable) -> None:
        """From a watch's thread: a task arrived for a sleeping object; evaluate it now."""
        state = self.known_state(key)
        if state is not None:
            state.woken = True
            self.queue.add_threadsafe(key, urgent=True)

    @staticmethod
    def period(kind: str, obj: Mapping[str, Any], sleep: SleepState | None = None) -> float:
        if sleep is not None and sleep.phase in (SLEEPING, WAKING):
            return SLEEP_POLL_SECONDS
        if kind == AF:
            return WORKERS_PERIOD_SECONDS
        return float(((obj.get("spec") or {}).get("autoscaling") or {}).get("evaluationPeriodSeconds") or 15)

    def apply_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        body = {
            "apiVersion": API_VERSION,
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
            "status": status,
        }
        try:
            self.kube.apply_status(body, manager=AUTOSCALER_MANAGER)
        except Exception as exc:  # noqa: BLE001 - gone already, or the API hiccuped: nothing to hold on to
            log.info("%s/%s: releasing the autoscaler's status fields failed: %s", namespace, name, exc)

    def task_layer(self, namespace: str, model: str, url: str) -> float | None:
        """Tasks queued + in flight at the AgentFleets in ``namespace`` that call ModelReplicaSet
        ``model``, read from their workers' metrics in the Prometheus at ``url`` (the series the
        workers autoscaler reads). None - the policy then runs on the engine's metrics alone - when
        no fleet uses the model, or any fleet's figures cannot be read."""
        try:
            names = fleets_using(self.fleets_in(namespace), model)
        except Exception as exc:  # noqa: BLE001 - the task layer is an extra signal, never a blocker
            log.warning(f"listing AgentFleets failed, scaling without the task layer: {exc}")
            return None
        prom = self.reader(url)
        return task_demand(
            [prom.worker_signals(self.settings.worker_matchers.format(namespace=namespace, name=n)) for n in names]
        )

    def evaluate_modelreplicaset(
        self, obj: dict[str, Any], state: AutoscaleState, now: float
    ) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
        """observe -> decide -> the status fields and Events it asks for."""
        meta, status = obj["metadata"], obj.get("status") or {}
        namespace, name = meta["namespace"], meta["name"]
        parsed = ModelReplicaSetSpec.model_validate(dict(obj.get("spec") or {}))
        a, cfg = parsed.autoscaling, self.settings
        config = PolicyConfig.from_spec(a, initial_load_seconds=cfg.load_prior_seconds)
        policy = state.policy or PolicyState.initial(config)
        learned = status.get("learnedModelLoadSeconds")
        if policy.load_time.samples == 0 and learned:
            # An operator restart keeps what the last one learned (status is the only memory it has).
            policy = replace(policy, load_time=LoadTime(float(learned), samples=1))
        pf = fleet_from_pods(self.reads.pods(namespace, f"agentfleet.io/modelreplicaset={name}"), now)
        policy = replace(policy, load_time=policy.load_time.observe(pf.load_seconds))
        current = status.get("desiredReplicas")
        if current is None:
            current = len(pf.ready) + len(pf.starting) or parsed.replicas
        fleet = FleetView(current=int(current), ready=pf.ready, starting=pf.starting, ready_ages=pf.ready_ages)
        # Scale to zero (autoscale/sleep.py): asleep, the engines are not asked (there are none).
        sleep_cfg = SleepConfig(a.min_replicas == 0, float(a.sleep_after_idle_seconds))
        slept = state.sleep or restore(status.get("sleep"), now)
        asleep = sleep_cfg.enabled and slept.phase == SLEEPING
        url = a.prometheus_url or cfg.prometheus_url
        target = Target(
            cfg.matchers.format(namespace=namespace, name=name, model=parsed.model.served_name or parsed.model.name),
            cfg.replica_label,
        )
        objectives = objectives_from_slo(
            a.goodput.ttft_milliseconds,
            a.goodput.time_per_output_token_milliseconds,
            a.goodput.e2e_latency_milliseconds,
        )
        obs = None if asleep else self.reader(url).observe(target, objectives, a.window_seconds)
        activity = self.model_activity(namespace, name, pf.ready, obs) if sleep_cfg.enabled else Activity(None, 0)
        sd = decide_sleep(sleep_cfg, slept, activity, now)
        state.sleep = sd.state
        if sd.override is not None:
            return self.asleep_fields(sd, state, policy, fleet.current, now, meta, status)
        if obs is None:
            # Woke just now: the first replica is ordered at once. With no replica there is nothing to
            # measure, and the policy's reads (Prometheus, the task layer, the planner's list of every
            # node and pod) would only delay it; the policy decides from the next evaluation on (1 s).
            return self.asleep_fields(sd, state, policy, fleet.current, now, meta, status, desired=sd.floor)
        config = replace(config, min_replicas=max(config.min_replicas, sd.floor))
        if obs.error is None:
            obs = replace(obs, tasks=self.task_layer(namespace, name, url))
        # The learned (predictive, standing) and scheduled floors (controllers/demand.py).
        planned, policy = demand.evaluate(
            state.demand,
            self.reads,
            parsed,
            namespace,
            name,
            policy,
            obs,
            len(pf.ready),
            config.period_seconds,
            config.window_seconds,
        )
        out: Outcome = decide(config, policy, fleet, obs, floors=planned.floors, hold=planned.hold)
        if out.decision.desired > fleet.current:
            # Only ask the planner when growing; a failure to read the cluster must not block scaling.
            try:
                capacity = self.reads.capacity(
                    namespace, name, parsed, out.decision.desired - len(pf.ready) - len(pf.starting)
                )
                out = decide(config, policy, fleet, obs, capacity, floors=planned.floors, hold=planned.hold)
            except Exception as exc:  # noqa: BLE001 - the API server hiccup is logged, the decision stands
                log.warning(f"capacity check failed, scaling without it: {exc}")
        state.policy = out.state
        out = replace(out, decision=at_least(out.decision, sd.floor, sd.why))
        written, posts = self.mrs_fields(
            out, obs, now, int(meta.get("generation") or 0), list(status.get("conditions") or [])
        )
        state.reason = out.decision.reason
        written["forecast"] = demand.status(name, planned, demand.forecast_config(parsed), obs.at)
        if sleep_cfg.enabled or status.get("sleep"):
            written["sleep"] = to_status(sd.state)
        demand.save_if_changed(state.demand, self.reads, obj, namespace, name)
        warning = demand.schedule_warning(state.demand, planned)
        return written, posts + ([warning] if warning else []) + ([sd.event] if sd.event else [])

    def model_activity(self, namespace: str, name: str, ready: tuple[str, ...], obs: Any) -> Activity:
        """The wake and idle signal of a ModelReplicaSet: the tasks queued or in flight at the
        AgentFleets that call it (their Redis streams, readable at zero) and the requests waiting or
        running at its replicas. (A fleet that wakes has its evaluation asked for at once:
        track_fleet_refs.)"""
        names = fleets_using(self.fleets_in(namespace), name)
        parts = [self.reads.fleet_work(namespace, n) for n in names]
        if obs is None or not ready:
            parts.append(0.0)  # asleep, or nothing ready: no engine has work
        elif obs.error is not None or not obs.samples:
            parts.append(None)
        else:
            parts.append(sum(s.waiting + s.running for s in obs.samples))
        return Activity(combined_work(parts), len(ready))

    def asleep_fields(
        self,
        sd: SleepDecision,
        state: AutoscaleState,
        policy: PolicyState,
        current: int,
        now: float,
        meta: Mapping[str, Any],
        status: Mapping[str, Any],
        desired: int = 0,
    ) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
        """Going to sleep, asleep, or waking just now (``desired``: the wake's first replica): the
        policy not asked (nothing to measure)."""
        state.policy = policy
        conds = (ConditionUpdate(SCALING_ACTIVE, True, "Waking" if desired else "Sleeping", sd.why),)
        head = f"{current} -> {desired}" if current != desired else f"holding {desired}"
        d = Decision(current, desired, None, f"{head} ({MINIMUM}): {sd.why}", conds, term=MINIMUM)
        old_conditions = list(status.get("conditions") or [])
        generation = int(meta.get("generation") or 0)
        written, posts = self.mrs_fields(Outcome(d, policy), None, now, generation, old_conditions)
        state.reason = d.reason
        written["sleep"] = to_status(sd.state)
        return written, posts + ([sd.event] if sd.event else [])

    @staticmethod
    def mrs_fields(
        out: Outcome, obs: Any, now: float, generation: int, old_conditions: list[dict[str, Any]]
    ) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
        d = out.decision
        written: dict[str, Any] = {"desiredReplicas": d.desired}
        if d.recommendation is not None:
            o = out.observed
            written["observed"] = {
                "queueDepth": o.queue_depth,
                "running": o.running,
                "goodput": o.goodput,
                "kvCacheUsage": o.kv_cache_usage,
                "observedAt": cond.timestamp(obs.at),
            }
        if d.changed:
            written["lastScaleTime"] = cond.timestamp(now)
            written["lastScaleReason"] = d.reason
            written["lastScaleTerm"] = d.term
        if out.state.load_time.samples:
            written["learnedModelLoadSeconds"] = round(out.state.load_time.seconds)
        # Only the autoscaler's condition types: the ModelReplicaSet controller's (Ready,
        # Progressing, Degraded) are none of its business.
        written["conditions"] = merged_conditions(old_conditions, d, generation)
        return written, scale_events(d, old_conditions)

    def evaluate_workers(
        self, obj: dict[str, Any], state: AutoscaleState, now: float | None = None
    ) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
        meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
        now = self.clock() if now is None else now
        workers = Workers.model_validate(dict(spec.get("workers") or {}))
        current = status.get("desiredWorkers")
        current = int(current) if current is not None else workers.replicas
        # Scale to zero: the fleet's own Redis stream is the signal (no worker reports at zero).
        sleep_cfg = SleepConfig(workers.min_replicas == 0, float(workers.sleep_after_idle_seconds))
        work = self.reads.fleet_work(meta["namespace"], meta["name"]) if sleep_cfg.enabled else None
        ready = int(status.get("readyWorkers") or 0)
        sd = decide_sleep(sleep_cfg, state.sleep or restore(status.get("sleep"), now), Activity(work, ready), now)
        state.sleep = sd.state
        if sd.override is not None:
            head = f"{current} -> 0" if current else "holding 0"
            asleep = (ConditionUpdate(SCALING_ACTIVE, True, "Sleeping", sd.why),)
            d = Decision(current, 0, None, f"{head}: {sd.why}", asleep)
        else:
            sig = self.reader(self.settings.prometheus_url).worker_signals(
                self.settings.worker_matchers.format(namespace=meta["namespace"], name=meta["name"])
            )
            wcfg = WorkerPolicyConfig.from_spec(workers)
            wcfg = replace(wcfg, min_replicas=max(wcfg.min_replicas, sd.floor))
            d, state.workers = decide_workers(wcfg, state.workers or WorkerState(), current, sig)
            d = at_least(d, sd.floor, sd.why)
        old_conditions = list(status.get("conditions") or [])
        # Queue figures are the AgentFleet controller's (read from the fleet's Redis); this manager
        # applies only desiredWorkers, status.sleep and its own condition types (see af_status_apply).
        written = {
            "desiredWorkers": d.desired,
            "conditions": merged_conditions(old_conditions, d, int(meta.get("generation") or 0)),
        }
        if sleep_cfg.enabled or status.get("sleep"):
            written["sleep"] = to_status(sd.state)
        state.reason = d.reason
        return written, scale_events(d, old_conditions) + ([sd.event] if sd.event else [])


def combined_work(parts: list[float | None]) -> float | None:
    """Work seen anywhere is work (a fleet with tasks wakes the model even when another fleet's
    Redis cannot be read); no work is known only when every part was read."""
    known = [p for p in parts if p is not None]
    if any(p > 0 for p in known):
        return sum(known)
    return None if len(known) < len(parts) else 0.0


def at_least(d: Decision, floor: int, why: str) -> Decision:
    """A decision raised to the sleep machine's floor: a waking object gets its first replica even
    while the policy, with nothing to measure yet, would hold at zero."""
    if d.desired >= floor:
        return d
    return replace(d, desired=floor, reason=f"{d.current} -> {floor}: {why}")


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
