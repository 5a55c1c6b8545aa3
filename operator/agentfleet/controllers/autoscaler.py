"""The built-in autoscaler: a periodic evaluation per ModelReplicaSet (and per AgentFleet's workers).

It never writes spec (GitOps tools own it): it writes ``status.desiredReplicas`` (the
ModelReplicaSet controller acts on it when ``spec.autoscaling.enabled`` and drains on the way
down), ``status.observed``, ``status.lastScaleTime`` / ``lastScaleReason``,
``status.learnedModelLoadSeconds`` and the conditions ScalingActive, ScalingLimited and
MetricsAvailable - by server-side apply under its own field manager (``agentfleet-autoscaler``),
so the ModelReplicaSet controller's writes of its own conditions never drop these - and emits an Event for every change of the
desired count and for every change of the reason it cannot scale (not every period).

Period: one loop ticks every ``TICK_SECONDS`` and evaluates an object only when its own
``evaluationPeriodSeconds`` has passed (granularity 5 s, the field's minimum). It is a loop of
ours, fed by kopf events, not a kopf timer: timers make kopf put a finalizer on every object, and
deleting a ModelReplicaSet must never wait for the operator.

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
``agentfleet_tasks_in_flight``), and given to its policy as ``Observation.tasks``.

manager.py imports this module for its handlers: ``from agentfleet.controllers import autoscaler  # noqa: F401``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import kopf
from agentfleet_contract import conditions as cond
from agentfleet_contract.agentfleet import Workers
from agentfleet_contract.modelreplicaset import ModelReplicaSetSpec

from agentfleet.autoscale.common import AUTOSCALER_CONDITIONS, Decision
from agentfleet.autoscale.goodput import objectives_from_slo
from agentfleet.autoscale.pods import fleet_from_pods
from agentfleet.autoscale.policy import Capacity, FleetView, LoadTime, Outcome, PolicyConfig, PolicyState, decide
from agentfleet.autoscale.workers import WorkerPolicyConfig, WorkerState, decide_workers, fleets_using, task_demand
from agentfleet.controllers.settings import kube_client
from agentfleet.kube import Kube
from agentfleet.placement import ReplicaRequest, assignment_from_status, demand_for, inventory_from_k8s, plan, replica_key
from agentfleet.promql import PromReader, Target

log = logging.getLogger("agentfleet.autoscaler")
Post = Callable[..., None]

GROUP, VERSION = "agentfleet.io", "v1alpha1"
TICK_SECONDS = 5.0
DEFAULT_URL = os.environ.get("AGENTFLEET_PROMETHEUS_URL", "http://prometheus.monitoring:9090")
MATCHERS = os.environ.get("AGENTFLEET_PROMETHEUS_MATCHERS", 'namespace="{namespace}",model_name="{model}"')
REPLICA_LABEL = os.environ.get("AGENTFLEET_PROMETHEUS_REPLICA_LABEL", "pod")
WORKER_MATCHERS = os.environ.get("AGENTFLEET_WORKER_MATCHERS", 'namespace="{namespace}",agentfleet="{name}"')
LOAD_PRIOR = float(os.environ.get("AGENTFLEET_MODEL_LOAD_SECONDS", "300"))
# Status is shared with the ModelReplicaSet controller: each writer server-side applies its own
# fields under its own manager, so neither drops the other's (see mrs_status_apply).
AUTOSCALER_MANAGER = "agentfleet-autoscaler"
AUTOSCALER_FIELDS = ("desiredReplicas", "observed", "lastScaleTime", "lastScaleReason", "learnedModelLoadSeconds")

_readers: dict[str, PromReader] = {}


def reader(url: str) -> PromReader:
    if url not in _readers:
        _readers[url] = PromReader(url)
    return _readers[url]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _autoscaling_enabled(spec: dict[str, Any], **_: Any) -> bool:
    return bool((spec.get("autoscaling") or {}).get("enabled"))


def _workers_autoscaling(spec: dict[str, Any], **_: Any) -> bool:
    return bool((spec.get("workers") or {}).get("autoscaling"))


def _core() -> Any:
    from kubernetes import client as k8s

    return k8s.CoreV1Api()


def _list_pods(namespace: str, selector: str) -> list[dict[str, Any]]:
    api = _core()
    pods = api.list_namespaced_pod(namespace, label_selector=selector)
    return [api.api_client.sanitize_for_serialization(p) for p in pods.items]


# Every AgentFleet's model references, from the watch this module already runs (track_agentfleet):
# the task layer of each ModelReplicaSet evaluation reads them here instead of listing the
# namespace's AgentFleets once per evaluation.
_fleets: dict[tuple[str, str], dict[str, Any]] = {}


def _list_agentfleets(namespace: str) -> list[dict[str, Any]]:
    return [af for (ns, _), af in list(_fleets.items()) if ns == namespace]


def task_layer(namespace: str, model: str, logger: Any, url: str = DEFAULT_URL) -> float | None:
    """Tasks queued + in flight at the AgentFleets in ``namespace`` that call ModelReplicaSet
    ``model``, read from their workers' metrics in the Prometheus at ``url`` (the series the
    workers autoscaler reads). None - the policy then runs on the engine's metrics alone - when no fleet
    uses the model, or any fleet's figures cannot be read."""
    try:
        names = fleets_using(_list_agentfleets(namespace), model)
    except Exception as exc:  # noqa: BLE001 - the task layer is an extra signal, never a blocker
        logger.warning(f"listing AgentFleets failed, scaling without the task layer: {exc}")
        return None
    prom = reader(url)
    return task_demand([prom.worker_signals(WORKER_MATCHERS.format(namespace=namespace, name=n)) for n in names])


def capacity_for(namespace: str, name: str, spec: ModelReplicaSetSpec, extra: int) -> Capacity:
    """How many of ``extra`` new replicas the placement planner could place now."""
    from kubernetes import client as k8s

    api = _core()
    nodes = [api.api_client.sanitize_for_serialization(n) for n in api.list_node().items]
    pods = [api.api_client.sanitize_for_serialization(p) for p in api.list_pod_for_all_namespaces().items]
    inventory = inventory_from_k8s(nodes, pods, spec.gpu.resource_name, spec.placement.node_key)
    custom = k8s.CustomObjectsApi()
    existing = []
    for mrs in custom.list_cluster_custom_object(GROUP, VERSION, "modelreplicasets").get("items", []):
        m = mrs.get("metadata") or {}
        for p in (mrs.get("status") or {}).get("placements") or []:
            a = assignment_from_status(m.get("namespace", "default"), m.get("name", ""), p)
            if a is not None:
                existing.append(a)
    d = demand_for(namespace, name, spec)
    probes = [ReplicaRequest(replica_key(namespace, f"{name}-autoscale-probe-{i}"), d) for i in range(extra)]
    result = plan(inventory, probes, existing)
    message = result.unplaced[0].message if result.unplaced else ""
    return Capacity(placeable_extra=len(result.placed), message=message)


def _conditions(old: list[dict[str, Any]], decision: Decision, generation: int) -> list[dict[str, Any]]:
    out = list(old)
    for c in decision.conditions:
        out = cond.set_condition(out, c.type, c.status, c.reason, c.message[:1024], generation)
    return out


def _emit(body: Any, decision: Decision, old_conditions: list[dict[str, Any]], post: Post | None = None) -> None:
    post = post or kopf.event
    if decision.changed:
        post(body, type="Normal", reason="ScaledUp" if decision.desired > decision.current else "ScaledDown", message=decision.reason)
    if decision.warning:
        prev = cond.get_condition(old_conditions, "MetricsAvailable")
        # One Warning per change of cause, not one per period.
        if prev is None or prev.get("reason") != decision.warning or prev.get("status") != "False":
            post(body, type="Warning", reason=decision.warning, message=decision.reason)


def evaluate_modelreplicaset(
    body: Any,
    spec: dict[str, Any],
    status: dict[str, Any],
    meta: dict[str, Any],
    name: str,
    namespace: str,
    memo: Any,
    patch: Any,
    logger: Any,
    post: Post | None = None,
    **_: Any,
) -> None:
    now = time.time()
    parsed = ModelReplicaSetSpec.model_validate(dict(spec))
    a = parsed.autoscaling
    last = getattr(memo, "autoscale_last_eval", 0.0)
    if now - last < a.evaluation_period_seconds - 0.5:
        return
    memo.autoscale_last_eval = now
    config = PolicyConfig.from_spec(a, initial_load_seconds=LOAD_PRIOR)
    state: PolicyState = getattr(memo, "autoscale_state", None) or PolicyState.initial(config)

    learned = status.get("learnedModelLoadSeconds")
    if state.load_time.samples == 0 and learned:
        # An operator restart keeps what the last one learned (status is the only memory it has).
        state = replace(state, load_time=LoadTime(float(learned), samples=1))
    pods = _list_pods(namespace, f"agentfleet.io/modelreplicaset={name}")
    pf = fleet_from_pods(pods, now)
    state = replace(state, load_time=state.load_time.observe(pf.load_seconds))
    current = status.get("desiredReplicas")
    if current is None:
        current = len(pf.ready) + len(pf.starting) or parsed.replicas
    fleet = FleetView(current=int(current), ready=pf.ready, starting=pf.starting, ready_ages=pf.ready_ages)

    model = parsed.model.served_name or parsed.model.name
    target = Target(MATCHERS.format(namespace=namespace, name=name, model=model), REPLICA_LABEL)
    objectives = objectives_from_slo(a.goodput.ttft_milliseconds, a.goodput.time_per_output_token_milliseconds, a.goodput.e2e_latency_milliseconds)
    obs = reader(a.prometheus_url or DEFAULT_URL).observe(target, objectives, a.window_seconds)
    if obs.error is None:
        obs = replace(obs, tasks=task_layer(namespace, name, logger, a.prometheus_url or DEFAULT_URL))

    out: Outcome = decide(config, state, fleet, obs)
    if out.decision.desired > fleet.current:
        # Only ask the planner when growing; a failure to read the cluster must not block scaling.
        try:
            capacity = capacity_for(namespace, name, parsed, out.decision.desired - len(pf.ready) - len(pf.starting))
            out = decide(config, state, fleet, obs, capacity)
        except Exception as exc:  # noqa: BLE001 - the API server hiccup is logged, the decision stands
            logger.warning(f"capacity check failed, scaling without it: {exc}")
    memo.autoscale_state = out.state

    d = out.decision
    old_conditions = list(status.get("conditions") or [])
    patch.status["desiredReplicas"] = d.desired
    if d.recommendation is not None:
        o = out.observed
        patch.status["observed"] = {
            "queueDepth": o.queue_depth,
            "running": o.running,
            "goodput": o.goodput,
            "kvCacheUsage": o.kv_cache_usage,
            "observedAt": _iso(obs.at),
        }
    if d.changed:
        patch.status["lastScaleTime"] = _iso(now)
        patch.status["lastScaleReason"] = d.reason
    if out.state.load_time.samples:
        patch.status["learnedModelLoadSeconds"] = round(out.state.load_time.seconds)
    # Only the autoscaler's condition types: they are applied under its own field manager, and the
    # ModelReplicaSet controller's types (Ready, Progressing, Degraded) are none of its business.
    merged = _conditions(old_conditions, d, int(meta.get("generation") or 0))
    patch.status["conditions"] = [c for c in merged if c["type"] in AUTOSCALER_CONDITIONS]
    _emit(body, d, old_conditions, post)
    logger.info(d.reason)


def evaluate_workers(
    body: Any,
    spec: dict[str, Any],
    status: dict[str, Any],
    meta: dict[str, Any],
    name: str,
    namespace: str,
    memo: Any,
    patch: Any,
    logger: Any,
    post: Post | None = None,
    **_: Any,
) -> None:
    now = time.time()
    last = getattr(memo, "workers_last_eval", 0.0)
    if now - last < 15.0 - 0.5:
        return
    memo.workers_last_eval = now
    workers = Workers.model_validate(dict(spec.get("workers") or {}))
    config = WorkerPolicyConfig.from_spec(workers)
    state: WorkerState = getattr(memo, "workers_state", None) or WorkerState()
    current = status.get("desiredWorkers")
    current = int(current) if current is not None else workers.replicas
    sig = reader(DEFAULT_URL).worker_signals(WORKER_MATCHERS.format(namespace=namespace, name=name))
    d, memo.workers_state = decide_workers(config, state, current, sig)
    old_conditions = list(status.get("conditions") or [])
    patch.status["desiredWorkers"] = d.desired
    # Queue figures are the AgentFleet controller's (read from the fleet's Redis); this manager
    # applies only desiredWorkers and its own condition types (see af_status_apply).
    patch.status["conditions"] = [c for c in _conditions(old_conditions, d, int(meta.get("generation") or 0)) if c["type"] in AUTOSCALER_CONDITIONS]
    _emit(body, d, old_conditions, post)
    logger.info(d.reason)


# --- the loop -------------------------------------------------------------------------------------

# What to evaluate, kept current by kopf events: (plural, namespace, name) -> kind.
_targets: dict[tuple[str, str, str], str] = {}
_memos: dict[tuple[str, str, str], SimpleNamespace] = {}
_EVALUATORS = {"modelreplicasets": evaluate_modelreplicaset, "agentfleets": evaluate_workers}
_task: asyncio.Task[None] | None = None


# ModelReplicaSets whose autoscaling was just turned off: the autoscaler's status fields and
# conditions are released (an empty apply under its manager), so no stale ScalingActive stays.
_releases: set[tuple[str, str, str]] = set()


def _track(plural: str, kind: str, wanted: bool, type_: str | None, namespace: str, name: str) -> None:
    key = (plural, namespace, name)
    if type_ == "DELETED" or not wanted:
        if key in _targets and type_ != "DELETED" and plural == "modelreplicasets":
            _releases.add(key)
        _targets.pop(key, None)
        _memos.pop(key, None)
    else:
        _releases.discard(key)
        _targets[key] = kind


def _release(kube: Kube, key: tuple[str, str, str]) -> None:
    _, namespace, name = key
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelReplicaSet", "metadata": {"name": name, "namespace": namespace}, "status": {}}
    try:
        kube.apply_status(body, manager=AUTOSCALER_MANAGER)
    except Exception as exc:  # noqa: BLE001 - gone already, or the API hiccuped: nothing to hold on to
        log.info("%s/%s: releasing the autoscaler's status fields failed: %s", namespace, name, exc)


@kopf.on.event(GROUP, VERSION, "modelreplicasets")
async def track_modelreplicaset(type: str | None, spec: Any, namespace: str, name: str, **_: Any) -> None:
    _track("modelreplicasets", "ModelReplicaSet", _autoscaling_enabled(dict(spec or {})), type, namespace, name)


@kopf.on.event(GROUP, VERSION, "agentfleets")
async def track_agentfleet(type: str | None, spec: Any, meta: Any, namespace: str, name: str, **_: Any) -> None:
    _track("agentfleets", "AgentFleet", _workers_autoscaling(dict(spec or {})), type, namespace, name)
    if type == "DELETED":
        _fleets.pop((namespace, name), None)
    else:
        refs = {k: dict(spec[k]) for k in ("modelRef", "routineModelRef") if (spec or {}).get(k)}
        _fleets[(namespace, name)] = {"metadata": {"name": name, "deletionTimestamp": meta.get("deletionTimestamp")}, "spec": refs}


def _evaluate(kube: Kube, key: tuple[str, str, str], kind: str) -> None:
    plural, namespace, name = key
    obj = kube.get(f"{GROUP}/{VERSION}", kind, name, namespace)
    if obj is None or obj["metadata"].get("deletionTimestamp"):
        return
    patch = kopf.Patch()
    memo = _memos.setdefault(key, SimpleNamespace())

    def post(body: Any, *, type: str, reason: str, message: str) -> None:
        kube.event(body, type, reason, message)

    _EVALUATORS[plural](
        body=obj,
        spec=obj.get("spec") or {},
        status=obj.get("status") or {},
        meta=obj["metadata"],
        name=name,
        namespace=namespace,
        memo=memo,
        patch=patch,
        logger=log,
        post=post,
    )
    if not patch:
        return
    if plural == "modelreplicasets":
        kube.apply_status(mrs_status_apply(obj, dict(patch.get("status") or {})), manager=AUTOSCALER_MANAGER)
        return
    if plural == "agentfleets":
        kube.apply_status(af_status_apply(obj, dict(patch.get("status") or {})), manager=AUTOSCALER_MANAGER)
        return
    res = kube._resource(f"{GROUP}/{VERSION}", kind)
    kube.dynamic.patch(res.status, body=dict(patch), name=name, namespace=namespace, content_type="application/merge-patch+json")


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
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelReplicaSet", "metadata": {"name": meta["name"], "namespace": meta["namespace"]}, "status": status}


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
    meta = obj["metadata"]
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "AgentFleet", "metadata": {"name": meta["name"], "namespace": meta["namespace"]}, "status": status}


async def _loop() -> None:
    kube = Kube(kube_client())
    while True:
        await asyncio.sleep(TICK_SECONDS)
        for key in list(_releases):
            _releases.discard(key)
            await asyncio.to_thread(_release, kube, key)
        for key, kind in list(_targets.items()):
            try:
                await asyncio.to_thread(_evaluate, kube, key, kind)
            except Exception:  # noqa: BLE001 - one object's failure must not stop the others' scaling
                log.exception("%s/%s: autoscaler evaluation failed", key[1], key[2])


@kopf.on.startup()
async def start_autoscaler(**_: Any) -> None:
    global _task
    _task = asyncio.create_task(_loop())


@kopf.on.cleanup()
async def stop_autoscaler(**_: Any) -> None:
    if _task is not None:
        _task.cancel()
