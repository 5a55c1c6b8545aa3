"""One reconcile of one AgentFleet, level-based and idempotent, in the framework's four steps
(agentfleet.reconcile.shape), each handing the next a frozen typed record (records.py):

    observe   the object (an invalid spec is refused), what its spec names (ModelReplicaSets,
              VectorIndex, the system prompt's ConfigMap, Secrets, the generated Secrets) and the
              operator's settings: ``Observed``; then, when decide asks, the Redis probe and task
              figures (bounded: a Redis that does not answer cannot hold up a pass)
    decide    pure (deciding.py): references resolved, problems the schema cannot see, the runtime
              rendered (agentfleet.render.agentfleet): a ``Plan``
    act       server-side apply under the operator's field manager: the managed Redis (its
              password Secret created once), the task API's token Secret (created once), the
              runtime's children; then reads back the StatefulSet and Deployments: ``Acted``
    write     status (status.py: only this controller's fields and condition types) and Events

Nothing is deleted: the children carry ownerReferences, so deleting the fleet removes them all
(no finalizer). spec is never written: defaults live in the schema.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import replace
from typing import Any, ClassVar

from agentfleet_contract.agentfleet import AgentFleet
from agentfleet_contract.common import API_VERSION
from agentfleet_contract.conditions import now
from kubernetes.dynamic.exceptions import ConflictError, NotFoundError
from pydantic import ValidationError

from agentfleet.controllers.agentfleet import deciding, status
from agentfleet.controllers.agentfleet.deciding import generated_names, model_names, secret_names
from agentfleet.controllers.agentfleet.probe import probe_redis, probe_within
from agentfleet.controllers.agentfleet.records import (
    KIND,
    OWN_CONDITIONS,
    OWN_FIELDS,
    Acted,
    Generated,
    NeedsProbe,
    Observed,
    Plan,
    Subject,
)
from agentfleet.controllers.agentfleet.services import Events, FleetKube, PassServices, Probe, Services
from agentfleet.controllers.settings import CONFIG
from agentfleet.kube import FIELD_MANAGER
from agentfleet.reconcile.errors import describe_validation_error
from agentfleet.reconcile.shape import Refused, Steps, Wants
from agentfleet.reconcile.status import StatusWriter, own_part

log = logging.getLogger("agentfleet.agentfleet")


class SecretRaced(Exception):  # noqa: N818 - a pass that lost a race, retried with backoff
    """A generated Secret appeared between observe and act with another value than the one this
    pass rendered with: nothing of the runtime is applied, the next pass reads theirs."""


class AgentFleetPass(Steps[Observed, Plan, Acted]):
    """One reconcile of one AgentFleet; status and Events are written once, at the end."""

    services: ClassVar[type] = PassServices

    def __init__(self, kube: FleetKube, events: Events, obj: dict[str, Any], probe: Probe = probe_redis) -> None:
        self.ctl: PassServices = Services(kube, events, probe)
        self.obj = obj
        self.subject = Subject.of(obj)

    # --- helpers the steps share ---

    def get(self, api_version: str, kind: str, name: str) -> dict[str, Any] | None:
        return self.ctl.kube.get(api_version, kind, name, self.subject.namespace)

    def event(self, type_: str, reason: str, message: str) -> None:
        # The same problem on every pass is one Event (and log line), not a flood.
        self.ctl.events.event(self.obj, type_, reason, message)

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
        spec = af.spec
        models = {n: self.get(API_VERSION, "ModelReplicaSet", n) for n in model_names(af)}
        ref = spec.vector_index_ref
        index = self.get(API_VERSION, "VectorIndex", ref.name) if ref is not None else None
        cm_ref = spec.system_prompt.config_map_ref if spec.system_prompt is not None else None
        prompt = self.get("v1", "ConfigMap", cm_ref.name) if cm_ref is not None else None
        found = {n: self.get("v1", "Secret", n) for n in sorted(secret_names(af, models, index))}
        # A generated Secret's value is drawn here, an input like the clock: decide stays pure.
        fresh = {n: secrets.token_urlsafe(32) for n in generated_names(af) if found.get(n) is None}
        return Observed(
            subject=self.subject,
            fleet=af,
            models=models,
            index=index,
            prompt=prompt,
            secrets=found,
            fresh=fresh,
            egress=CONFIG.egress(),
            peers=CONFIG.peers(),
        )

    def observe_more(self, observed: Observed, wants: Wants) -> Observed:
        assert isinstance(wants, NeedsProbe), wants
        s = self.subject
        probed = probe_within(self.ctl.probe, wants.url, wants.password, s.name, s.namespace)
        if not probed.ok and observed.fleet.spec.redis.deploy is None:
            log.info("%s/%s: Redis probe of %s failed: %.300s", s.namespace, s.name, wants.url, probed.error)
        return replace(observed, probed=probed)

    # --- decide ---

    def decide(self, observed: Observed) -> Plan | Wants:
        return deciding.decide(observed)

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
        return Acted(tuple(created), redis_set, worker, api)

    # --- write ---

    def write(self, observed: Observed, plan: Plan, acted: Acted) -> float | None:
        report = status.compose(observed, plan, acted, now())
        for p in report.posts:
            self.event(p.type, p.reason, p.message)
        self.write_status(report.status, report.own)
        return report.again
