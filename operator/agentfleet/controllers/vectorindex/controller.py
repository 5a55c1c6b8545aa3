"""The VectorIndex controller: the Milvus collection, the managed Milvus, and the ingestion Jobs.

Level-based: each pass recomputes everything from the spec and what exists (the Milvus object,
the collection, the Jobs and their pods), so a pass can be repeated or skipped freely. Passes
come from kopf events on VectorIndexes and their Jobs (agentfleet.handlers.vectorindex), and from
the periodic resync; a failing pass retries with backoff. One pass is a VectorIndexPass
(reconcile.py) in the framework's four steps. No finalizer is added unless spec.deletionPolicy is
Delete, and then deletion waits at most spec.deletionTimeoutSeconds for Milvus before it lets go.
"""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

from agentfleet_contract.common import API_VERSION
from agentfleet_contract.vectorindex import VectorIndex
from agentfleet_milvus import CollectionManager, CollectionSpec, MilvusError

from agentfleet.controllers.settings import CONFIG
from agentfleet.controllers.vectorindex.reconcile import VectorIndexPass, read_credentials
from agentfleet.controllers.vectorindex.records import (
    BACKOFF_MAX,
    BACKOFF_MIN,
    KIND,
    MilvusNotReady,
    SecretRefused,
    VectorIndexState,
)
from agentfleet.kube import Kube
from agentfleet.reconcile.controller import Controller, Key
from agentfleet.reconcile.events import EventRecorder, post_with_kube

log = logging.getLogger("agentfleet.vectorindex")


class VectorIndexController(Controller[VectorIndexState]):
    api_version, kind, name = API_VERSION, KIND, "vectorindex"
    steps: ClassVar[tuple[type, ...]] = (VectorIndexPass,)

    def __init__(self, kube: Kube, events: EventRecorder | None = None, *, workers: int = 4) -> None:
        # MilvusNotReady is an expected wait (Milvus unreachable, still starting): no traceback.
        super().__init__(
            kube,
            events or EventRecorder(post_with_kube(kube)),
            workers=workers,
            resync=CONFIG.resync_seconds,
            backoff=(BACKOFF_MIN, BACKOFF_MAX),
            quiet=(MilvusNotReady,),
        )
        self.clock = time.monotonic

    def new_state(self) -> VectorIndexState:
        return VectorIndexState()

    def reconcile(self, key: Key, _: Any) -> float | None:
        obj = self.fetch(key)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            return None
        return VectorIndexPass(self.kube, self.events, obj, self.state(key), clock=self.clock).run()

    def drop_collection(self, obj: dict[str, Any], elapsed: float) -> None:
        """deletionPolicy Delete: drop the collection. Raises MilvusNotReady while Milvus does not
        answer and spec.deletionTimeoutSeconds has not passed; after that, lets go with a Warning:
        a Milvus that stays unreachable never blocks deletion."""
        vi = VectorIndex.model_validate(obj)
        if vi.spec.milvus.managed is not None:
            return  # the managed Milvus goes with the VectorIndex (ownerReference, deletionPolicy Delete on it)
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        try:
            credentials, problem = read_credentials(self.kube, vi, ns)
            if problem is not None:
                raise SecretRefused(problem)
            target = credentials.target(vi.spec.milvus.uri, vi.spec.milvus.database)
            manager = CollectionManager.connect(target, CollectionSpec.from_vectorindex(vi.spec))
            if manager.drop():
                self.events.event(obj, "Normal", "CollectionDropped", f"dropped collection {vi.spec.collection}")
        except MilvusError as e:
            if elapsed < vi.spec.deletion_timeout_seconds:
                delay = min(30.0, max(2.0, vi.spec.deletion_timeout_seconds / 10))
                raise MilvusNotReady(f"cannot drop {vi.spec.collection} yet: {e}", retry_after=delay) from e
            log.warning("%s/%s: gave up dropping collection %s: %.500s", ns, name, vi.spec.collection, e)
            self.events.event(
                obj,
                "Warning",
                "CollectionNotDropped",
                (
                    f"gave up dropping collection {vi.spec.collection} after {int(elapsed)}s "
                    f"(spec.deletionTimeoutSeconds): {e.public}; drop it by hand"
                ),
            )
