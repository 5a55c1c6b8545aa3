"""The operator's access to the API server: one client (Kube) and one write limiter.

Children are written with server-side apply under one field manager, so the operator owns exactly
the fields it sets and nothing a user, the Milvus Operator or an HPA writes.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import DynamicApiError, NotFoundError, ResourceNotFoundError

from agentfleet.rejected import Rejected

FIELD_MANAGER = "agentfleet-operator"
EVENT_SOURCE = "agentfleet-operator"


# The API server's answers that say the object itself is invalid: retrying the same apply cannot
# help, so the reconcile says so on the object (reconcile.shape), not only in the log. A 403 is
# not among them: a namespace being deleted answers 403 to every create, which the controllers
# treat as the end of the object, not as a fault of what they rendered.
REJECTING_STATUSES = (400, 422)


def _api_message(e: DynamicApiError) -> str:
    try:
        return str(json.loads(e.body)["message"])
    except (TypeError, ValueError, KeyError):
        return str(e.reason)


class WriteLimiter:
    """Token bucket over every write this process sends (creates, applies, deletes, events).

    Like client-go's QPS/burst: a burst of reconciles (100 ModelReplicaSets applied at once, a
    scale-up to hundreds of replicas) must not flood the API server. qps <= 0 turns it off.
    """

    def __init__(self, qps: float = 0.0, burst: int = 1) -> None:
        self._lock = threading.Lock()
        self.configure(qps, burst)

    def configure(self, qps: float, burst: int) -> None:
        with self._lock:
            self.qps = float(qps)
            self.burst = max(1, int(burst))
            self._tokens = float(self.burst)
            self._at = time.monotonic()

    def wait_time(self) -> float:
        """Take one token; returns how long the caller must sleep before it may write."""
        with self._lock:
            if self.qps <= 0:
                return 0.0
            now = time.monotonic()
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.qps)
            self._at = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def take(self) -> None:
        delay = self.wait_time()
        if delay > 0:
            time.sleep(delay)


# One bucket per process, shared by every Kube; the manager sets it from --api-qps/--api-burst.
WRITES = WriteLimiter()
# How long a kind the API server did not serve is taken as absent before discovery is asked again.
MISSING_KIND_SECONDS = 60.0


class Kube:
    """The operator's one API client: every controller reads and writes through it.

    Synchronous (reconciles run in worker threads) over the kubernetes DynamicClient, with
    responses read as plain JSON: the client's object wrappers cost more CPU than the rest of a
    reconcile. Children are written with server-side apply under FIELD_MANAGER; status has one
    writer per field manager (agentfleet.reconcile.status). Every write takes a token of WRITES.
    """

    def __init__(self, api_client: k8s.ApiClient | None = None) -> None:
        self.api = api_client or k8s.ApiClient()
        self.dynamic = DynamicClient(self.api)
        self._kinds: dict[tuple[str, str], Any] = {}
        self._kinds_lock = threading.Lock()
        self._missing: dict[tuple[str, str], float] = {}  # kinds not served -> when discovery said so

    def resource(self, api_version: str, kind: str) -> Any:
        """The discovered API resource of a kind (cached: discovery is costly)."""
        key = (api_version, kind)
        res = self._kinds.get(key)
        if res is None:
            res = self.dynamic.resources.get(api_version=api_version, kind=kind)
            with self._kinds_lock:
                self._kinds[key] = res
        return res

    def serves(self, api_version: str, kind: str) -> bool:
        """Whether the API server serves a kind (another project's CRD may not be installed). A miss
        is remembered for MISSING_KIND_SECONDS: each one re-runs discovery of every API group."""
        key = (api_version, kind)
        if key in self._kinds:
            return True
        missed = self._missing.get(key)
        if missed is not None and time.monotonic() - missed < MISSING_KIND_SECONDS:
            return False
        try:
            self.resource(api_version, kind)
        except ResourceNotFoundError:
            self._missing[key] = time.monotonic()
            return False
        self._missing.pop(key, None)
        return True

    @staticmethod
    def _json(resp: Any) -> dict[str, Any]:
        return json.loads(resp.data)

    @staticmethod
    def _done(resp: Any) -> None:
        # An unread response keeps its connection out of the pool: the next request would open a
        # new one, and a TLS handshake per write doubled the CPU of a 100-object apply storm.
        resp.drain_conn()
        resp.release_conn()

    # --- reads ---

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        try:
            return self._json(
                self.dynamic.get(self.resource(api_version, kind), name=name, namespace=namespace, serialize=False)
            )
        except NotFoundError:
            return None

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        resp = self.dynamic.get(
            self.resource(api_version, kind), namespace=namespace, label_selector=label_selector, serialize=False
        )
        return self._json(resp).get("items") or []

    def exists(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        try:
            self._done(
                self.dynamic.get(self.resource(api_version, kind), name=name, namespace=namespace, serialize=False)
            )
            return True
        except NotFoundError:
            return False

    # --- writes ---

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create; raises ConflictError when it exists (for objects made once, such as a generated Secret)."""
        WRITES.take()
        resp = self.dynamic.create(
            self.resource(obj["apiVersion"], obj["kind"]),
            body=obj,
            namespace=obj["metadata"].get("namespace"),
            serialize=False,
        )
        return self._json(resp)

    def apply(self, obj: dict[str, Any], *, force: bool = True) -> dict[str, Any]:
        """Server-side apply; force takes over fields another manager set before us (our own children)."""
        return self._apply(self.resource(obj["apiVersion"], obj["kind"]), obj, FIELD_MANAGER, force)

    def apply_status(self, obj: dict[str, Any], *, manager: str) -> dict[str, Any]:
        """Server-side apply of the status subresource under `manager`.

        Status has several writers (a kind's controller, the autoscaler, an evaluation run). Each
        applies only the fields and condition types it owns under its own manager name: conditions
        are a list-map keyed by type, so the API server merges per type and one writer never drops
        another's.
        """
        return self._apply(self.resource(obj["apiVersion"], obj["kind"]).subresources["status"], obj, manager, True)

    def _apply(self, resource: Any, obj: dict[str, Any], manager: str, force: bool) -> dict[str, Any]:
        meta = obj["metadata"]
        WRITES.take()
        try:
            resp = self.dynamic.server_side_apply(
                resource,
                body=obj,
                name=meta["name"],
                namespace=meta.get("namespace"),
                field_manager=manager,
                force_conflicts=force,
                serialize=False,
            )
        except DynamicApiError as e:
            if e.status in REJECTING_STATUSES:
                raise Rejected(obj["kind"], meta["name"], e.status, _api_message(e)) from e
            raise
        return self._json(resp)

    def merge_patch_status(
        self, api_version: str, kind: str, name: str, namespace: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        """A merge patch of some status fields: the others (other writers' too) stay as they are."""
        WRITES.take()
        resp = self.dynamic.patch(
            self.resource(api_version, kind).subresources["status"],
            body={"status": status},
            name=name,
            namespace=namespace,
            content_type="application/merge-patch+json",
            serialize=False,
        )
        return self._json(resp)

    def merge_patch_metadata(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str,
        labels: dict[str, str | None],
        annotations: dict[str, str | None],
    ) -> None:
        """Set (or, with None, remove) labels and annotations; a no-op when the object is gone."""
        WRITES.take()
        try:
            resp = self.dynamic.patch(
                self.resource(api_version, kind),
                body={"metadata": {"labels": labels, "annotations": annotations}},
                name=name,
                namespace=namespace,
                content_type="application/merge-patch+json",
                field_manager=FIELD_MANAGER,
                serialize=False,
            )
            self._done(resp)
        except NotFoundError:
            pass

    def merge_patch(
        self, api_version: str, kind: str, name: str, namespace: str, body: dict[str, Any], *, limited: bool = True
    ) -> dict[str, Any]:
        """A merge patch of the object; a metadata.resourceVersion in ``body`` makes it conditional
        (ConflictError when the object changed since). ``limited=False`` skips WRITES: a leader's
        Lease renewal must never queue behind an apply storm."""
        if limited:
            WRITES.take()
        resp = self.dynamic.patch(
            self.resource(api_version, kind),
            body=body,
            name=name,
            namespace=namespace,
            content_type="application/merge-patch+json",
            field_manager=FIELD_MANAGER,
            serialize=False,
        )
        return self._json(resp)

    def delete(
        self, api_version: str, kind: str, name: str, namespace: str | None = None, *, force: bool = False
    ) -> bool:
        """Delete with background propagation; False when it was already gone. force: no grace period,
        only for pods whose node is gone (no kubelet will ever confirm their end)."""
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if force:
            body["gracePeriodSeconds"] = 0
        WRITES.take()
        try:
            self._done(
                self.dynamic.delete(
                    self.resource(api_version, kind), name=name, namespace=namespace, body=body, serialize=False
                )
            )
            return True
        except NotFoundError:
            return False

    def event(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """A core/v1 Event on an object (what `kubectl describe` shows); safe from any thread."""
        meta = involved["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": involved["apiVersion"],
                "kind": involved["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "eventTime": now,
            "count": 1,
            "action": reason,
            "reportingComponent": EVENT_SOURCE,
            "reportingInstance": socket.gethostname()[:128],
            "source": {"component": EVENT_SOURCE},
        }
        WRITES.take()
        k8s.CoreV1Api(self.api).create_namespaced_event(meta["namespace"], body)
