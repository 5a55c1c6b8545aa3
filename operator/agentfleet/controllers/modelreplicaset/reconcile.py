"""One reconcile of one ModelReplicaSet, level-based and idempotent, in the framework's four steps
(agentfleet.reconcile.shape), each handing the next a frozen typed record (records.py):

    observe   the object and its spec (an invalid one, or a Secret it may not use, is refused),
              its pods (fresh from the API), the node inventory (cache snapshot), capacity
              (capacity.assess), the model cache's Job: ``Observed``; then, when decide asks, the
              in-flight requests of the replicas it weighs
    decide    pure (deciding.py): the cache fill, each replica judged (judging.py), one rollout step
    act       the judgment's deletions, the fill's Job, adapters (adapters.py), undrain, drain,
              delete, restart (rolling.py), the canary (canarying.py), then place new replicas and
              failed ones whose place is gone (placing.py: placement.plan via the ledger), each
              part changing act's working copy (``Acting``) and handing back its Events: ``Acted``
    write     pods first, then status (status.compose reads an ``Outcome``), Services and the PDB
              (children.py)

Decisions live in agentfleet.replica_rollout, placement, capacity, render and judging (pure,
unit-tested); the steps do the I/O through the Protocols of services.py, on pods through
replica_pods.py.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, ClassVar

from agentfleet_contract.modelreplicaset import ModelReplicaSet, ModelReplicaSetSpec
from pydantic import ValidationError

from agentfleet.autoscale.common import AUTOSCALER_CONDITIONS, SCALING_LIMITED
from agentfleet.capacity import assess
from agentfleet.controllers.modelreplicaset import adapters, canarying, children, placing, rolling, status
from agentfleet.controllers.modelreplicaset.caches import Key, Snapshot
from agentfleet.controllers.modelreplicaset.deciding import Plan, decide
from agentfleet.controllers.modelreplicaset.judging import Judged
from agentfleet.controllers.modelreplicaset.modelcache import FILL_POLL_SECONDS, CacheFill
from agentfleet.controllers.modelreplicaset.overlay import pod_template_refusal
from agentfleet.controllers.modelreplicaset.records import Acted, Acting, NeedsInFlight, Observed, Post
from agentfleet.controllers.modelreplicaset.replica_pods import ReplicaPods
from agentfleet.controllers.modelreplicaset.services import PassServices
from agentfleet.controllers.modelreplicaset.state import ModelReplicaSetState
from agentfleet.placement import (
    MODELREPLICASET_LABEL,
    assignment_from_status,
    eligible_gpu_memory_mib,
    ineligibility,
    inventory_for,
    needs_for,
    pinned_node,
)
from agentfleet.reconcile.errors import describe_validation_error
from agentfleet.reconcile.shape import Refused, Steps, Wants
from agentfleet.render.common import claim_problem, secret_problem
from agentfleet.render.modelreplicaset import cache_job_name, cache_model, render_cache_job, spec_hash
from agentfleet.replica_rollout import (
    ReplicaView,
    Summary,
    Timing,
    compose_conditions,
    desired_replicas,
    observe_pod,
    rfc3339,
)

# A pass that created pods leaves Services and the PDB to a pass this much later.
CHILDREN_AFTER_PODS_SECONDS = 0.5
# A refused Secret is checked again this often (labelling a Secret wakes nothing).
SECRET_RECHECK_SECONDS = 30.0


class ModelReplicaSetPass(Steps[Observed, Plan, Acted]):
    services: ClassVar[type] = PassServices

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
        self.obj = obj
        self.snap = snap
        self.state = state
        self.now = ctl.clock()
        self.pods = ReplicaPods(self.kube, self.ns, self.now)
        self.generation = int(obj["metadata"].get("generation") or 0)
        self.status_in: dict[str, Any] = dict(obj.get("status") or {})
        self.written: dict[str, Any] = dict(self.status_in)
        # Condition types another writer owns: the autoscaler's, except ScalingLimited while
        # autoscaling is off (placement limits are then this controller's to report). Never
        # applied by us, not even as carried-over copies, or the autoscaler could not remove them.
        autoscaling = bool(((obj.get("spec") or {}).get("autoscaling") or {}).get("enabled"))
        self.foreign_conditions = AUTOSCALER_CONDITIONS if autoscaling else AUTOSCALER_CONDITIONS - {SCALING_LIMITED}

    # --- helpers the steps share ---

    def event(self, type_: str, reason: str, message: str, *, once: bool = True) -> None:
        if not self.state.quiet:
            self.ctl.events.event(self.obj, type_, reason, message, once=once)

    def post(self, p: Post) -> None:
        self.event(p.type, p.reason, p.message, once=p.once)

    def post_all(self, posts: Iterable[Post]) -> None:
        for p in posts:
            self.post(p)

    def warn(self, reason: str, message: str) -> None:
        self.event("Warning", reason, message)

    def status_target(self) -> status.StatusTarget:
        return status.StatusTarget(self.kube, self.ns, self.name, self.state, self.written, self.foreign_conditions)

    def write_refusal(self, refused: Refused) -> None:
        """Ready False with the refusal; nothing else is created or changed."""
        conds = compose_conditions(
            self.status_in.get("conditions") or [], Summary(0, 0, 0, 0, 0, invalid=refused.message), self.generation
        )
        status.write(self.status_target(), {**status.base(self.generation, self.name, None), "conditions": conds})

    # --- observe ---

    def parse(self) -> ModelReplicaSet:
        """The spec as the models read it, or a refusal: an invalid spec (only with a CRD older than
        the operator: its schema and CEL rules refuse what these models refuse) or a Secret the
        replicas may not get. Either way nothing is created or changed."""
        try:
            spec = ModelReplicaSetSpec.model_validate(self.obj.get("spec") or {})
            mrs = ModelReplicaSet(metadata=self.obj["metadata"], spec=spec)
        except ValidationError as e:
            raise Refused("InvalidSpec", describe_validation_error(e), "spec") from e
        overlay = pod_template_refusal(mrs)
        if overlay is not None:
            raise Refused(overlay[0], overlay[1], "spec.podTemplate")
        refs = [
            ("spec.model.hfTokenSecretRef", spec.model.hf_token_secret_ref),
            ("spec.engine.apiKeySecretRef", spec.engine.api_key_secret_ref),
        ]
        for where, ref in refs:
            if ref is not None:
                secret = self.kube.get("v1", "Secret", ref.name, self.ns)
                why = secret_problem(secret, where, ref.name, ref.key, self.ns)
                if why is not None:
                    raise Refused(why[0], why[1], where, retry_after=SECRET_RECHECK_SECONDS)
        # The volumes the replicas (and the cache fill Job) mount need the same consent.
        claims = [("spec.engine.modelCache.claimName", spec.engine.model_cache.claim_name, True)]
        if spec.model.name.startswith("pvc://"):
            claims.append(("spec.model.name", spec.model.name[len("pvc://") :].split("/", 1)[0], False))
        for where, claim, writable in claims:
            if claim:
                pvc = self.kube.get("v1", "PersistentVolumeClaim", claim, self.ns)
                why = claim_problem(pvc, where, claim, self.ns, writable=writable)
                if why is not None:
                    raise Refused(why[0], why[1], where, retry_after=SECRET_RECHECK_SECONDS)
        return mrs

    def observe(self) -> Observed:
        """The spec's derived values, the inventory, capacity, each replica's pods and record, the
        model cache's Job."""
        written = self.parse()
        canary = None
        if self.snap.gated or self.status_in.get("canary"):
            # Only a set a gated fleet uses (or used) lists the fleets (canarying.py).
            canary = canarying.read(self.kube, written, self.obj.get("spec") or {}, self.status_in, rfc3339(self.now))
        mrs = canarying.serving_set(canary, written)  # with a held or running canary: the promoted model
        spec, ns, name = mrs.spec, self.ns, self.name
        needs = needs_for(ns, name, spec)
        nodes = inventory_for(needs, self.snap.nodes, self.snap.pods)
        node_by_name = {n.name: n for n in nodes}
        assessment = assess(spec, eligible_gpu_memory_mib(nodes, needs))
        desired = desired_replicas(spec, self.status_in.get("desiredReplicas") if spec.autoscaling.enabled else None)
        views, canary = canarying.split(name, self.replica_views(spec), canary)
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
            generation=self.generation,
            mrs=mrs,
            spec=spec,
            shash=spec_hash(spec),
            timing=Timing.of(spec),
            needs=needs,
            nodes=nodes,
            node_by_name=node_by_name,
            assessment=assessment,
            capacity_error="; ".join(assessment.errors) if assessment.errors else None,
            desired=desired,
            views=views,
            gone=gone,
            unusable=unusable,
            status_in=self.status_in,
            cache_job=self.cache_job(spec),
            failed_at=dict(self.state.failed_at),
            surge_blocked=self.state.surge_blocked,
            canary=canary,
        )

    def replica_views(self, spec: ModelReplicaSetSpec) -> dict[str, ReplicaView]:
        # Pods fresh from the API (a cache could lag our own writes). On an object's first pass in
        # this process the pod cache is complete for it (it holds every pod made before this process
        # started, and this process has made none for it yet): when it shows none, there is nothing to list.
        listed = (
            self.kube.list("v1", "Pod", self.ns, f"{MODELREPLICASET_LABEL}={self.name}")
            if not self.first or self.snap.has_pods(self.ns, self.name)
            else []
        )
        by_replica: dict[str, list] = {}
        for pod in listed:
            pv = observe_pod(pod, pinned_node(pod, spec.placement.node_key), spec.gpu.resource_name)
            if pv is not None:
                by_replica.setdefault(pv.replica, []).append(pv)
        records_in = {p["name"]: p for p in self.status_in.get("placements") or [] if p.get("name")}
        return {
            r: ReplicaView(r, tuple(sorted(by_replica.get(r, []), key=lambda p: p.index)), records_in.get(r))
            for r in sorted(set(by_replica) | set(records_in))
        }

    def cache_job(self, spec: ModelReplicaSetSpec) -> dict[str, Any] | None:
        """The model cache's fill Job, read only while the fill for this revision is undecided."""
        model = cache_model(spec)
        status_in = self.status_in.get("modelCache") or {}
        decided = status_in.get("model") == model and status_in.get("phase") in ("Filled", "Failed")
        if model is None or decided:
            return None
        return self.kube.get("batch/v1", "Job", cache_job_name(self.name, model), self.ns)

    def observe_more(self, observed: Observed, wants: Wants) -> Observed:
        if isinstance(wants, NeedsInFlight):
            in_flight = self.ctl.in_flight.fetch(dict(wants.targets))
            return replace(observed, in_flight_read=True, in_flight=in_flight)
        return super().observe_more(observed, wants)

    # --- decide ---

    def decide(self, observed: Observed) -> Plan | Wants:
        return decide(observed)

    # --- act ---

    def act(self, observed: Observed, plan: Plan) -> Acted:
        """Carry out the judgment and the rollout step, then place: what write creates and reports.
        Each part changes the working copy of the replicas (``Acting``) and hands back its Events."""
        if plan.capacity_warning is not None:
            self.post(plan.capacity_warning)
        work = Acting.of(plan.judged)
        work.wakes += self.start_fill(observed, plan.fill)
        self.carry_out(plan.judged)
        synced, posts = adapters.sync_adapters(self.ctl, observed, work.records)
        work.records.update(synced)
        self.post_all(posts)
        self.post_all(rolling.roll(self.pods, observed, plan, work, self.state.failed_at))
        replan, posts = rolling.restart(observed, plan, work, self.state.failed_at)
        self.post_all(posts)
        own = [a for rec in work.records.values() if (a := assignment_from_status(self.ns, self.name, rec.wire()))]
        canary = canarying.act(self, observed.canary, plan.canary, observed.mrs, observed.views, work.current, own)
        extra = (canary.assignment,) if canary.assignment is not None else ()
        placed = placing.place(
            self.ctl.ledger, self.snap, observed, plan, work, replan if plan.fill.replicas_may_start else {}, extra
        )
        self.post_all(placed.posts)
        if placed.surge_blocked is not None:
            self.state.surge_blocked = placed.surge_blocked
        self.state.unplaced = bool(placed.unplaced)
        return Acted(
            records=work.records,
            to_create=work.to_create,
            current=work.current,
            terminating=frozenset(work.terminating),
            unplaced=placed.unplaced,
            placements=(*placed.own, *placed.placed),
            wakes=tuple(work.wakes),
            canary=canary,
        )

    def start_fill(self, obs: Observed, fill: CacheFill) -> list[float]:
        """The model cache's fill Job, created once per model revision, its end reported; while it
        runs, new replicas wait and the pass looks again soon."""
        if fill.create_job:
            rendered = render_cache_job(obs.mrs)
            assert rendered is not None  # decide_fill asks for a Job only where a fill applies
            self.kube.apply(rendered)
        if fill.event is not None:
            self.event(*fill.event)
        return [] if fill.replicas_may_start else [FILL_POLL_SECONDS]

    def carry_out(self, judged: Judged) -> None:
        """What cannot wait for the rollout step: deletions, failure times, Events."""
        for v, force in judged.deletes:
            self.pods.delete(v, force_nodes=force)
        for rname in judged.forget_failed:
            self.state.failed_at.pop(rname, None)
        self.state.failed_at.update(judged.failed_at)
        self.post_all(judged.events)

    # --- write ---

    def write(self, observed: Observed, plan: Plan, acted: Acted) -> float | None:
        """Pods first, all at once (they are what a scale-up waits for; a gang's members are created
        together); then status, Services and the PDB, side by side.

        Status is not written before the pods: the pods record their own placement (required node
        affinity), so an operator killed between the two rebuilds the records from the pods
        (judging.record_from_pods) and recomputes the same names for replicas it had not created
        yet. An incomplete gang without a record is removed and planned again (judging.py)."""
        obs, mrs, wakes = observed, observed.mrs, list(acted.wakes)
        pods = [
            pod
            for rname, a in sorted(acted.to_create.items())
            for pod in children.missing_pods(mrs, a, obs.views.get(rname))
        ] + list(acted.canary.pods if acted.canary else ())
        # The key exists from the first pass, not the first pod: the workers of every fleet that
        # names this ModelReplicaSet read it too, and their pods cannot start without it, even
        # while no replica can be placed. Once per object and operator start (state.api_key_secret).
        children.ensure_api_key_secret(self.kube, self.state, mrs)
        self.ctl.fan_out(self.kube.apply, pods)
        records = {r: rec.wire() for r, rec in acted.records.items()}
        canary_at = [acted.canary.assignment] if acted.canary and acted.canary.assignment else []
        self.ctl.ledger.record(
            self.key,
            [a for rec in records.values() if (a := assignment_from_status(self.ns, self.name, rec)) is not None]
            + canary_at,
        )
        self.state.nodes = frozenset(n for rec in acted.records.values() for n in rec.nodes or ())
        if pods and not self.state.applied:
            # A new ModelReplicaSet's status, Services and PDB wait for its next pass, which is not
            # urgent: in a storm of new objects every object's pods (what a model load waits for)
            # reach the API server first. The pods carry their placement (required node affinity)
            # and the ledger holds it for the planner meanwhile, as after an operator restart; a
            # Service selects its pods whenever it is created. Only those writes move, by a pass.
            wakes.append(CHILDREN_AFTER_PODS_SECONDS)
        else:
            self.write_status_and_children(obs, plan, acted, records)
        due = [w for w in (plan.step.requeue_after, *wakes) if w is not None]
        return min(due) if due else None

    def write_status_and_children(
        self, obs: Observed, plan: Plan, acted: Acted, records: dict[str, dict[str, Any]]
    ) -> None:
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
                terminating=acted.terminating,
                current=acted.current,
                status_in=self.status_in,
                conditions_before=self.written.get("conditions") or [],
                unplaced=list(acted.unplaced),
                failures=list(plan.judged.failures),
                waiting="; ".join(w for w in (plan.fill.waiting, plan.step.waiting) if w),
                model_cache=plan.fill.status,
            )
        )
        if obs.canary is not None:
            st.update(canarying.status_of(obs.canary, acted.canary or canarying.CanaryActed()))
            st["conditions"] = canarying.with_condition(obs.canary, st["conditions"], self.generation)
        multi_node = any(a.multi_node for a in acted.placements)
        pool_problem = children.inference_pool_problem(self.kube, obs.mrs)
        if pool_problem:
            self.event("Warning", "InferencePoolUnavailable", pool_problem)
        writes = [
            functools.partial(status.write, self.status_target(), st),
            *children.writes(
                self.kube, self.state, self.key, self.now, obs.mrs, multi_node=multi_node, pool=pool_problem is None
            ),
        ]
        self.ctl.fan_out(lambda write: write(), writes)
        canarying.unannotate(self.kube, obs.canary, self.ns, self.name)
