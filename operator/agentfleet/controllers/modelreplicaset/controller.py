"""The ModelReplicaSet controller: vLLM replicas placed by the topology-aware planner.

Its kopf handlers (agentfleet.handlers.modelreplicaset) keep the caches (kopf indices of nodes,
GPU pods and every ModelReplicaSet's placements) and name the object to reconcile; the work
queue runs the reconciles; one reconcile is a ModelReplicaSetPass (reconcile.py). Besides the
framework's per-object state, the controller holds what its passes share: the placement ledger
and the in-flight reader.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Callable, Hashable
from typing import Any

from agentfleet_contract.common import API_VERSION
from agentfleet_contract.modelreplicaset import ModelReplicaSet, ModelReplicaSetSpec
from kubernetes.dynamic.exceptions import ForbiddenError, NotFoundError
from pydantic import ValidationError

from agentfleet.controllers.modelreplicaset import status
from agentfleet.controllers.modelreplicaset.adapters import AdapterClient
from agentfleet.controllers.modelreplicaset.caches import Caches, Key, Snapshot
from agentfleet.controllers.modelreplicaset.inflight import InFlightReader, read_in_flight
from agentfleet.controllers.modelreplicaset.ledger import PlacementLedger
from agentfleet.controllers.modelreplicaset.reconcile import ModelReplicaSetPass
from agentfleet.controllers.modelreplicaset.state import ModelReplicaSetState
from agentfleet.controllers.settings import CONFIG
from agentfleet.kube import Kube
from agentfleet.reconcile.controller import Controller
from agentfleet.reconcile.errors import describe_validation_error
from agentfleet.reconcile.events import EventRecorder, post_with_kopf
from agentfleet.render.common import claim_problem, secret_problem
from agentfleet.rollout import Summary, compose_conditions

log = logging.getLogger("agentfleet.modelreplicaset")

KIND = "ModelReplicaSet"
# Failed reconciles are retried from half a second up to a minute (workqueue's defaults).
BACKOFF = (0.5, 60.0)


# A refused Secret is checked again this often (labelling a Secret wakes nothing).
SECRET_RECHECK_SECONDS = 30.0


class ModelReplicaSetController(Controller[ModelReplicaSetState]):
    api_version, kind, name = API_VERSION, KIND, "modelreplicaset"

    def __init__(
        self,
        kube: Kube,
        events: EventRecorder | None = None,
        *,
        caches: Caches | None = None,
        clock: Callable[[], float] = time.time,
        metrics: Callable[[str, int], int | None] = read_in_flight,
        adapter_client: Callable[[str, str | None], Any] = AdapterClient,
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

    def fan_out(self, fn: Any, items: list[Any]) -> None:
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
        p = ModelReplicaSetPass(self, key, obj, snap, state, first=first)
        try:
            spec = ModelReplicaSetSpec.model_validate(obj.get("spec") or {})
            mrs = ModelReplicaSet(metadata=obj["metadata"], spec=spec)
        except ValidationError as e:
            # The CRD's schema and CEL rules refuse what these models refuse; this only happens
            # with a CRD older than the operator. Report it, change nothing.
            msg = describe_validation_error(e)
            p.event("Warning", "InvalidSpec", msg)
            conds = compose_conditions(
                p.status_in.get("conditions") or [], Summary(0, 0, 0, 0, 0, invalid=msg), p.generation
            )
            status.write(p.status_target(), {**status.base(p.generation, p.name, None), "conditions": conds})
            return None
        refused = self.unusable_secret(key[0], spec)
        if refused is not None:
            # Like an invalid spec: nothing created or changed until the Secret may be used.
            reason, msg = refused
            p.event("Warning", reason, msg)
            conds = compose_conditions(
                p.status_in.get("conditions") or [], Summary(0, 0, 0, 0, 0, invalid=msg), p.generation
            )
            status.write(p.status_target(), {**status.base(p.generation, p.name, None), "conditions": conds})
            return SECRET_RECHECK_SECONDS
        return p.run(mrs, spec)

    def unusable_secret(self, namespace: str, spec: ModelReplicaSetSpec) -> tuple[str, str] | None:
        """The first Secret or volume the spec names that the replicas may not get
        (render.common.secret_problem, claim_problem)."""
        refs = [
            ("spec.model.hfTokenSecretRef", spec.model.hf_token_secret_ref),
            ("spec.engine.apiKeySecretRef", spec.engine.api_key_secret_ref),
        ]
        for field, ref in refs:
            if ref is not None:
                why = secret_problem(
                    self.kube.get("v1", "Secret", ref.name, namespace), field, ref.name, ref.key, namespace
                )
                if why is not None:
                    return why
        # The volumes the replicas (and the cache fill Job) mount need the same consent.
        claims = [("spec.engine.modelCache.claimName", spec.engine.model_cache.claim_name, True)]
        if spec.model.name.startswith("pvc://"):
            claims.append(("spec.model.name", spec.model.name[len("pvc://") :].split("/", 1)[0], False))
        for field, claim, writable in claims:
            if claim:
                pvc = self.kube.get("v1", "PersistentVolumeClaim", claim, namespace)
                why = claim_problem(pvc, field, claim, namespace, writable=writable)
                if why is not None:
                    return why
        return None

    async def stop(self) -> None:
        await super().stop()
        self._io_pool.shutdown(wait=False, cancel_futures=True)
