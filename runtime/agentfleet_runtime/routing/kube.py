"""Live replica set of a ModelReplicaSet from the EndpointSlices of its ``<mrs>-replicas`` headless
Service (the only module of the routing package that talks to Kubernetes).

Why EndpointSlices and not the ModelReplicaSet's status: the Service's slices are maintained by
Kubernetes' own controller from pod readiness, so a replica that dies or is marked draining
(label ``agentfleet.io/serving=false``) leaves them within seconds even when the operator is down.

The kubernetes client's watch is blocking, so it runs in one daemon thread per source; the thread
only swaps an immutable tuple, which the event loop reads without locks. A watch that ends (server
timeout, 410 Gone, connection loss) is re-listed and resumed with backoff; until the first list
succeeds ``endpoints()`` is empty and the client reports no replicas, it never invents any.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from agentfleet_runtime.routing.settings import Endpoint
from agentfleet_runtime.routing.sources import endpoints_from_slices

log = logging.getLogger(__name__)
SERVICE_LABEL = "kubernetes.io/service-name"


def replicas_service(mrs: str) -> str:
    return f"{mrs}-replicas"


class EndpointSliceSource:
    def __init__(
        self,
        namespace: str,
        service: str,
        *,
        api_client: Any = None,
        port_name: str = "http",
        path: str = "/v1",
        watch_timeout_seconds: int = 300,
    ) -> None:
        self.namespace = namespace
        self.service = service
        self.port_name = port_name
        self.path = path
        self.watch_timeout_seconds = watch_timeout_seconds
        self._api_client = api_client
        self._slices: dict[str, dict[str, Any]] = {}
        self._endpoints: tuple[Endpoint, ...] = ()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watch: Any = None
        self.synced = threading.Event()  # set after the first successful list

    @classmethod
    def for_model_replica_set(cls, namespace: str, mrs: str, **kw: Any) -> EndpointSliceSource:
        return cls(namespace, replicas_service(mrs), **kw)

    def endpoints(self) -> tuple[Endpoint, ...]:
        return self._endpoints

    async def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name=f"endpointslices-{self.service}", daemon=True)
        self._thread.start()
        # Wait briefly for the first list so the first calls have replicas; go on without it
        # (calls then fail over their retries) rather than block a worker's start on the API.
        await asyncio.to_thread(self.synced.wait, 10.0)

    async def close(self) -> None:
        self._stop.set()
        watch = self._watch
        if watch is not None:
            watch.stop()
            # The thread may sit in a blocking read of a quiet watch; closing the response wakes
            # it now instead of at the watch's timeout (best effort: a private attribute).
            resp = getattr(watch, "_resp", None)
            if resp is not None:
                try:
                    resp.close()
                except Exception:  # noqa: BLE001 - the thread is a daemon either way
                    pass
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5.0)
            self._thread = None

    # -- the watch thread ----------------------------------------------------------------
    def _api(self) -> Any:
        from kubernetes import client, config

        if self._api_client is None:
            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            self._api_client = client.ApiClient()
        return client.DiscoveryV1Api(self._api_client)

    def _publish(self) -> None:
        self._endpoints = endpoints_from_slices(self._slices.values(), self.port_name, self.path)

    def _run(self) -> None:
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        delay = 0.5
        selector = f"{SERVICE_LABEL}={self.service}"
        while not self._stop.is_set():
            try:
                api = self._api()
                listed = api.list_namespaced_endpoint_slice(self.namespace, label_selector=selector)
                self._slices = {s.metadata.name: self._to_dict(s) for s in listed.items}
                self._publish()
                self.synced.set()
                delay = 0.5
                self._watch = watch.Watch()
                stream = self._watch.stream(
                    api.list_namespaced_endpoint_slice,
                    self.namespace,
                    label_selector=selector,
                    resource_version=listed.metadata.resource_version,
                    timeout_seconds=self.watch_timeout_seconds,
                )
                for event in stream:
                    if self._stop.is_set():
                        break
                    obj = event["object"]
                    name = obj.metadata.name
                    if event["type"] == "DELETED":
                        self._slices.pop(name, None)
                    elif event["type"] in ("ADDED", "MODIFIED"):
                        self._slices[name] = self._to_dict(obj)
                    else:  # ERROR (e.g. 410 Gone): re-list
                        break
                    self._publish()
            except ApiException as e:
                log.warning("endpointslice watch of %s/%s failed: %s", self.namespace, self.service, e.reason)
            except Exception:  # noqa: BLE001 - a watch thread must survive anything and retry
                log.exception("endpointslice watch of %s/%s failed", self.namespace, self.service)
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, 30.0)

    def _to_dict(self, obj: Any) -> dict[str, Any]:
        return self._api_client.sanitize_for_serialization(obj)
