"""kopf handlers of the AgentFleet controller (agentfleet.controllers.agentfleet): an AgentFleet,
its Deployments and StatefulSets, and what it refers to."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf
from agentfleet_contract.common import GROUP, VERSION

from agentfleet.controllers.agentfleet import AgentFleetController
from agentfleet.controllers.settings import CONFIG, kube_client
from agentfleet.kube import Kube
from agentfleet.reconcile.controller import serve
from agentfleet.render import agentfleet as render

RUNNING = serve(lambda **_: AgentFleetController(Kube(kube_client()), workers=min(4, CONFIG.workers)), "agentfleet")
# A referenced object's status moves in bursts (a ModelReplicaSet's replicas starting): coalesced.
COALESCE_SECONDS = 0.5


@kopf.on.event(GROUP, VERSION, "agentfleets")
async def agentfleet_event(type: str | None, namespace: str, name: str, spec: Any, status: Any, **_: Any) -> None:
    key = (namespace, name)
    if type == "DELETED":
        ctl = RUNNING.controller
        # The fleets that shared its Redis compare again without it.
        gone = ctl.observe_status(key, {}) if ctl is not None else []
        RUNNING.forget(key)
        for other in gone:
            RUNNING.enqueue(other, COALESCE_SECONDS)
    elif RUNNING.controller is not None:
        RUNNING.controller.observe_spec(key, dict(spec or {}))
        # A fleet that recorded its Redis identity wakes the fleets on the same server (sharing.py).
        for other in RUNNING.controller.observe_status(key, dict(status or {})):
            RUNNING.enqueue(other, COALESCE_SECONDS)
        RUNNING.enqueue(key)


def _wake_referring(kind: str, namespace: str, name: str) -> None:
    if RUNNING.controller is not None:
        for key in RUNNING.controller.referring(namespace, kind, name):
            RUNNING.enqueue(key, COALESCE_SECONDS)


@kopf.on.event(GROUP, VERSION, "modelreplicasets")
async def referenced_model_event(namespace: str, name: str, **_: Any) -> None:
    _wake_referring("ModelReplicaSet", namespace, name)


@kopf.on.event(GROUP, VERSION, "vectorindexes")
async def referenced_index_event(namespace: str, name: str, **_: Any) -> None:
    _wake_referring("VectorIndex", namespace, name)


@kopf.on.event("apps", "v1", "deployments", labels={render.FLEET_LABEL: kopf.PRESENT})
async def runtime_deployment_event(namespace: str, labels: Mapping[str, str], **_: Any) -> None:
    RUNNING.enqueue((namespace, labels[render.FLEET_LABEL]), COALESCE_SECONDS)


@kopf.on.event("apps", "v1", "statefulsets", labels={render.FLEET_LABEL: kopf.PRESENT})
async def redis_statefulset_event(namespace: str, labels: Mapping[str, str], **_: Any) -> None:
    RUNNING.enqueue((namespace, labels[render.FLEET_LABEL]), COALESCE_SECONDS)
