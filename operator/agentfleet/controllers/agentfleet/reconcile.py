"""One reconcile of one AgentFleet, level-based and idempotent, in the framework's four steps
(agentfleet.reconcile.shape), each handing the next a frozen typed record (records.py):

    observe   the object (an invalid spec is refused), what its spec names (ModelReplicaSets,
              VectorIndex, the system prompt's ConfigMap, Secrets, the generated Secrets) and the
              operator's settings: ``Observed``; then, when decide asks, the Redis probe and task
              figures (bounded: a Redis that does not answer cannot hold up a pass), the server's
              identity, and the identities the other fleets recorded (sharing.py)
    decide    pure (gating.py, deciding.py): references resolved, problems the schema cannot see,
              the runtime rendered (agentfleet.render.agentfleet): a ``Plan``; with
              spec.rollout.evaluation the serving version's, and the evaluation gate's part
    act       server-side apply under the operator's field manager: the managed Redis (its
              password Secret created once), the task API's token Secret (created once), the
              runtime's children; then reads back the StatefulSet and Deployments: ``Acted``
    write     status (status.py: only this controller's fields and condition types) and Events

Deleted are only what a finished or superseded gate leaves (its candidate's workers, config and
policy, its Job): the children carry ownerReferences, so deleting the fleet removes them all
(no finalizer). spec is never written: defaults live in the schema.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, ClassVar

from agentfleet_contract.agentfleet import AgentFleet
from agentfleet_contract.common import API_VERSION
from agentfleet_contract.conditions import now
from kubernetes.dynamic.exceptions import ConflictError, NotFoundError
from pydantic import ValidationError

from agentfleet.controllers.agentfleet import gating, status
from agentfleet.controllers.agentfleet.deciding import generated_names, model_names, secret_names
from agentfleet.controllers.agentfleet.probe import probe_fleet_redis, probe_within
from agentfleet.controllers.agentfleet.records import (
    KIND,
    OWN_CONDITIONS,
    OWN_FIELDS,
    Acted,
    GatePlan,
    Generated,
    NeedsProbe,
    Observed,
    Plan,
    Subject,
)
from agentfleet.controllers.agentfleet.services import (
    Events,
    FleetKube,
    Neighbours,
    PassServices,
    Probe,
    Services,
    no_neighbours,
)
from agentfleet.controllers.settings import CONFIG
from agentfleet.gate import OVERRIDE_ANNOTATION
from agentfleet.kube import FIELD_MANAGER
from agentfleet.reconcile.errors import describe_validation_error
from agentfleet.reconcile.shape import Refused, Steps, Wants
from agentfleet.reconcile.status import StatusWriter, own_part
from agentfleet.render import gate as rg

log = logging.getLogger("agentfleet.agentfleet")


class SecretRaced(Exception):  # noqa: N818 - a pass that lost a race, retried with backoff
    """A generated Secret appeared between observe and act with another value than the one this
    pass rendered with: nothing of the runtime is applied, the next pass reads theirs."""


class AgentFleetPass(Steps[Observed, Plan, Acted]):
    """One reconcile of one AgentFleet; status and Events are written once, at the end."""

    services: ClassVar[type] = PassServices

    def __init__(
        self,
        kube: FleetKube,
        events: Events,
        obj: dict[str, Any],
        probe: Probe = probe_fleet_redis,
        neighbours: Neighbours = no_neighbours,
    ) -> None:
        self.ctl: PassServices = Services(kube, events, probe, neighbours)
        self.obj = obj
        self.subject = Subject.of(obj)

    # --- helpers the steps share ---

    def get(self, api_version: str, kind: str, name: str) -> dict[str, Any] | None:
        return self.ctl.kube.get(api_version, kind, name, self.subject.namespace)

    def event(self, type_: str, reason: str, message: str, *, once: bool = True) -> None:
        # The same problem on every pass is one Event (and log line), not a flood.
        self.ctl.events.event(self.obj, type_, reason, message, once=once)

    def warn(self, reason: str, message: str) -> None:
        self.event("Warning", reason, message)

    def write_status(self, body: dict[str, Any], own: tuple[str, ...]) -> None:
        s = self.subject
        try:
            # Unchanged: no write, so no event that would bring this pass back.
            StatusWriter(self.ctl.kube, API_VERSION, KIND, FIELD_MANAGER).apply(  # type: ignore[arg-type]
                s.namespace, s.name, body, before=own_part(s.status, own, OWN_CONDITIONS)
            )
        except NotFoundError:
            pass  # deleted during the pass

    def write_refusal(self, refused: Refused) -> None:
        """Ready False with the refusal; nothing else is created or changed."""
        self.write_status(status.refusal(self.subject, refused.reason, refused.message, now()), OWN_FIELDS)

    # --- observe ---

    def observe(self) -> Observed:
        try:
            af = AgentFleet.model_validate(self.obj)
        except ValidationError as e:
            raise Refused("InvalidSpec", describe_validation_error(e, prefix="spec.", skip=1), "spec") from e
        observed = self.read(af)
        # A generated Secret's value is drawn here, an input like the clock: decide stays pure.
        fresh = {n: secrets.token_urlsafe(32) for n in generated_names(af) if observed.secrets.get(n) is None}
        observed = replace(observed, fresh=fresh)
        if af.spec.evaluation is None and not self.subject.status.get("gate"):
            return observed
        return self.observe_gate(observed)

    def read(self, af: AgentFleet) -> Observed:
        """What ``af`` names: the written spec's, or the serving version's (the gate)."""
        spec = af.spec
        models = {n: self.get(API_VERSION, "ModelReplicaSet", n) for n in model_names(af)}
        ref = spec.vector_index_ref
        index = self.get(API_VERSION, "VectorIndex", ref.name) if ref is not None else None
        cm_ref = spec.system_prompt.config_map_ref if spec.system_prompt is not None else None
        prompt = self.get("v1", "ConfigMap", cm_ref.name) if cm_ref is not None else None
        found = {n: self.get("v1", "Secret", n) for n in sorted(secret_names(af, models, index))}
        return Observed(
            subject=self.subject,
            fleet=af,
            models=models,
            index=index,
            prompt=prompt,
            secrets=found,
            fresh={},
            egress=CONFIG.egress(),
            peers=CONFIG.peers(),
            legacy_claims=frozenset(CONFIG.legacy_key_claims),
        )

    def observe_gate(self, observed: Observed) -> Observed:
        """The gate's inputs: the clock, the promoted answer fields, the running gate's results,
        and what the serving version names when it is not the written spec."""
        name = self.subject.name
        promoted = gating.read_promoted(self.get("v1", "ConfigMap", rg.promoted_name(name)))
        gate = gating.gate_status(observed)
        results = key = foreign = None
        job = True
        if gate is not None and gate.phase == "Running" and gate.candidate:
            # Only the objects this fleet made are the gate's: a ConfigMap or Secret of the same
            # (computable) name that someone else created first is neither read nor written.
            cm = self.get("v1", "ConfigMap", rg.results_name(name, gate.candidate))
            secret = self.get("v1", "Secret", rg.key_name(name, gate.candidate))
            for kind, obj in (("ConfigMap", cm), ("Secret", secret)):
                if obj is not None and not gating.owned(obj, self.subject):
                    foreign = foreign or f"{kind} {obj['metadata']['name']}"
            if foreign is None:
                results = dict((cm or {}).get("data") or {}) if cm is not None else None
                key = gating.key_of(secret)
            job = self.get("batch/v1", "Job", rg.results_name(name, gate.candidate)) is not None
        serving_af = gating.serving_fleet(observed.fleet, promoted)
        return replace(
            observed,
            clock=datetime.now(UTC),
            runtime_image=CONFIG.runtime_image,
            promoted=promoted,
            results=results,
            gate_key=key,
            gate_foreign=foreign,
            fresh_gate_key=secrets.token_urlsafe(32),
            gate_job=job,
            serving=self.read(serving_af) if serving_af is not None else None,
        )

    def observe_more(self, observed: Observed, wants: Wants) -> Observed:
        assert isinstance(wants, NeedsProbe), wants
        s = self.subject
        probed = probe_within(self.ctl.probe, wants.url, wants.password, s.name, s.namespace)
        if not probed.ok and observed.fleet.spec.redis.deploy is None:
            log.info("%s/%s: Redis probe of %s failed: %.300s", s.namespace, s.name, wants.url, probed.error)
        # The other fleets' identities as they recorded them: their Redis is never asked from here.
        # The serving version's observation (the gate's) gets them too: its plan may be the one written.
        neighbours = dict(self.ctl.neighbours())
        serving = replace(observed.serving, neighbours=neighbours) if observed.serving is not None else None
        return replace(observed, probed=probed, neighbours=neighbours, serving=serving)

    # --- decide ---

    def decide(self, observed: Observed) -> Plan | Wants:
        return gating.decide(observed)

    # --- act ---

    def create_once(self, g: Generated) -> bool:
        """Creates a generated Secret the plan found missing (True); False when it found it."""
        if g.body is None:
            return False
        try:
            self.ctl.kube.create(dict(g.body))
            return True
        except ConflictError as e:
            # Another writer made it between observe and act: the plan rendered with our value.
            raise SecretRaced(f"Secret {g.name} was created by another writer during the pass") from e

    def act(self, observed: Observed, plan: Plan) -> Acted:
        created: list[str] = []
        redis_set = worker = api = None
        if plan.redis is not None:
            if self.create_once(plan.redis.password):
                created.append(plan.redis.password.name)
            for o in plan.redis.children:
                self.ctl.kube.apply(dict(o))
            redis_set = self.get("apps/v1", "StatefulSet", plan.redis.statefulset)
        if plan.token is not None and self.create_once(plan.token):
            created.append(plan.token.name)
        if plan.runtime is not None:
            for o in plan.runtime.children:
                self.ctl.kube.apply(dict(o))
            worker = self.get("apps/v1", "Deployment", plan.runtime.worker)
            api = self.get("apps/v1", "Deployment", plan.runtime.api)
        if plan.gate is not None:
            self.act_gate(plan.gate)
        return Acted(tuple(created), redis_set, worker, api)

    def act_gate(self, gate: GatePlan) -> None:
        """The gate's part: the promoted answer fields, a starting gate's results ConfigMap (created
        once: the Job's keys are not the operator's to apply), the candidate and the Job, what a
        finished or superseded gate leaves. The override annotation goes in write, after the status
        that records what it did."""
        kube, s = self.ctl.kube, self.subject
        if gate.promoted is not None:
            kube.apply(dict(gate.promoted))
        ours = True
        for made in (gate.create, gate.key):
            if made is None:
                continue
            try:
                kube.create(dict(made))
            except ConflictError:
                # Made by an earlier pass of this gate (the Job's results stay), or by someone else
                # under the computable name: then the Job is not started to write there, and the
                # next pass reports it (observe_gate reads it as foreign).
                found = self.get(made["apiVersion"], made["kind"], made["metadata"]["name"])
                ours = ours and (found is None or gating.owned(found, s))
        for o in gate.apply:
            if o["kind"] == "Job" and not ours:
                continue
            kube.apply(dict(o))
        for api_version, kind, name in gate.delete:
            kube.delete(api_version, kind, name, s.namespace)

    # --- write ---

    def write(self, observed: Observed, plan: Plan, acted: Acted) -> float | None:
        report = status.compose(observed, plan, acted, now())
        for p in report.posts:
            self.event(p.type, p.reason, p.message, once=p.once)
        self.write_status(report.status, report.own)
        gate = plan.gate
        if gate is not None and gate.unannotate:
            # Only once status says what the annotation did: removed before a status write that
            # failed, an abort would be lost and the next pass would run the gate on.
            s = self.subject
            self.ctl.kube.merge_patch_metadata(API_VERSION, KIND, s.name, s.namespace, {}, {OVERRIDE_ANNOTATION: None})
        return report.again
