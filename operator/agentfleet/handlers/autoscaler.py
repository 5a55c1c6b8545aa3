"""kopf handlers of the autoscaler (agentfleet.controllers.autoscaler): which objects to evaluate."""

from __future__ import annotations

from typing import Any

import kopf
from agentfleet_contract.common import GROUP, VERSION

from agentfleet.controllers.autoscaler import AF, MRS, AutoscalerController
from agentfleet.controllers.settings import kube_client
from agentfleet.kube import Kube
from agentfleet.reconcile.controller import serve

RUNNING = serve(lambda **_: AutoscalerController(Kube(kube_client())), "autoscaler")


@kopf.on.event(GROUP, VERSION, "modelreplicasets")
async def track_modelreplicaset(type: str | None, spec: Any, namespace: str, name: str, **_: Any) -> None:
    if RUNNING.controller is not None:
        wanted = bool(((spec or {}).get("autoscaling") or {}).get("enabled"))
        RUNNING.controller.track(MRS, namespace, name, wanted=wanted, deleted=type == "DELETED")


@kopf.on.event(GROUP, VERSION, "agentfleets")
async def track_agentfleet(
    type: str | None, spec: Any, meta: Any, status: Any, namespace: str, name: str, **_: Any
) -> None:
    if RUNNING.controller is not None:
        wanted = bool(((spec or {}).get("workers") or {}).get("autoscaling"))
        RUNNING.controller.track(AF, namespace, name, wanted=wanted, deleted=type == "DELETED")
        RUNNING.controller.track_fleet_refs(
            namespace, name, dict(spec or {}), dict(meta or {}), deleted=type == "DELETED", status=dict(status or {})
        )
