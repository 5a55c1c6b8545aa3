"""kopf handlers of the VectorIndex controller (agentfleet.controllers.vectorindex)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf
from agentfleet_contract.common import GROUP, VERSION

from agentfleet.controllers.settings import CONFIG, kube_client
from agentfleet.controllers.vectorindex import MilvusNotReady, VectorIndexController
from agentfleet.kube import Kube
from agentfleet.reconcile.controller import serve
from agentfleet.render import vectorindex as render

RUNNING = serve(lambda **_: VectorIndexController(Kube(kube_client()), workers=min(4, CONFIG.workers)), "vectorindex")


@kopf.on.event(GROUP, VERSION, "vectorindexes")
async def vectorindex_event(type: str | None, namespace: str, name: str, **_: Any) -> None:
    if type == "DELETED":
        RUNNING.forget((namespace, name))
    else:
        RUNNING.enqueue((namespace, name))


@kopf.on.event("batch", "v1", "jobs", labels={render.VECTORINDEX_LABEL: kopf.PRESENT})
async def ingestion_job_event(namespace: str, labels: Mapping[str, str], **_: Any) -> None:
    RUNNING.enqueue((namespace, labels[render.VECTORINDEX_LABEL]))


def _deletes_collection(spec: Mapping[str, Any], **_: Any) -> bool:
    return spec.get("deletionPolicy") == "Delete"


@kopf.on.delete(GROUP, VERSION, "vectorindexes", when=_deletes_collection, id="drop-collection")
def drop_collection(body: kopf.Body, runtime: Any, **_: Any) -> None:
    """deletionPolicy Delete: the only finalizer the operator adds, bounded by spec.deletionTimeoutSeconds."""
    ctl = RUNNING.controller or VectorIndexController(Kube(kube_client()), workers=1)
    try:
        ctl.drop_collection(dict(body), runtime.total_seconds())
    except MilvusNotReady as e:
        raise kopf.TemporaryError(str(e), delay=e.retry_after) from e
