"""The reconcile loop shared by the controllers of one kind keyed by (namespace, name).

kopf event handlers only name the object; a WorkQueue runs the reconciles (one at a time per key,
coalesced, retried with backoff, resynced). The object is read fresh at the start of each run, so a
run acts on the latest spec and status, never on the event that asked for it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import kopf
from kubernetes.dynamic.exceptions import NotFoundError

from agentfleet.controllers.settings import CONFIG, kube_client
from agentfleet.controllers.workqueue import WorkQueue
from agentfleet.kube import Kube

Key = tuple[str, str]


class Reconciler:
    """Subclasses name their kind and implement `reconcile_object`; the rest is shared."""

    api_version: str
    kind: str

    def __init__(self, *, backoff: tuple[float, float], quiet: tuple[type[Exception], ...] = ()) -> None:
        self.kube = Kube(kube_client())
        # Events already posted per object, so a condition that persists is reported once.
        self.reported: dict[Key, set[tuple[str, str, str]]] = {}
        self.queue = WorkQueue(self._work, workers=max(1, min(4, CONFIG.workers)), resync=CONFIG.resync_seconds, backoff=backoff, quiet=quiet)

    def enqueue(self, key: Key, delay: float = 0.0) -> None:
        self.queue.add(key, delay)

    def forget(self, key: Key) -> None:
        self.queue.forget(key)
        self.reported.pop(key, None)

    def fetch(self, key: Key) -> dict[str, Any] | None:
        res = self.kube._resource(self.api_version, self.kind)
        try:
            return json.loads(self.kube.dynamic.get(res, name=key[1], namespace=key[0], serialize=False).data)
        except NotFoundError:
            return None

    def reconcile_object(self, key: Key, obj: dict[str, Any]) -> float | None:
        """One pass over a live object; returns seconds until the next pass, or None."""
        raise NotImplementedError

    async def _work(self, key: Key) -> float | None:
        obj = await asyncio.to_thread(self.fetch, key)
        if obj is None:
            self.forget(key)
            return None
        if obj["metadata"].get("deletionTimestamp"):
            return None
        return await asyncio.to_thread(self.reconcile_object, key, obj)

    def start(self) -> None:
        self.queue.start()

    async def stop(self) -> None:
        await self.queue.stop()


R = TypeVar("R", bound=Reconciler)


class Serving(Generic[R]):
    """The running controller of one kind; None outside the operator's lifetime (imports, tests)."""

    controller: R | None = None


def serve(factory: Callable[[], R], name: str) -> Serving[R]:
    """Start a controller with the operator and stop it on the way out (kopf startup/cleanup)."""
    serving: Serving[R] = Serving()

    @kopf.on.startup(id=f"start-{name}-controller")
    async def _start(**_: Any) -> None:
        serving.controller = factory()
        serving.controller.start()

    @kopf.on.cleanup(id=f"stop-{name}-controller")
    async def _stop(**_: Any) -> None:
        if serving.controller is not None:
            await serving.controller.stop()

    return serving
