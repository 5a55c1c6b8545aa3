"""The ModelReplicaSet controller: vLLM replicas placed by the topology-aware planner.

Its kopf handlers (agentfleet.handlers.modelreplicaset) keep the caches (kopf indices of nodes,
GPU pods and every ModelReplicaSet's placements) and name the object to reconcile; the work
queue runs the reconciles; one reconcile is a ModelReplicaSetPass (reconcile.py) in the
framework's four steps. Besides the framework's per-object state, the controller holds what its
passes share: the placement ledger and the in-flight reader.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any, ClassVar, TypeVar

from agentfleet_contract.common import API_VERSION
from kubernetes.dynamic.exceptions import ForbiddenError, NotFoundError

from agentfleet.controllers.modelreplicaset.adapters import AdapterClient
from agentfleet.controllers.modelreplicaset.caches import Caches, Key, Snapshot
from agentfleet.controllers.modelreplicaset.inflight import InFlightReader, read_in_flight
from agentfleet.controllers.modelreplicaset.ledger import PlacementLedger
from agentfleet.controllers.modelreplicaset.reconcile import ModelReplicaSetPass
from agentfleet.controllers.modelreplicaset.services import AdapterApi
from agentfleet.controllers.modelreplicaset.state import ModelReplicaSetState
from agentfleet.controllers.settings import CONFIG
from agentfleet.kube import Kube
from agentfleet.reconcile.controller import Controller
from agentfleet.reconcile.events import EventRecorder, post_with_kopf

log = logging.getLogger("agentfleet.modelreplicaset")

KIND = "ModelReplicaSet"
T = TypeVar("T")
# Failed reconciles are retried from half a second up to a minute (workqueue's defaults).
BACKOFF = (0.5, 60.0)


class ModelReplicaSetController(Controller[ModelReplicaSetState]):
    api_version, kind, name = API_VERSION, KIND, "modelreplicaset"
    steps: ClassVar[tuple[type, ...]] = (ModelReplicaSetPass,)

    def __init__(
        self,
        kube: Kube,
        events: EventRecorder | None = None,
        *,
        caches: Caches | None = None,
        clock: Callable[[], float] = time.time,
        metrics: Callable[[str, int], int | None] = read_in_flight,
        adapter_client: Callable[[str, str | None], AdapterApi] = AdapterClient,
        workers: int = CONFIG.workers,
    ) -> None:
        super().__init__(
            kube,
            events or EventRecorder(post_with_kopf, clock=clock),
            workers=workers,
            resync=CONFIG.resync_seconds,
            backoff=BACKOFF,
        )
        self.clock = clock
        self.caches = caches or Caches()
        self.ledger = PlacementLedger()
        self.in_flight = InFlightReader(metrics, clock=clock)
        self.adapter_client = adapter_client  # (endpoint, API key) -> the replica's adapter API
        self._io_pool = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="af-io")

    def new_state(self) -> ModelReplicaSetState:
        return ModelReplicaSetState()

    def forget(self, key: Hashable) -> None:
        super().forget(key)
        self.caches.bodies.pop(key, None)  # type: ignore[arg-type]
        self.ledger.forget(key)  # type: ignore[arg-type]

    def own_write(self, key: Key, resource_version: str | None) -> bool:
        st = self.known_state(key)
        return bool(st and resource_version and resource_version in st.own_resource_versions)

    def watches_node(self, node: str) -> list[Key]:
        """ModelReplicaSets to reconcile when a node changes: those placed on it or waiting for room."""
        return [k for k, st in self.states() if st.unplaced or node in st.nodes]  # type: ignore[misc]

    def fan_out(self, fn: Callable[[T], object], items: Sequence[T]) -> None:
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

    # --- the reconcile ---

    def prepare(self, key: Hashable) -> Snapshot:
        return self.caches.snapshot(key)  # type: ignore[arg-type]

    def reconcile(self, key: Key, snap: Snapshot) -> float | None:
        first = self.known_state(key) is None
        # The first pass of an object in this process reads it from the watch event that brought
        # it: nothing this process wrote can be missing from it yet. Later passes read it fresh,
        # as the cache may lag our own status writes.
        obj = snap.body if first and snap.body is not None else self.fetch(key)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            # Children go with their owner (ownerReferences); nothing to drain or clean up here.
            return None
        state = self.state(key)
        try:
            return self.run(key, obj, snap, state, first=first)
        except NotFoundError:
            if self.fetch(key) is None:  # deleted while we worked on it
                return None
            raise
        except ForbiddenError as e:
            if "NamespaceTerminating" not in str(getattr(e, "body", "")) and "being terminated" not in str(e):
                raise
            # Its namespace is being deleted, it goes next: nothing to create, nothing to report.
            state.quiet = True
            return None

    def run(
        self, key: Key, obj: dict[str, Any], snap: Snapshot, state: ModelReplicaSetState, *, first: bool
    ) -> float | None:
        return ModelReplicaSetPass(self, key, obj, snap, state, first=first).run()

    async def stop(self) -> None:
        await super().stop()
        self._io_pool.shutdown(wait=False, cancel_futures=True)
