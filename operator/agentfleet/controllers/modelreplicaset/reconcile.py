"""One reconcile of one ModelReplicaSet, level-based and idempotent, as named steps that pass
their results on explicitly:

    observe   the object, its pods (fresh from the API), the node inventory (cache snapshot) and
              capacity (capacity.assess): a frozen ``Observed``
    judge     each replica's health (judging.py, pure): a ``Judged``, whose deletions, Events and
              failure times the pass carries out at once
    decide    one rollout step from the replicas' states (rollout)
    act       undrain, drain, delete, restart what the step names
    place     new replicas and failed ones whose place is gone (placement.plan via the ledger)
    write     pods first, then status (status.compose reads an ``Outcome``), Services and the PDB
              (children.py)

Decisions live in agentfleet.rollout, placement, capacity, render and judging (pure, unit-tested);
this module does the I/O through agentfleet.kube.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any, Protocol

from agentfleet_contract.modelreplicaset import ModelReplicaSet, ModelReplicaSetSpec

from agentfleet.autoscale.common import AUTOSCALER_CONDITIONS, SCALING_LIMITED
from agentfleet.capacity import assess
from agentfleet.controllers.modelreplicaset import children, status
from agentfleet.controllers.modelreplicaset.adapters import sync_replica
from agentfleet.controllers.modelreplicaset.caches import Key, Snapshot
from agentfleet.controllers.modelreplicaset.judging import Judged, Observed, judge_replicas
from agentfleet.controllers.modelreplicaset.modelcache import FILL_POLL_SECONDS, CacheFill, decide_fill
from agentfleet.controllers.modelreplicaset.state import ModelReplicaSetState
from agentfleet.placement import (
    MODELREPLICASET_LABEL,
    Assignment,
    assignment_from_status,
    eligible_gpu_memory_mib,
    ineligibility,
    inventory_from_k8s,
    needs_for,
    pinned_node,
    placement_status,
    requests_for,
)
from agentfleet.render.common import API_KEY_KEY, api_key_secret_name
from agentfleet.render.modelreplicaset import SERVING_LABEL, cache_job_name, cache_model, render_cache_job, spec_hash
from agentfleet.rollout import (
    ACTIVE,
    DRAINING,
    DRAINING_SINCE_ANNOTATION,
    PENDING,
    READY_PHASE,
    ReplicaView,
    RolloutStep,
    Timing,
    desired_replicas,
    new_replica_names,
    observe_pod,
    rfc3339,
    rollout_step,
)

# A pass that created pods leaves Services and the PDB to a pass this much later.
CHILDREN_AFTER_PODS_SECONDS = 0.5
# The first look at a replica just marked draining: routers need a moment to stop sending to it.
DRAIN_FIRST_POLL_SECONDS = 2.0


class PassServices(Protocol):
    """What a pass uses of its controller (ModelReplicaSetController provides it)."""

    kube: Any
    events: Any  # reconcile.EventRecorder
    ledger: Any  # ledger.PlacementLedger: placements of every ModelReplicaSet, for the planner
    in_flight: Any  # inflight.InFlightReader
    clock: Callable[[], float]
    adapter_client: Callable[[str, str | None], Any]  # (endpoint, API key) -> adapters.AdapterClient

    def fan_out(self, fn: Any, items: list[Any]) -> None: ...


class ModelReplicaSetPass:
    def __init__(
        self,
        ctl: PassServices,
        key: Key,
        obj: dict[str, Any],
        snap: Snapshot,
        state: ModelReplicaSetState,
        *,
        first: bool,
    ) -> None:
        self.ctl = ctl
        self.kube = ctl.kube
        self.first = first
        self.key = key
        self.ns, self.name = key
        self.owner = f"{self.ns}/{self.name}"
        self.obj = obj
        self.snap = snap
        self.state = state
        self.now = ctl.clock()
        self.generation = int(obj["metadata"].get("generation") or 0)
        self.status_in: dict[str, Any] = dict(obj.get("status") or {})
        self.written: dict[str, Any] = dict(self.status_in)
        # Condition types another writer owns: the autoscaler's, except ScalingLimited while
        # autoscaling is off (placement limits are then this controller's to report). Never
        # applied by us, not even as carried-over copies, or the autoscaler could not remove them.
        autoscaling = bool(((obj.get("spec") or {}).get("autoscaling") or {}).get("enabled"))
        self.foreign_conditions = AUTOSCALER_CONDITIONS if autoscaling else AUTOSCALER_CONDITIONS - {SCALING_LIMITED}
        self.wake: list[float] = []

    # --- helpers the steps share ---

    def event(self, type_: str, reason: str, message: str, *, once: bool = True) -> None:
        if not self.state.quiet:
            self.ctl.events.event(self.obj, type_, reason, message, once=once)

    def status_target(self) -> status.StatusTarget:
        return status.StatusTarget(self.kube, self.ns, self.name, self.state, self.written, self.foreign_conditions)

    def delete_replica(self, v: ReplicaView, force_nodes: Iterable[str] = ()) -> None:
        force = set(force_nodes)
        for p in v.pods:
            if p.deleting and p.node not in force:
                continue
            self.kube.delete("v1", "Pod", p.name, self.ns, force=p.node in force)

    def set_draining(self, v: ReplicaView, draining: bool) -> None:
        # Labels only (a merge patch): a pod's spec cannot change, and the serving label is what
        # every Service selects on. The annotation keeps the drain's start for a restarted operator.
        since = rfc3339(self.now, precise=True) if draining else None
        for p in v.live:
            if p.serving is None:
                continue
            self.kube.merge_patch_metadata(
                "v1",
                "Pod",
                p.name,
                self.ns,
                {SERVING_LABEL: "false" if draining else "true"},
                {DRAINING_SINCE_ANNOTATION: since},
            )

    # --- the pass ---

    def run(self, mrs: ModelReplicaSet, spec: ModelReplicaSetSpec) -> float | None:
        obs = self.observe(spec)
        fill = self.fill_cache(obs, mrs)
        judged = self.judge(obs)
        self.read_in_flight(obs, judged)
        self.sync_adapters(obs, mrs, judged)
        step = self.decide(obs, judged)
        replan = self.act(obs, step, judged)
        unplaced, placed, own = self.place(obs, step, judged, replan if fill.replicas_may_start else {}, fill)
        self.write(obs, mrs, judged, step, unplaced, [*own, *placed], fill)
        wakes = [w for w in (step.requeue_after, *self.wake) if w is not None]
        return min(wakes) if wakes else None

    def observe(self, spec: ModelReplicaSetSpec) -> Observed:
        """The spec's derived values, the inventory, capacity, and each replica's pods and record."""
        ns, name = self.ns, self.name
        needs = needs_for(ns, name, spec)
        nodes = inventory_from_k8s(self.snap.nodes, self.snap.pods, spec.gpu.resource_name, spec.placement.node_key)
        node_by_name = {n.name: n for n in nodes}
        assessment = assess(spec, eligible_gpu_memory_mib(nodes, needs))
        capacity_error = "; ".join(assessment.errors) if assessment.errors else None
        if capacity_error:
            self.event("Warning", "ModelDoesNotFit", capacity_error)
        desired = desired_replicas(spec, self.status_in.get("desiredReplicas") if spec.autoscaling.enabled else None)
        # Pods fresh from the API (a cache could lag our own writes). On an object's first pass in
        # this process the pod cache is complete for it (it holds every pod made before this process
        # started, and this process has made none for it yet): when it shows none, there is nothing to list.
        listed = (
            self.kube.list("v1", "Pod", ns, f"{MODELREPLICASET_LABEL}={name}")
            if not self.first or self.snap.has_pods(ns, name)
            else []
        )
        by_replica: dict[str, list] = {}
        for pod in listed:
            pv = observe_pod(pod, pinned_node(pod, spec.placement.node_key), spec.gpu.resource_name)
            if pv is not None:
                by_replica.setdefault(pv.replica, []).append(pv)
        records_in = {p["name"]: p for p in self.status_in.get("placements") or [] if p.get("name")}
        views = {
            r: ReplicaView(r, tuple(sorted(by_replica.get(r, []), key=lambda p: p.index)), records_in.get(r))
            for r in sorted(set(by_replica) | set(records_in))
        }
        referenced = {n for v in views.values() for n in (*v.nodes, *(p.node for p in v.pods if p.node))}
        # A node missing from the cache may only be new to it: ask the API before calling it gone.
        gone = frozenset(n for n in referenced - set(node_by_name) if not self.kube.exists("v1", "Node", n))
        unusable = frozenset(
            n for n in referenced if n in node_by_name and ineligibility(node_by_name[n], needs) is not None
        )
        return Observed(
            ns=ns,
            name=name,
            now=self.now,
            spec=spec,
            shash=spec_hash(spec),
            timing=Timing.of(spec),
            needs=needs,
            nodes=nodes,
            node_by_name=node_by_name,
            assessment=assessment,
            capacity_error=capacity_error,
            desired=desired,
            views=views,
            gone=gone,
            unusable=unusable,
        )

    def fill_cache(self, obs: Observed, mrs: ModelReplicaSet) -> CacheFill:
        """The model cache's fill (modelcache.py decides): its Job created once per model revision,
        its end reported; while it runs, new replicas wait and the pass looks again soon."""
        model = cache_model(obs.spec)
        status_in = self.status_in.get("modelCache") or {}
        decided = status_in.get("model") == model and status_in.get("phase") in ("Filled", "Failed")
        job = None
        if model is not None and not decided:
            job = self.kube.get("batch/v1", "Job", cache_job_name(self.name, model), self.ns)
        fill = decide_fill(self.name, obs.spec, status_in, job)
        if fill.create_job:
            rendered = render_cache_job(mrs)
            assert rendered is not None  # decide_fill asks for a Job only where a fill applies
            self.kube.apply(rendered)
        if fill.event is not None:
            self.event(*fill.event)
        if not fill.replicas_may_start:
            self.wake.append(FILL_POLL_SECONDS)
        return fill

    def judge(self, obs: Observed) -> Judged:
        """Judge every replica (pure) and carry out what cannot wait: deletions, Events, failure times."""
        judged = judge_replicas(obs, self.state.failed_at)
        for v, force in judged.deletes:
            self.delete_replica(v, force_nodes=force)
        for rname in judged.forget_failed:
            self.state.failed_at.pop(rname, None)
        self.state.failed_at.update(judged.failed_at)
        for type_, reason, message in judged.events:
            self.event(type_, reason, message, once=False)
        self.wake += judged.wakes
        return judged

    def sync_adapters(self, obs: Observed, mrs: ModelReplicaSet, judged: Judged) -> None:
        """Every ready replica holds spec.adapters (adapters.py); its record says what it holds."""
        desired = {a.name: a.source for a in obs.spec.adapters}
        ready = [
            (r, rec)
            for r, rec in sorted(judged.records.items())
            if rec.get("phase") == READY_PHASE and rec.get("endpoint")
        ]
        if not desired and not any(rec.get("adapters") for _, rec in ready):
            return  # no adapters asked for and none known loaded: no replica is asked anything
        key = self.api_key(mrs)
        results: dict[str, tuple[list[str], str | None]] = {}

        def one(item: tuple[str, dict[str, Any]]) -> None:
            r, rec = item
            results[r] = sync_replica(self.ctl.adapter_client(rec["endpoint"], key), desired)

        self.ctl.fan_out(one, ready)
        for r, (held, error) in sorted(results.items()):
            judged.records[r]["adapters"] = held
            if error:
                self.event(
                    "Warning",
                    "AdapterSyncFailed",
                    f"replica {r} holds {held or 'no adapters'} of spec.adapters: {error}",
                )

    def api_key(self, mrs: ModelReplicaSet) -> str | None:
        """The key the replicas require (the operator's own generated one, or spec.engine.apiKeySecretRef)."""
        ref = mrs.spec.engine.api_key_secret_ref
        name, key = (ref.name, ref.key) if ref is not None else (api_key_secret_name(self.name), API_KEY_KEY)
        secret = self.kube.get("v1", "Secret", name, self.ns) or {}
        value = (secret.get("data") or {}).get(key)
        return base64.b64decode(value).decode() if value else (secret.get("stringData") or {}).get(key)

    def read_in_flight(self, obs: Observed, judged: Judged) -> None:
        """In-flight work of replicas draining, or of candidates when one must go."""
        active = [s for s in judged.states if s.phase in ACTIVE]
        choosing = len(active) > obs.desired.count or any(not s.current for s in active)
        targets = {}
        for s in judged.states:
            lead = obs.views[s.name].leader
            if s.ready and lead and lead.ip and (s.phase == DRAINING or (choosing and s.phase in ACTIVE)):
                targets[s.name] = (lead.ip, obs.spec.engine.port)
        in_flight = self.ctl.in_flight.fetch(targets)
        judged.states = [replace(s, in_flight=in_flight.get(s.name)) for s in judged.states]

    def decide(self, obs: Observed, judged: Judged) -> RolloutStep:
        step = rollout_step(
            judged.states, obs.desired.count, self.now, obs.timing, surge_blocked=self.state.surge_blocked
        )
        if obs.capacity_error:
            # Nothing new starts from a spec whose model cannot fit; drains already under way finish.
            draining_now = {s.name for s in judged.states if s.phase == DRAINING}
            step = RolloutStep(
                delete=[(r, why) for r, why in step.delete if r in draining_now], requeue_after=step.requeue_after
            )
        return step

    def act(self, obs: Observed, step: RolloutStep, judged: Judged) -> dict[str, int]:
        """Undrain, drain, delete and restart as the step says; returns the failed replicas to
        place afresh (their place is gone) with their restart counts."""
        views, records, state_of = obs.views, judged.records, {s.name: s for s in judged.states}
        for rname in step.undrain:
            self.set_draining(views[rname], False)
            records[rname]["phase"] = READY_PHASE
            self.event(
                "Normal", "Undrained", f"replica {rname} serves again: scaled up while it was draining", once=False
            )
        for rname in step.drain:
            s = state_of[rname]
            self.set_draining(views[rname], True)
            records[rname].update(phase=DRAINING, endpoint=None)
            held = (
                "in-flight requests unknown (metrics unreachable)"
                if s.in_flight is None
                else f"{s.in_flight} requests in flight"
            )
            why = "rolling update" if not s.current else f"scale down to {obs.desired.count} ({obs.desired.source})"
            self.event(
                "Normal",
                "Draining",
                (
                    f"draining replica {rname} for {why}: out of every Service now, deleted when idle or after "
                    f"{int(obs.timing.drain_timeout)}s; {held}"
                ),
                once=False,
            )
            self.wake.append(DRAIN_FIRST_POLL_SECONDS)
        for rname, why in step.delete:
            v = views[rname]
            self.delete_replica(v)
            judged.terminating.add(rname)
            if v.pods and rname in records:
                records[rname].update(phase=DRAINING, endpoint=None)  # listed until its pods are gone
            else:
                records.pop(rname, None)
            self.state.failed_at.pop(rname, None)
            self.event("Normal", "ReplicaDeleted", f"deleted replica {rname}: {why}", once=False)
        return self.restart(obs, step, judged)

    def restart(self, obs: Observed, step: RolloutStep, judged: Judged) -> dict[str, int]:
        """Restarts: at the recorded placement while it still stands, else placed afresh."""
        replan: dict[str, int] = {}
        for rname in step.restart:
            v = obs.views[rname]
            if v.pods:
                self.wake.append(1.0)  # its old pods still terminate: the pod names are not free yet
                continue
            rec = judged.records[rname]
            a = assignment_from_status(self.ns, self.name, rec)
            if a is not None and all(n in obs.node_by_name and n not in obs.unusable for n in a.nodes):
                judged.to_create[rname] = a
                judged.records[rname] = {**rec, "phase": PENDING}
                self.event(
                    "Normal",
                    "Restarting",
                    f"restarting replica {rname} on {', '.join(a.nodes)} (restart {rec.get('restarts', 0)})",
                    once=False,
                )
            else:
                replan[rname] = int(rec.get("restarts") or 0)
            self.state.failed_at.pop(rname, None)
        return replan

    def place(
        self, obs: Observed, step: RolloutStep, judged: Judged, replan: dict[str, int], fill: CacheFill
    ) -> tuple[list[Any], list[Assignment], list[Assignment]]:
        """New replicas, and failed ones whose place is gone, through the ledger's planner:
        (unplaced, placed now, placed before). None while the model cache is being filled."""
        records = judged.records
        create = step.create if fill.replicas_may_start else 0
        new_names = new_replica_names(self.name, obs.shash, obs.views.keys(), create) if create > 0 else []
        for rname in new_names:
            judged.current[rname] = True
        unplaced: list[Any] = []
        placed: list[Assignment] = []
        own = [a for rec in records.values() if (a := assignment_from_status(self.ns, self.name, rec)) is not None]
        if new_names or replan:
            requests = requests_for(self.ns, self.name, obs.spec, [*new_names, *replan])
            result = self.ctl.ledger.plan(self.key, self.snap, obs.nodes, requests, own)
            placed = [a for a in result.placed if a.owner == self.owner]
            unplaced = [u for u in result.unplaced if u.owner == self.owner]
            where: dict[str, str] = {}
            for a in placed:
                rname = a.key.split("/", 1)[1]
                records[rname] = placement_status(a, phase=PENDING, restarts=replan.get(rname, 0)).wire()
                judged.to_create[rname] = a
                where[rname] = (
                    f"{rname} on {'+'.join(a.nodes)}"
                    + (f" (block {a.block})" if a.multi_node and a.block else "")
                    + (f" in {a.zone}" if a.zone else "")
                )
            for rname in replan:
                if rname in where:
                    self.event(
                        "Normal", "Restarting", f"restarting replica {rname} elsewhere: {where[rname]}", once=False
                    )
            for u in unplaced:
                # A failed replica that no longer fits anywhere gives its slot back; the count is
                # made up by new replicas as soon as there is room.
                records.pop(u.key.split("/", 1)[1], None)
            self.report_placement(obs, rolling(judged), new_names, where, unplaced)
        self.state.unplaced = bool(unplaced)
        return unplaced, placed, own

    def report_placement(
        self, obs: Observed, rolling: bool, new_names: list[str], where: dict[str, str], unplaced: list[Any]
    ) -> None:
        if rolling and new_names:
            self.state.surge_blocked = bool(unplaced)
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
                (
                    f"creating {len(created)} replica(s) for {obs.desired.count} desired ({obs.desired.source}): "
                    f"{'; '.join(created)}"
                )
                + (f"; {len(unplaced)} cannot be placed" if unplaced else ""),
                once=False,
            )

    def write(
        self,
        obs: Observed,
        mrs: ModelReplicaSet,
        judged: Judged,
        step: RolloutStep,
        unplaced: list[Any],
        placements: list[Assignment],
        fill: CacheFill,
    ) -> None:
        """Pods first, all at once (they are what a scale-up waits for; a gang's members are created
        together); then status, Services and the PDB, side by side.

        Status is not written before the pods: the pods record their own placement (required node
        affinity), so an operator killed between the two rebuilds the records from the pods
        (judging.record_from_pods) and recomputes the same names for replicas it had not created
        yet. An incomplete gang without a record is removed and planned again (judging.py)."""
        records = judged.records
        pods = [
            pod
            for rname, a in sorted(judged.to_create.items())
            for pod in children.missing_pods(mrs, a, obs.views.get(rname))
        ]
        # The key exists from the first pass, not the first pod: the workers of every fleet that
        # names this ModelReplicaSet read it too, and their pods cannot start without it, even
        # while no replica can be placed. Once per object and operator start (state.api_key_secret).
        children.ensure_api_key_secret(self.kube, self.state, mrs)
        self.ctl.fan_out(self.kube.apply, pods)
        self.ctl.ledger.record(
            self.key,
            [a for rec in records.values() if (a := assignment_from_status(self.ns, self.name, rec)) is not None],
        )
        self.state.nodes = frozenset(n for rec in records.values() for n in rec.get("nodes") or [])
        st = status.compose(
            status.Outcome(
                name=self.name,
                generation=self.generation,
                now=self.now,
                spec=obs.spec,
                assessment=obs.assessment,
                capacity_error=obs.capacity_error,
                desired=obs.desired,
                records=records,
                terminating=frozenset(judged.terminating),
                current=judged.current,
                status_in=self.status_in,
                conditions_before=self.written.get("conditions") or [],
                unplaced=unplaced,
                failures=judged.failures,
                waiting="; ".join(w for w in (fill.waiting, step.waiting) if w),
                model_cache=fill.status,
            )
        )
        if pods and not self.state.applied:
            # A new ModelReplicaSet's status, Services and PDB wait for its next pass, which is not
            # urgent: in a storm of new objects every object's pods (what a model load waits for)
            # reach the API server first. The pods carry their placement (required node affinity)
            # and the ledger holds it for the planner meanwhile, as after an operator restart; a
            # Service selects its pods whenever it is created. Only those writes move, by a pass.
            self.wake.append(CHILDREN_AFTER_PODS_SECONDS)
        else:
            multi_node = any(a.multi_node for a in placements)
            pool_problem = children.inference_pool_problem(self.kube, mrs)
            if pool_problem:
                self.event("Warning", "InferencePoolUnavailable", pool_problem)
            writes = [
                functools.partial(status.write, self.status_target(), st),
                *children.writes(
                    self.kube, self.state, self.key, self.now, mrs, multi_node=multi_node, pool=pool_problem is None
                ),
            ]
            self.ctl.fan_out(lambda write: write(), writes)


def rolling(judged: Judged) -> bool:
    """A rolling update is under way: an active replica runs an outdated spec."""
    return any(not s.current for s in judged.states if s.phase in ACTIVE)
