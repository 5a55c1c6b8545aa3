"""The ModelReplicaSet controller: vLLM replicas placed by the topology-aware planner.

Thin by design. kopf handlers only keep caches (kopf indices of nodes, GPU pods and every
ModelReplicaSet's placements) and name the ModelReplicaSet to reconcile; a work queue runs the
reconciles (see controllers/workqueue.py). One reconcile is level-based and idempotent:

    read the ModelReplicaSet and its pods (fresh from the API) and the node inventory (cache)
    -> validate, assess capacity (capacity.assess)
    -> group pods into replicas, judge each (rollout.replica_health)
    -> decide one step (rollout.plan_step): create, drain, delete, restart
    -> place new replicas (placement.plan) and create their pods (render.modelreplicaset,
       server-side apply with ownerReferences)
    -> write status (only status: placements, counts, conditions) and post Events.

Decisions live in agentfleet.rollout, placement, capacity and render (pure, unit-tested); this
module does the I/O.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import dataclasses
import functools
import hashlib
import json
import logging
import threading
import time
import urllib.request
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import kopf
from agentfleet_contract.common import API_VERSION, GROUP, VERSION
from agentfleet_contract.modelreplicaset import ModelReplicaSet, ModelReplicaSetSpec
from kubernetes.dynamic.exceptions import ForbiddenError, NotFoundError
from pydantic import ValidationError

from agentfleet.autoscale.common import AUTOSCALER_CONDITIONS, SCALING_LIMITED
from agentfleet.capacity import assess
from agentfleet.controllers.settings import CONFIG, kube_client
from agentfleet.controllers.workqueue import WorkQueue
from agentfleet.kube import FIELD_MANAGER, Kube
from agentfleet.placement import (
    MODELREPLICASET_LABEL,
    REPLICA_LABEL,
    Assignment,
    assignment_from_status,
    demand_for,
    eligible_gpu_memory_mib,
    ineligibility,
    inventory_from_k8s,
    pinned_node,
    placement_status,
    plan,
    replica_key,
    requests_for,
)
from agentfleet.render.modelreplicaset import (
    SERVING_LABEL,
    gang_service_name,
    object_key,
    render_pdb,
    render_pod,
    render_services,
    selector_string,
    served_name,
    spec_hash,
)
from agentfleet.rollout import (
    ACTIVE,
    DRAINING,
    DRAINING_SINCE_ANNOTATION,
    FAILED,
    PENDING,
    READY_PHASE,
    TERMINATING,
    UNSCHEDULABLE_GRACE_SECONDS,
    ConditionCause,
    ReplicaState,
    ReplicaView,
    RolloutStep,
    Summary,
    Timing,
    compose_conditions,
    desired_replicas,
    new_replica_names,
    observe_pod,
    parse_in_flight,
    parse_replica_name,
    parse_time,
    plan_step,
    replica_health,
    replica_phase,
    restart_backoff,
    rfc3339,
    strip_transition_times,
)

log = logging.getLogger(__name__)

PLURAL = "modelreplicasets"
KIND = "ModelReplicaSet"
Key = tuple[str, str]

# A Warning with the same reason and message is not posted again within this window: kopf posts
# every call as a new Event, and a reconcile that keeps meeting the same problem must not flood.
EVENT_REPEAT_SECONDS = 600.0
ACTION_REPEAT_SECONDS = 30.0
# Reading a replica's /metrics must not hold up a reconcile: vLLM answers in milliseconds.
METRICS_TIMEOUT_SECONDS = 1.0
METRICS_RETRY_SECONDS = 5.0
# Services and the PDB rarely change: re-applied when their rendering changes, and at least this often.
CHILDREN_REAPPLY_SECONDS = 300.0
# Pod events arrive in bursts (bound, running, ready, a gang's members): one reconcile after a
# short pause instead of one per event.
POD_EVENT_COALESCE_SECONDS = 0.2
# A pass that created pods leaves Services and the PDB to a pass this much later.
CHILDREN_AFTER_PODS_SECONDS = 0.5
EXTENDED_RESOURCE_HINTS = ("gpu",)
# The first look at a replica just marked draining: routers need a moment to stop sending to it.
DRAIN_FIRST_POLL_SECONDS = 2.0


# --- Caches fed by kopf ----------------------------------------------------------------------


def _trim_node(body: Mapping[str, Any]) -> dict[str, Any]:
    """What the planner reads of a Node. Heartbeat timestamps are left out so the cached value
    (and kopf's index) only changes when something the planner cares about changes."""
    meta, spec, status = body.get("metadata") or {}, body.get("spec") or {}, body.get("status") or {}
    ready = [{"type": "Ready", "status": c.get("status")} for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    return {
        "metadata": {"name": meta.get("name"), "labels": dict(meta.get("labels") or {})},
        "spec": {"taints": [dict(t) for t in spec.get("taints") or []], "unschedulable": bool(spec.get("unschedulable"))},
        "status": {"allocatable": dict(status.get("allocatable") or {}), "conditions": ready},
    }


def _requests_accelerators(pod: Mapping[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        res = c.get("resources") or {}
        for part in ("requests", "limits"):
            if any(any(h in r for h in EXTENDED_RESOURCE_HINTS) for r in (res.get(part) or {})):
                return True
    return False


def _trim_pod(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """What the inventory reads of a Pod (placement.inventory_from_k8s), or None for pods that hold
    no accelerators and are no replica of ours."""
    meta, spec, status = body.get("metadata") or {}, body.get("spec") or {}, body.get("status") or {}
    labels = meta.get("labels") or {}
    if not (REPLICA_LABEL in labels or _requests_accelerators(body)):
        return None
    if status.get("phase") in ("Succeeded", "Failed"):
        return None
    node_affinity = ((spec.get("affinity") or {}).get("nodeAffinity")) or {}
    return {
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "labels": {k: v for k, v in labels.items() if k in (REPLICA_LABEL, MODELREPLICASET_LABEL)},
        },
        "spec": {
            "nodeName": spec.get("nodeName"),
            "affinity": {
                "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")}
            }
            if node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
            else {},
            "containers": [{"resources": c.get("resources") or {}} for c in spec.get("containers") or []],
            "initContainers": [{"resources": c.get("resources") or {}, "restartPolicy": c.get("restartPolicy")} for c in spec.get("initContainers") or []],
        },
        "status": {"phase": status.get("phase")},
    }


def _placements_of(body: Mapping[str, Any]) -> dict[str, Any]:
    status = body.get("status") or {}
    return {"uid": (body.get("metadata") or {}).get("uid"), "placements": [dict(p) for p in status.get("placements") or []]}


@dataclass(frozen=True)
class Snapshot:
    """The inventory as the caches held it when a reconcile started."""

    nodes: list[dict[str, Any]]
    pods: list[dict[str, Any]]
    placements: dict[Key, list[dict[str, Any]]]  # every ModelReplicaSet's status.placements
    body: dict[str, Any] | None = None  # the object as its last watch event showed it

    def has_pods(self, namespace: str, name: str) -> bool:
        return any((p["metadata"].get("namespace"), p["metadata"]["labels"].get(MODELREPLICASET_LABEL)) == (namespace, name) for p in self.pods)


# --- Per-ModelReplicaSet memory --------------------------------------------------------------


@dataclass
class Memory:
    """What one operator process remembers about a ModelReplicaSet between reconciles. Losing it
    (a restart) is safe: a failed replica's backoff counts from status.placements[].failedAt, and
    children are re-applied once."""

    failed_at: dict[str, float] = field(default_factory=dict)
    events: dict[tuple[str, str, str], float] = field(default_factory=dict)
    applied: dict[tuple[str, str, str], tuple[str, float]] = field(default_factory=dict)
    surge_blocked: bool = False
    own_resource_versions: set[str] = field(default_factory=set)
    unplaced: bool = False
    nodes: frozenset[str] = frozenset()
    quiet: bool = False  # its namespace is terminating: Events would be refused


# --- API access ------------------------------------------------------------------------------


class Api:
    """The calls a reconcile makes, through the shared Kube's DynamicClient: children by server-side
    apply under the one field manager (agentfleet.kube), status by merge patch. Responses are read
    as plain JSON: the DynamicClient's object wrappers cost more CPU than the rest of a reconcile."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.dyn = kube.dynamic
        self._mrs = self.dyn.resources.get(api_version=API_VERSION, kind=KIND)
        self._pods = self.dyn.resources.get(api_version="v1", kind="Pod")
        self._nodes = self.dyn.resources.get(api_version="v1", kind="Node")
        self._kinds: dict[tuple[str, str], Any] = {}

    def _resource(self, api_version: str, kind: str) -> Any:
        res = self._kinds.get((api_version, kind))
        if res is None:
            res = self._kinds[(api_version, kind)] = self.dyn.resources.get(api_version=api_version, kind=kind)
        return res

    @staticmethod
    def _json(resp: Any) -> dict[str, Any]:
        return json.loads(resp.data)

    @staticmethod
    def _done(resp: Any) -> None:
        # An unread response keeps its connection out of the pool: the next request would open a
        # new one, and a TLS handshake per write doubled the CPU of a 100-object apply storm.
        resp.drain_conn()
        resp.release_conn()

    def get_mrs(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._json(self.dyn.get(self._mrs, name=name, namespace=namespace, serialize=False))
        except NotFoundError:
            return None

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return self._json(self.dyn.get(self._pods, namespace=namespace, label_selector=selector, serialize=False)).get("items") or []

    def node_exists(self, name: str) -> bool:
        try:
            self._done(self.dyn.get(self._nodes, name=name, serialize=False))
            return True
        except NotFoundError:
            return False

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        # A merge patch of our own fields only: the autoscaler's (observed, and desiredReplicas while
        # it owns it) stay as they are. Lists (placements) are replaced whole; conditions never
        # travel here (apply_conditions).
        resp = self.dyn.patch(
            self._mrs.status, body={"status": status}, name=name, namespace=namespace, content_type="application/merge-patch+json", serialize=False
        )
        return self._json(resp)

    def apply_conditions(self, namespace: str, name: str, conditions: list[dict[str, Any]]) -> dict[str, Any]:
        """Server-side apply of this controller's condition types only. conditions is a list-map
        keyed by type, so the autoscaler's types (applied under its own manager) are never dropped
        by a write of ours that raced with it, as a merge patch of the whole list would."""
        body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, "namespace": namespace}, "status": {"conditions": conditions}}
        return self.kube.apply_status(body, manager=FIELD_MANAGER)

    def patch_pod_metadata(self, namespace: str, name: str, labels: dict[str, str | None], annotations: dict[str, str | None]) -> None:
        body = {"metadata": {"labels": labels, "annotations": annotations}}
        try:
            resp = self.dyn.patch(
                self._pods,
                body=body,
                name=name,
                namespace=namespace,
                content_type="application/merge-patch+json",
                field_manager=FIELD_MANAGER,
                serialize=False,
            )
            self._done(resp)
        except NotFoundError:
            pass

    def delete_pod(self, namespace: str, name: str, *, force: bool = False) -> None:
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if force:
            # Only for pods whose node object is gone: no kubelet will ever confirm their end, and
            # the pod garbage collector would free their names and GPUs only after its quarantine.
            body["gracePeriodSeconds"] = 0
        try:
            self._done(self.dyn.delete(self._pods, name=name, namespace=namespace, body=body, serialize=False))
        except NotFoundError:
            pass

    def apply(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        resp = self.dyn.server_side_apply(
            self._resource(obj["apiVersion"], obj["kind"]),
            body=obj,
            name=meta["name"],
            namespace=meta.get("namespace"),
            field_manager=FIELD_MANAGER,
            force_conflicts=True,  # our own children: take back fields someone else set
            serialize=False,
        )
        self._done(resp)

    def delete(self, api_version: str, kind: str, name: str, namespace: str) -> None:
        try:
            self._done(
                self.dyn.delete(self._resource(api_version, kind), name=name, namespace=namespace, body={"propagationPolicy": "Background"}, serialize=False)
            )
        except NotFoundError:
            pass


def read_in_flight(ip: str, port: int, timeout: float = METRICS_TIMEOUT_SECONDS) -> int | None:
    """Requests a replica holds, from its vLLM /metrics; None when it cannot be read."""
    try:
        with urllib.request.urlopen(f"http://{ip}:{port}/metrics", timeout=timeout) as resp:  # noqa: S310 - pod IPs only
            return parse_in_flight(resp.read(4 << 20).decode("utf-8", "replace"))
    except (OSError, ValueError):
        return None


# --- The reconciler --------------------------------------------------------------------------


def _obj_hash(obj: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _norm(value: Any) -> Any:
    """Status values compared for change: None-valued keys and order of conditions do not count."""
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_norm(v) for v in value]
    return value


class ModelReplicaSetReconciler:
    def __init__(self, api: Api, *, clock: Any = time.time, metrics: Any = read_in_flight, workers: int = 4) -> None:
        self.api = api
        self.clock = clock
        self.read_in_flight = metrics
        # Plans are made one at a time, and each ModelReplicaSet's latest placements are kept here
        # until its status shows them, so two replicas planned in parallel never get the same GPUs.
        self._plan_lock = threading.Lock()
        self._ledger: dict[Key, list[Assignment]] = {}
        self._memory: dict[Key, Memory] = {}
        self._memory_lock = threading.Lock()  # worker threads add entries while kopf's loop reads them
        self._metrics_pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="af-metrics")
        self._unreachable: dict[tuple[str, int], float] = {}
        self._io_pool = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="af-io")
        self.workers = workers

    def memory(self, key: Key) -> Memory:
        with self._memory_lock:
            m = self._memory.get(key)
            if m is None:
                m = self._memory[key] = Memory()
            return m

    def forget(self, key: Key) -> None:
        with self._memory_lock:
            self._memory.pop(key, None)
        with self._plan_lock:
            self._ledger.pop(key, None)

    def own_write(self, key: Key, resource_version: str | None) -> bool:
        m = self._memory.get(key)
        return bool(m and resource_version and resource_version in m.own_resource_versions)

    def watches_node(self, node: str) -> list[Key]:
        """ModelReplicaSets to reconcile when a node changes: those placed on it or waiting for room."""
        with self._memory_lock:
            return [k for k, m in self._memory.items() if m.unplaced or node in m.nodes]

    # --- events ---

    def event(self, obj: Mapping[str, Any], mem: Memory, type_: str, reason: str, message: str, *, once: bool = True) -> None:
        if mem.quiet:
            return
        now = self.clock()
        key = (type_, reason, message)
        # Problems that persist are reported again only every EVENT_REPEAT_SECONDS; actions are
        # reported each time, bar an identical one within seconds (a loop must never flood).
        if now - mem.events.get(key, -1e18) < (EVENT_REPEAT_SECONDS if once else ACTION_REPEAT_SECONDS):
            return
        mem.events[key] = now
        if len(mem.events) > 256:
            for k, _ in sorted(mem.events.items(), key=lambda kv: kv[1])[:128]:
                mem.events.pop(k, None)
        meta = obj["metadata"]
        ref = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta.get("uid")}}
        log.log(logging.WARNING if type_ == "Warning" else logging.INFO, "%s/%s %s: %s", meta["namespace"], meta["name"], reason, message)
        try:
            kopf.event(ref, type=type_, reason=reason, message=message[:1024])
        except LookupError:
            pass  # outside kopf (unit tests, scripts): the log line above is all there is

    # --- the reconcile ---

    def reconcile(self, key: Key, snap: Snapshot) -> float | None:
        ns, name = key
        with self._memory_lock:
            first = key not in self._memory
        # The first pass of an object in this process reads it from the watch event that brought
        # it: nothing this process wrote can be missing from it yet. Later passes read it fresh,
        # as the cache may lag our own status writes.
        obj = snap.body if first and snap.body is not None else self.api.get_mrs(ns, name)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            # Children go with their owner (ownerReferences); nothing to drain or clean up here.
            self.forget(key)
            return None
        mem = self.memory(key)
        try:
            return _Pass(self, key, obj, snap, mem, first=first).run()
        except NotFoundError:
            if self.api.get_mrs(*key) is None:  # deleted while we worked on it
                self.forget(key)
                return None
            raise
        except ForbiddenError as e:
            if "NamespaceTerminating" not in str(getattr(e, "body", "")) and "being terminated" not in str(e):
                raise
            # Its namespace is being deleted, it goes next: nothing to create, nothing to report.
            mem.quiet = True
            return None

    def plan_replicas(self, key: Key, snap: Snapshot, nodes: list, requests: list, own: list[Assignment]) -> Any:
        """Plan under the process-wide lock, against every other ModelReplicaSet's placements
        (the latest this process made, else their status), and remember ours at once."""
        with self._plan_lock:
            existing = list(own)
            for other, records in snap.placements.items():
                if other == key or other in self._ledger:
                    continue
                existing += [a for rec in records if (a := assignment_from_status(other[0], other[1], rec)) is not None]
            for other, assignments in self._ledger.items():
                if other != key:
                    existing += assignments
            result = plan(nodes, requests, existing)
            self._ledger[key] = [a for a in (*result.kept, *result.placed) if a.owner == f"{key[0]}/{key[1]}"]
            return result

    def record_ledger(self, key: Key, assignments: list[Assignment]) -> None:
        with self._plan_lock:
            self._ledger[key] = assignments

    def fan_out(self, fn: Any, items: list[Any]) -> None:
        """fn(item) for every item, concurrently (API writes wait on the server, not on us); the
        first error is raised once all have finished."""
        if len(items) <= 1:
            for item in items:
                fn(item)
            return
        futures = [self._io_pool.submit(fn, item) for item in items]
        concurrent.futures.wait(futures)
        for f in futures:
            f.result()

    def fetch_in_flight(self, targets: dict[str, tuple[str, int]]) -> dict[str, int | None]:
        """In-flight requests per replica, read in parallel. An endpoint that did not answer is not
        asked again for a few seconds: it would hold every reconcile for the whole timeout."""
        now = self.clock()
        out: dict[str, int | None] = {}
        futures = {}
        with self._memory_lock:
            unreachable = dict(self._unreachable)
        for r, target in targets.items():
            if unreachable.get(target, 0.0) > now:
                out[r] = None
            else:
                futures[r] = (target, self._metrics_pool.submit(self.read_in_flight, *target))
        for r, (_, f) in futures.items():
            try:
                out[r] = f.result(timeout=METRICS_TIMEOUT_SECONDS * 2)
            except Exception:  # noqa: BLE001 - an unreadable replica is "unknown", never an error
                out[r] = None
        with self._memory_lock:
            for r, (target, _) in futures.items():
                if out[r] is None:
                    self._unreachable[target] = now + METRICS_RETRY_SECONDS
                else:
                    self._unreachable.pop(target, None)
            if len(self._unreachable) > 4096:
                self._unreachable = {t: until for t, until in self._unreachable.items() if until > now}
        return out


class _Pass:
    """One reconcile of one ModelReplicaSet."""

    def __init__(self, rec: ModelReplicaSetReconciler, key: Key, obj: dict[str, Any], snap: Snapshot, mem: Memory, *, first: bool = False) -> None:
        self.r = rec
        self.first = first
        self.api = rec.api
        self.key = key
        self.ns, self.name = key
        self.owner = f"{self.ns}/{self.name}"
        self.obj = obj
        self.snap = snap
        self.mem = mem
        self.now = rec.clock()
        self.generation = int(obj["metadata"].get("generation") or 0)
        self.status_in: dict[str, Any] = dict(obj.get("status") or {})
        self.written: dict[str, Any] = dict(self.status_in)
        # Condition types another writer owns: the autoscaler's, except ScalingLimited while
        # autoscaling is off (placement limits are then this controller's to report). Never
        # applied by us, not even as carried-over copies, or the autoscaler could not remove them.
        autoscaling = bool(((obj.get("spec") or {}).get("autoscaling") or {}).get("enabled"))
        self.foreign_conditions = AUTOSCALER_CONDITIONS if autoscaling else AUTOSCALER_CONDITIONS - {SCALING_LIMITED}
        self.wake: list[float] = []
        # Per replica: whether it runs the current spec; which replicas are on their way out.
        self.current: dict[str, bool] = {}
        self.terminating: set[str] = set()

    # --- helpers ---

    def event(self, type_: str, reason: str, message: str, *, once: bool = True) -> None:
        self.r.event(self.obj, self.mem, type_, reason, message, once=once)

    def write_status(self, status: dict[str, Any]) -> None:
        status = dict(status)
        conds = status.pop("conditions", None)
        changed = {k: v for k, v in status.items() if _norm(self.written.get(k)) != _norm(v)}
        # The figures first, then the conditions that summarize them: a reader that sees the new
        # Ready also sees what it is based on.
        if changed:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s/%s status: %s", self.ns, self.name, ", ".join(sorted(changed)))
            out = self.api.patch_status(self.ns, self.name, changed)
            self._own_write(out)
            self.written.update(changed)
        if conds is not None:
            mine = [c for c in conds if c.get("type") not in self.foreign_conditions]
            before = [c for c in self.written.get("conditions") or [] if c.get("type") not in self.foreign_conditions]
            if strip_transition_times(mine) != strip_transition_times(before):
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("%s/%s conditions: %s", self.ns, self.name, "; ".join(f"{c.get('type')}={c.get('status')} {c.get('reason')}" for c in mine))
                out = self.api.apply_conditions(self.ns, self.name, mine)
                self._own_write(out)
                self.written["conditions"] = list((out.get("status") or {}).get("conditions") or mine)

    def _own_write(self, out: dict[str, Any]) -> None:
        rv = (out.get("metadata") or {}).get("resourceVersion")
        if rv:
            # Our own write comes back as a watch event; it must not trigger another reconcile.
            self.mem.own_resource_versions.add(rv)
            if len(self.mem.own_resource_versions) > 32:
                self.mem.own_resource_versions = {rv}

    def base_status(self, spec: ModelReplicaSetSpec | None) -> dict[str, Any]:
        st: dict[str, Any] = {"observedGeneration": self.generation, "selector": selector_string(self.name)}
        if spec is not None:
            st["gpusPerReplica"] = spec.engine.tensor_parallel_size * spec.engine.pipeline_parallel_size
            st["servedModelName"] = served_name(spec)
        return st

    # --- the pass ---

    def run(self) -> float | None:
        try:
            spec = ModelReplicaSetSpec.model_validate(self.obj.get("spec") or {})
            mrs = ModelReplicaSet(metadata=self.obj["metadata"], spec=spec)
        except ValidationError as e:
            # The CRD's schema and CEL rules refuse what these models refuse; this only happens
            # with a CRD older than the operator. Report it, change nothing.
            msg = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())[:2000]
            self.event("Warning", "InvalidSpec", msg)
            conds = compose_conditions(self.status_in.get("conditions") or [], Summary(0, 0, 0, 0, 0, invalid=msg), self.generation)
            self.write_status({**self.base_status(None), "conditions": conds})
            return None
        return self.reconcile(mrs, spec)

    def reconcile(self, mrs: ModelReplicaSet, spec: ModelReplicaSetSpec) -> float | None:
        ns, name, now = self.ns, self.name, self.now
        shash = spec_hash(spec)
        timing = Timing.of(spec)
        demand = demand_for(ns, name, spec)
        nodes = inventory_from_k8s(self.snap.nodes, self.snap.pods, spec.gpu.resource_name, spec.placement.node_key)
        node_by_name = {n.name: n for n in nodes}
        self.assessment = assess(spec, eligible_gpu_memory_mib(nodes, demand))
        capacity_error = "; ".join(self.assessment.errors) if self.assessment.errors else None
        if capacity_error:
            self.event("Warning", "ModelDoesNotFit", capacity_error)
        desired = desired_replicas(spec, self.status_in.get("desiredReplicas") if spec.autoscaling.enabled else None)

        # --- observe replicas: pods fresh from the API (a cache could lag our own writes) ---
        by_replica: dict[str, list] = {}
        # On an object's first pass in this process the pod cache is complete for it (it holds
        # every pod made before this process started, and this process has made none for it yet):
        # when it shows none, there is nothing to list.
        listed = self.api.list_pods(ns, f"{MODELREPLICASET_LABEL}={name}") if not self.first or self.snap.has_pods(ns, name) else []
        for pod in listed:
            pv = observe_pod(pod, pinned_node(pod, spec.placement.node_key), spec.gpu.resource_name)
            if pv is not None:
                by_replica.setdefault(pv.replica, []).append(pv)
        records_in = {p["name"]: p for p in self.status_in.get("placements") or [] if p.get("name")}
        views = {
            r: ReplicaView(r, tuple(sorted(by_replica.get(r, []), key=lambda p: p.index)), records_in.get(r)) for r in sorted(set(by_replica) | set(records_in))
        }
        referenced = {n for v in views.values() for n in (*v.nodes, *(p.node for p in v.pods if p.node))}
        # A node missing from the cache may only be new to it: ask the API before calling it gone.
        gone = {n for n in referenced - set(node_by_name) if not self.api.node_exists(n)}
        unusable = {n for n in referenced if n in node_by_name and ineligibility(node_by_name[n], demand) is not None}

        records: dict[str, dict[str, Any]] = {}
        states: list[ReplicaState] = []
        failures: list[ConditionCause] = []
        to_create: dict[str, Assignment] = {}  # replicas whose missing pods are applied in this pass
        replan: dict[str, int] = {}  # failed replicas to place afresh under their name -> restarts

        for rname, v in views.items():
            current = self._is_current(v, shash)
            self.current[rname] = current
            ordinal = (parse_replica_name(name, rname) or ("", 0))[1]
            rec = dict(v.record) if v.record else None

            # A failed replica waiting out its backoff: its pods are gone or going.
            if rec and rec.get("phase") == FAILED and not v.live:
                # The failure time is in status, so an operator restart does not restart the
                # backoff (a restart storm of a group still loading); memory covers old records.
                failed_at = parse_time(rec.get("failedAt")) or self.mem.failed_at.setdefault(rname, now)
                restarts = int(rec.get("restarts") or 0)
                at = failed_at + restart_backoff(restarts, timing.restart_backoff, timing.max_restart_backoff)
                records[rname] = rec
                states.append(ReplicaState(rname, current, FAILED, ordinal=ordinal, created=v.created, failed_at=failed_at, restarts=restarts))
                failures.append(ConditionCause("RestartBackoff", f"replica {rname} failed; restart {restarts} at {rfc3339(at)}"))
                continue

            h = replica_health(v, now, startup_timeout=spec.lifecycle.startup_timeout_seconds, gone_nodes=gone, unusable_nodes=unusable)
            if h.kind == "terminating":
                if v.pods:
                    phase = rec.get("phase") if rec and rec.get("phase") in (DRAINING, FAILED) else DRAINING
                    records[rname] = {**(rec or self._record_from_pods(rname, v, node_by_name, spec)), "phase": phase, "endpoint": None}
                    states.append(ReplicaState(rname, current, TERMINATING, ordinal=ordinal, created=v.created))
                    self.terminating.add(rname)
                else:
                    self.mem.failed_at.pop(rname, None)
                continue
            if h.kind == "lost":
                # Replaced under a new name (this one is taken until its pods are gone), at once:
                # the node failed, not the model, so there is nothing to back off from.
                self._delete(v, force_nodes=gone)
                self.mem.failed_at.pop(rname, None)
                failures.append(ConditionCause(h.reason, h.message))
                self.event("Warning", h.reason, f"{h.message}; deleting its pods and placing a replacement", once=False)
                states.append(ReplicaState(rname, current, TERMINATING, ordinal=ordinal, created=v.created))
                self.terminating.add(rname)
                continue
            if h.kind == "failed":
                self._delete(v)
                restarts = v.restarts + 1
                self.mem.failed_at[rname] = now
                wait = restart_backoff(restarts, timing.restart_backoff, timing.max_restart_backoff)
                gang = v.expected > 1
                self.event(
                    "Warning",
                    "GangRestart" if gang else "ReplicaRestart",
                    f"{h.message}; deleting the {'group' if gang else 'replica'} and restarting it in {int(wait)}s (restart {restarts})",
                    once=False,
                )
                records[rname] = {
                    **(rec or self._record_from_pods(rname, v, node_by_name, spec)),
                    "phase": FAILED,
                    "restarts": restarts,
                    "endpoint": None,
                    "failedAt": rfc3339(now, precise=True),
                }
                if h.replan:
                    records[rname].update(nodes=[], gpus=0, gpusPerNode=None, block=None, zone=None)
                failures.append(ConditionCause(h.reason, f"{h.message}; restart {restarts} at {rfc3339(now + wait)}"))
                states.append(ReplicaState(rname, current, FAILED, ordinal=ordinal, created=v.created, failed_at=now, restarts=restarts))
                continue

            # Whole, or still being created.
            if h.kind == "creating" and (rec is None or not current):
                # Incomplete without a record: made by a process that died before recording its plan,
                # so the plan is unknown. Incomplete and outdated: not worth completing. Remove both.
                self._delete(v)
                states.append(ReplicaState(rname, current, TERMINATING, ordinal=ordinal, created=v.created))
                self.terminating.add(rname)
                continue
            if rec is None:
                rec = self._record_from_pods(rname, v, node_by_name, spec)
            if h.kind == "creating":
                a = assignment_from_status(ns, name, rec)
                if a is not None:
                    to_create[rname] = a
            phase = replica_phase(v)
            lead = v.leader
            records[rname] = {**rec, "phase": phase, "endpoint": f"{lead.ip}:{spec.engine.port}" if lead and lead.ip and v.ready else None}
            states.append(
                ReplicaState(
                    rname,
                    current,
                    phase,
                    ready=v.ready,
                    ordinal=ordinal,
                    created=v.created,
                    draining_since=lead.draining_since if lead else None,
                    restarts=v.restarts,
                )
            )
            self._watch_timeouts(v, spec)

        # --- in-flight work of replicas draining, or candidates when one must go ---
        active = [s for s in states if s.phase in ACTIVE]
        choosing = len(active) > desired.count or any(not s.current for s in active)
        targets = {}
        for s in states:
            lead = views[s.name].leader
            if s.ready and lead and lead.ip and (s.phase == DRAINING or (choosing and s.phase in ACTIVE)):
                targets[s.name] = (lead.ip, spec.engine.port)
        in_flight = self.r.fetch_in_flight(targets)
        states = [replace(s, in_flight=in_flight.get(s.name)) for s in states]

        # --- decide one step ---
        d = plan_step(states, desired.count, now, timing, surge_blocked=self.mem.surge_blocked)
        if capacity_error:
            # Nothing new starts from a spec whose model cannot fit; drains already under way finish.
            draining_now = {s.name for s in states if s.phase == DRAINING}
            d = RolloutStep(delete=[(r, why) for r, why in d.delete if r in draining_now], requeue_after=d.requeue_after)
        rolling = any(not s.current for s in active)
        state_of = {s.name: s for s in states}

        for rname in d.undrain:
            self._set_draining(views[rname], False)
            records[rname]["phase"] = READY_PHASE
            self.event("Normal", "Undrained", f"replica {rname} serves again: scaled up while it was draining", once=False)
        for rname in d.drain:
            s = state_of[rname]
            self._set_draining(views[rname], True)
            records[rname].update(phase=DRAINING, endpoint=None)
            held = "in-flight requests unknown (metrics unreachable)" if s.in_flight is None else f"{s.in_flight} requests in flight"
            why = "rolling update" if not s.current else f"scale down to {desired.count} ({desired.source})"
            self.event(
                "Normal",
                "Draining",
                f"draining replica {rname} for {why}: out of every Service now, deleted when idle or after {int(timing.drain_timeout)}s; {held}",
                once=False,
            )
            self.wake.append(DRAIN_FIRST_POLL_SECONDS)
        for rname, why in d.delete:
            v = views[rname]
            self._delete(v)
            self.terminating.add(rname)
            if v.pods and rname in records:
                records[rname].update(phase=DRAINING, endpoint=None)  # listed until its pods are gone
            else:
                records.pop(rname, None)
            self.mem.failed_at.pop(rname, None)
            self.event("Normal", "ReplicaDeleted", f"deleted replica {rname}: {why}", once=False)

        # Restarts: at the recorded placement while it still stands, else placed afresh.
        for rname in d.restart:
            v = views[rname]
            if v.pods:
                self.wake.append(1.0)  # its old pods still terminate: the pod names are not free yet
                continue
            rec = records[rname]
            a = assignment_from_status(ns, name, rec)
            if a is not None and all(n in node_by_name and n not in unusable for n in a.nodes):
                to_create[rname] = a
                records[rname] = {**rec, "phase": PENDING}
                self.event("Normal", "Restarting", f"restarting replica {rname} on {', '.join(a.nodes)} (restart {rec.get('restarts', 0)})", once=False)
            else:
                replan[rname] = int(rec.get("restarts") or 0)
            self.mem.failed_at.pop(rname, None)

        # --- place new replicas (and failed ones whose place is gone) ---
        new_names = new_replica_names(name, shash, views.keys(), d.create) if d.create > 0 else []
        for rname in new_names:
            self.current[rname] = True
        unplaced: list[Any] = []
        placed: list[Assignment] = []
        own = [a for rec in records.values() if (a := assignment_from_status(ns, name, rec)) is not None]
        if new_names or replan:
            requests = requests_for(ns, name, spec, [*new_names, *replan])
            result = self.r.plan_replicas(self.key, self.snap, nodes, requests, own)
            placed = [a for a in result.placed if a.owner == self.owner]
            unplaced = [u for u in result.unplaced if u.owner == self.owner]
            where: dict[str, str] = {}
            for a in placed:
                rname = a.key.split("/", 1)[1]
                records[rname] = placement_status(a, phase=PENDING, restarts=replan.get(rname, 0)).wire()
                to_create[rname] = a
                where[rname] = (
                    f"{rname} on {'+'.join(a.nodes)}" + (f" (block {a.block})" if a.multi_node and a.block else "") + (f" in {a.zone}" if a.zone else "")
                )
            for rname in replan:
                if rname in where:
                    self.event("Normal", "Restarting", f"restarting replica {rname} elsewhere: {where[rname]}", once=False)
            for u in unplaced:
                # A failed replica that no longer fits anywhere gives its slot back; the count is
                # made up by new replicas as soon as there is room.
                records.pop(u.key.split("/", 1)[1], None)
            if rolling and new_names:
                self.mem.surge_blocked = bool(unplaced)
            if unplaced:
                # The planner's exact words: what a replica needs and what the cluster has.
                self.event("Warning", unplaced[0].reason, unplaced[0].message)
            created = [where[r] for r in new_names if r in where]
            if created:
                # One Event per scale step, with every placement in it (an Event per replica would
                # double the API writes of a scale-up).
                self.event(
                    "Normal",
                    "RollingUpdate" if rolling else "ScalingUp",
                    f"creating {len(created)} replica(s) for {desired.count} desired ({desired.source}): {'; '.join(created)}"
                    + (f"; {len(unplaced)} cannot be placed" if unplaced else ""),
                    once=False,
                )
        self.mem.unplaced = bool(unplaced)

        # --- write: pods first, all at once (they are what a scale-up waits for; a gang's members
        # are created together); then status, Services and the PDB, side by side. ---
        # Status is not written before the pods: the pods record their own placement (required node
        # affinity), so an operator killed between the two rebuilds the records from the pods
        # (_record_from_pods) and recomputes the same names for replicas it had not created yet. An
        # incomplete gang without a record is removed and planned again (see the "creating" branch).
        pods = [pod for rname, a in sorted(to_create.items()) for pod in self._missing_pods(mrs, a, views.get(rname))]
        self.r.fan_out(self.api.apply, pods)
        self.r.record_ledger(self.key, [a for rec in records.values() if (a := assignment_from_status(ns, name, rec)) is not None])
        self.mem.nodes = frozenset(n for rec in records.values() for n in rec.get("nodes") or [])
        status = self.compose(spec, records, desired=desired, capacity_error=capacity_error, unplaced=unplaced, failures=failures, waiting=d.waiting)
        if pods and not self.mem.applied:
            # A new ModelReplicaSet's status, Services and PDB wait for its next pass, which is not
            # urgent: in a storm of new objects every object's pods (what a model load waits for)
            # reach the API server first. The pods carry their placement (required node affinity)
            # and the ledger holds it for the planner meanwhile, as after an operator restart; a
            # Service selects its pods whenever it is created. Only those writes move, by a pass.
            self.wake.append(CHILDREN_AFTER_PODS_SECONDS)
        else:
            writes = [functools.partial(self.write_status, status), *self.children_writes(mrs, multi_node=any(a.multi_node for a in (*own, *placed)))]
            self.r.fan_out(lambda write: write(), writes)

        wakes = [w for w in (d.requeue_after, *self.wake) if w is not None]
        return min(wakes) if wakes else None

    def _is_current(self, v: ReplicaView, shash: str) -> bool:
        h = v.spec_hash
        if h:
            return h == shash
        parsed = parse_replica_name(self.name, v.name)
        return parsed is not None and shash.startswith(parsed[0])

    # --- status ---

    def compose(
        self,
        spec: ModelReplicaSetSpec,
        records: dict[str, dict[str, Any]],
        *,
        desired: Any,
        capacity_error: str | None,
        unplaced: list[Any],
        failures: list[ConditionCause],
        waiting: str,
    ) -> dict[str, Any]:
        staying = {r: rec.get("phase") for r, rec in records.items() if r not in self.terminating}
        active = [r for r, p in staying.items() if p in ACTIVE]
        draining = [r for r, p in staying.items() if p == DRAINING]
        current = [r for r in active if self.current.get(r, True)]
        ready = [r for r in active if staying[r] == READY_PHASE]
        summary = Summary(
            desired=desired.count,
            replicas=len(active) + len(draining),
            ready=len(ready),
            current=len(current),
            outdated=len(active) - len(current),
            draining=len(draining),
            starting=len(active) - len(ready),
            capacity_error=capacity_error,
            unplaced=ConditionCause(unplaced[0].reason, unplaced[0].message) if unplaced else None,
            unplaced_count=len(unplaced),
            limited=ConditionCause(desired.limited_reason, desired.limited_message) if desired.limited_reason else None,
            failures=failures,
            waiting=waiting,
        )
        conds = compose_conditions(self.written.get("conditions") or [], summary, self.generation)
        # Every figure, null when unknown: a merge patch then also removes figures that went away.
        cap = dict.fromkeys(("weightsBytes", "kvBytesPerToken", "kvTokensPerReplica", "concurrentSequences", "contextTokens", "gpuMemoryBytes"))
        cap.update(self.assessment.status().wire())
        status = {
            **self.base_status(spec),
            "replicas": summary.replicas,
            "readyReplicas": summary.ready,
            "placements": [{k: v for k, v in records[r].items() if v is not None} for r in sorted(records)],
            "capacity": cap,
            "conditions": conds,
        }
        if not spec.autoscaling.enabled:
            # While autoscaling is off the target is spec.replicas; with it on, desiredReplicas and
            # the scale reason belong to the autoscaler and are left alone.
            status["desiredReplicas"] = desired.count
            before = self.status_in.get("desiredReplicas")
            if before != desired.count:
                status["lastScaleTime"] = rfc3339(self.now)
                status["lastScaleReason"] = f"{desired.source} {before} -> {desired.count}" if before is not None else f"{desired.source} {desired.count}"
        return status

    # --- children ---

    def children_writes(self, mrs: ModelReplicaSet, *, multi_node: bool) -> list[Any]:
        """Writes of the Services and the PodDisruptionBudget, for those whose rendering changed
        (and now and then regardless, which restores one deleted by hand)."""
        writes: list[Any] = []
        for obj in [*render_services(mrs, gang=multi_node), render_pdb(mrs)]:
            k, h = object_key(obj), _obj_hash(obj)
            seen = self.mem.applied.get(k)
            if not (seen and seen[0] == h and self.now - seen[1] < CHILDREN_REAPPLY_SECONDS):
                writes.append(functools.partial(self._apply_child, obj, k, h))
        gang_svc = ("Service", self.ns, gang_service_name(self.name))
        if not multi_node and gang_svc in self.mem.applied:
            self.mem.applied.pop(gang_svc, None)
            writes.append(functools.partial(self.api.delete, "v1", "Service", gang_service_name(self.name), self.ns))
        return writes

    def _apply_child(self, obj: dict[str, Any], k: tuple[str, str, str], h: str) -> None:
        self.api.apply(obj)
        self.mem.applied[k] = (h, self.now)

    def _missing_pods(self, mrs: ModelReplicaSet, a: Assignment, view: ReplicaView | None) -> list[dict[str, Any]]:
        """The replica's pods that do not exist yet, rendered at its placement."""
        have = {p.index for p in view.pods} if view else set()
        return [render_pod(mrs, a, i) for i in range(len(a.nodes)) if i not in have]

    def _delete(self, v: ReplicaView, force_nodes: Iterable[str] = ()) -> None:
        force = set(force_nodes)
        for p in v.pods:
            if p.deleting and p.node not in force:
                continue
            self.api.delete_pod(self.ns, p.name, force=p.node in force)

    def _set_draining(self, v: ReplicaView, draining: bool) -> None:
        # Labels only (a merge patch): a pod's spec cannot change, and the serving label is what
        # every Service selects on. The annotation keeps the drain's start for a restarted operator.
        since = rfc3339(self.now, precise=True) if draining else None
        for p in v.live:
            if p.serving is None:
                continue
            self.api.patch_pod_metadata(self.ns, p.name, {SERVING_LABEL: "false" if draining else "true"}, {DRAINING_SINCE_ANNOTATION: since})

    def _record_from_pods(self, rname: str, v: ReplicaView, nodes: Mapping[str, Any], spec: ModelReplicaSetSpec) -> dict[str, Any]:
        """A placement record rebuilt from the pods (their pinned nodes), when status lacks one."""
        live = sorted(v.live or v.pods, key=lambda p: p.index)
        names = [p.node for p in live if p.node]
        node = nodes.get(names[0]) if names else None
        labels = node.labels if node is not None else {}
        a = Assignment(
            key=replica_key(self.ns, rname),
            owner=self.owner,
            nodes=tuple(names),
            gpus_per_node=live[0].gpus if live else 0,
            block=labels.get(spec.placement.block_key),
            zone=labels.get(spec.placement.zone_key),
        )
        return placement_status(a, phase=PENDING, restarts=v.restarts).wire()

    def _watch_timeouts(self, v: ReplicaView, spec: ModelReplicaSetSpec) -> None:
        """Wake up when a loading gang would pass its startup timeout, or a refused pod its grace."""
        live = v.live
        if v.expected > 1 and live and not v.ready:
            self.wake.append(max(0.5, max(p.created for p in live) + spec.lifecycle.startup_timeout_seconds - self.now + 0.5))
        for p in live:
            if p.unschedulable_since is not None:
                self.wake.append(max(0.5, p.unschedulable_since + UNSCHEDULABLE_GRACE_SECONDS - self.now + 0.5))


# --- kopf wiring -----------------------------------------------------------------------------


class _Runtime:
    """The process-wide controller: its reconciler, work queue and the kopf indices it reads."""

    def __init__(self) -> None:
        self.reconciler: ModelReplicaSetReconciler | None = None
        self.queue: WorkQueue | None = None
        self.indices: dict[str, Any] = {}
        self.pool: concurrent.futures.ThreadPoolExecutor | None = None
        self.node_sig: dict[str, str] = {}
        self.pod_sig: dict[tuple[str, str], tuple[Any, ...] | None] = {}
        self.bodies: dict[Key, dict[str, Any]] = {}

    def snapshot(self, key: Key | None = None) -> Snapshot:
        """Copies of the caches, taken on the event loop (where kopf updates them) for a worker thread."""
        nodes = [n for store in self.indices["mrs_nodes"].values() for n in store]
        pods = [p for store in self.indices["mrs_gpu_pods"].values() for p in store]
        placements: dict[Key, list[dict[str, Any]]] = {}
        for k, store in self.indices["mrs_placements"].items():
            for v in store:
                placements[k] = v["placements"]
        return Snapshot(nodes, pods, placements, self.bodies.get(key) if key is not None else None)

    async def work(self, key: Hashable) -> float | None:
        assert self.reconciler is not None and self.pool is not None
        snap = self.snapshot(key)  # type: ignore[arg-type]
        ctx = contextvars.copy_context()  # kopf's event posting reads its queue from the context
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, functools.partial(ctx.run, self.reconciler.reconcile, key, snap))

    def enqueue(self, key: Key, delay: float = 0.0, *, urgent: bool = False) -> None:
        if self.queue is None:
            return
        # Started lazily from inside a kopf handler, so that the dispatcher (and every reconcile)
        # inherits kopf's event-posting context; kopf calls handlers only once its indices are full.
        self.queue.start()
        self.queue.add(key, delay, urgent=urgent)


RUNTIME = _Runtime()


@kopf.index("", "v1", "nodes", id="mrs_nodes")
async def index_nodes(body: kopf.Body, name: str, **_: Any) -> dict[str, Any]:
    return {name: _trim_node(body)}


@kopf.index("", "v1", "pods", id="mrs_gpu_pods")
async def index_gpu_pods(body: kopf.Body, **_: Any) -> dict[str, Any]:
    trimmed = _trim_pod(body)
    # An empty mapping (not None) removes a pod that stopped holding accelerators from the index.
    return {"gpu": trimmed} if trimmed is not None else {}


@kopf.index(GROUP, VERSION, PLURAL, id="mrs_placements")
async def index_placements(body: kopf.Body, namespace: str, name: str, **_: Any) -> dict[Key, Any]:
    return {(namespace, name): _placements_of(body)}


@kopf.on.startup()
async def start_modelreplicaset_controller(mrs_nodes: Any, mrs_gpu_pods: Any, mrs_placements: Any, **_: Any) -> None:
    RUNTIME.indices = {"mrs_nodes": mrs_nodes, "mrs_gpu_pods": mrs_gpu_pods, "mrs_placements": mrs_placements}
    RUNTIME.reconciler = ModelReplicaSetReconciler(Api(Kube(kube_client())), workers=CONFIG.workers)
    RUNTIME.pool = concurrent.futures.ThreadPoolExecutor(max_workers=CONFIG.workers, thread_name_prefix="af-reconcile")
    RUNTIME.queue = WorkQueue(RUNTIME.work, workers=CONFIG.workers, resync=CONFIG.resync_seconds)


@kopf.on.cleanup()
async def stop_modelreplicaset_controller(**_: Any) -> None:
    if RUNTIME.queue is not None:
        await RUNTIME.queue.stop()
    if RUNTIME.pool is not None:
        RUNTIME.pool.shutdown(wait=False, cancel_futures=True)


# Create, update and resume all mean "reconcile it". kopf's change handlers (on.create/update/
# resume) would also write diff-base and progress annotations onto every ModelReplicaSet, which a
# level-based reconcile has no use for: the event handler sees the initial listing (type None,
# the resume), ADDED and MODIFIED, including the autoscaler's status.desiredReplicas. Our own
# status writes are recognised by their resourceVersion and skipped.
@kopf.on.event(GROUP, VERSION, PLURAL)
async def modelreplicaset_event(type: str | None, namespace: str, name: str, meta: kopf.Meta, body: kopf.Body, **_: Any) -> None:
    if RUNTIME.queue is None or RUNTIME.reconciler is None:
        return
    key = (namespace, name)
    if type == "DELETED":
        RUNTIME.bodies.pop(key, None)
        RUNTIME.queue.forget(key)
        RUNTIME.reconciler.forget(key)
        return
    RUNTIME.bodies[key] = dict(body)
    if type == "MODIFIED" and RUNTIME.reconciler.own_write(key, meta.get("resourceVersion")):
        return
    RUNTIME.enqueue(key, urgent=True)


@kopf.on.event("", "v1", "pods", labels={MODELREPLICASET_LABEL: kopf.PRESENT})
async def replica_pod_event(type: str | None, namespace: str, name: str, labels: kopf.Labels, body: kopf.Body, **_: Any) -> None:
    # A pod appearing is our own doing (and the initial listing is covered by each object's
    # resume); what it does next (bound, running, ready, failed, gone) is news. Changes the
    # controller does not read (kubelet and kwok heartbeats of container status) are not: under a
    # storm of new objects each spared pass is a GET, a LIST and often a status write.
    pod = (namespace, name)
    if type == "DELETED":
        RUNTIME.pod_sig.pop(pod, None)
    else:
        sig = _pod_sig(body)
        unchanged = RUNTIME.pod_sig.get(pod) == sig
        RUNTIME.pod_sig[pod] = sig
        if type in (None, "ADDED") or unchanged:
            return
    RUNTIME.enqueue((namespace, labels[MODELREPLICASET_LABEL]), POD_EVENT_COALESCE_SECONDS)


def _pod_sig(body: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """What a reconcile reads of a pod (its PodView) together with its restart counts."""
    view = observe_pod(body)
    restarts = tuple(c.get("restartCount", 0) for c in (body.get("status") or {}).get("containerStatuses") or [])
    return (dataclasses.astuple(view), restarts) if view is not None else None


@kopf.on.event("", "v1", "nodes")
async def node_event(type: str | None, name: str, body: kopf.Body, **_: Any) -> None:
    """A node that appears, goes, or changes what the planner reads wakes the ModelReplicaSets
    placed on it or waiting for room (heartbeats change nothing the planner reads)."""
    if RUNTIME.reconciler is None:
        return
    sig = "" if type == "DELETED" else _obj_hash(_trim_node(body))
    known = name in RUNTIME.node_sig
    if known and RUNTIME.node_sig[name] == sig:
        return
    if type == "DELETED":
        RUNTIME.node_sig.pop(name, None)
    else:
        RUNTIME.node_sig[name] = sig
    if not known and type is None:
        return  # the initial listing: every ModelReplicaSet is reconciled on its own resume
    for key in RUNTIME.reconciler.watches_node(name):
        RUNTIME.enqueue(key)
