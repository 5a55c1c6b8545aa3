"""The operator's writes to the API server.

Children are written with server-side apply under one field manager, so the operator owns exactly
the fields it sets and nothing a user, the Milvus Operator or an HPA writes. kopf itself patches
with merge patches, which is fine for our own status, so this module only handles children.
"""

from __future__ import annotations

import functools
import socket
import threading
import time
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError

FIELD_MANAGER = "agentfleet-operator"
EVENT_SOURCE = "agentfleet-operator"


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


def owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    """A controller reference: deleting the owner cascades, and foreground deletion waits for the child."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


class Kube:
    """Thin, synchronous access to arbitrary kinds; kopf runs sync handlers in its thread pool."""

    def __init__(self, api_client: k8s.ApiClient | None = None) -> None:
        self.api = api_client or k8s.ApiClient()
        self.dynamic = DynamicClient(self.api)

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one Kube per process; discovery is costly
    def _resource(self, api_version: str, kind: str) -> Any:
        return self.dynamic.resources.get(api_version=api_version, kind=kind)

    def apply(self, obj: dict[str, Any], *, force: bool = True) -> dict[str, Any]:
        """Server-side apply; force takes over fields another manager set before us (our own children)."""
        return self._apply(self._resource(obj["apiVersion"], obj["kind"]), obj, FIELD_MANAGER, force)

    def apply_status(self, obj: dict[str, Any], *, manager: str) -> dict[str, Any]:
        """Server-side apply of the status subresource under `manager`.

        Status has several writers (a kind's controller, the autoscaler). Each applies only the
        fields and condition types it owns under its own manager name: conditions are a list-map
        keyed by type, so the API server merges per type and one writer never drops another's.
        """
        return self._apply(self._resource(obj["apiVersion"], obj["kind"]).subresources["status"], obj, manager, True)

    def _apply(self, resource: Any, obj: dict[str, Any], manager: str, force: bool) -> dict[str, Any]:
        meta = obj["metadata"]
        WRITES.take()
        out = self.dynamic.server_side_apply(
            resource, body=obj, name=meta["name"], namespace=meta.get("namespace"), field_manager=manager, force_conflicts=force
        )
        return out.to_dict()

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        try:
            return self._resource(api_version, kind).get(name=name, namespace=namespace).to_dict()
        except NotFoundError:
            return None

    def list(self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None) -> list[dict[str, Any]]:
        got = self._resource(api_version, kind).get(namespace=namespace, label_selector=label_selector)
        return [item.to_dict() for item in got.items]

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        """Delete with background propagation; False when it was already gone."""
        WRITES.take()
        try:
            self._resource(api_version, kind).delete(name=name, namespace=namespace, body={"propagationPolicy": "Background"})
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
