"""The runtime's EndpointSlice discovery (agentfleet_runtime.routing.kube) against the real
kube-apiserver, with the worker's own identity.

The ServiceAccount, Role and RoleBinding are what the operator renders for an AgentFleet's
workers (render_identity: get/list/watch on EndpointSlices, nothing else), and the source
authenticates with that ServiceAccount's token (TokenRequest), never the admin certificate. The
ModelReplicaSet's ``<name>-replicas`` Service and its EndpointSlices are the operator's and
Kubernetes' own (the EndpointSlice controller of kube-controller-manager, pods made Ready by kwok).

Pins: the source's replica set follows the slices through scale-up, scale-down and the drain
before it, within RESYNC_BOUND_S of the slices themselves changing, while its watch is ended by
the server every WATCH_TIMEOUT_S seconds, so the test also crosses re-lists.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from agentfleet_contract.agentfleet import AgentFleet
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from agentfleet.render.agentfleet import render_identity
from agentfleet_runtime.routing.kube import SERVICE_LABEL, EndpointSliceSource, replicas_service
from agentfleet_runtime.routing.sources import endpoints_from_slices
from e2e.harness import operator as fx
from e2e.harness.operator import eventually
from e2e.tests.test_modelreplicaset import SERVING_LABEL, mrs_manifest, replica_pods, settled

crds, operator, gpu_pool = fx.crds, fx.operator, fx.gpu_pool

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

# Watch events reach the source in well under a second; the bound also covers a watch the server
# has just ended (re-list after the source's 0.5 s backoff) on a loaded two-core machine. It is
# well under the watch's own period, so a source that saw changes only when it re-lists (a
# dropped MODIFIED event, a watch the RBAC refuses) misses it.
RESYNC_BOUND_S = 3.0
WATCH_TIMEOUT_S = 10
FLEET = "agents"


def worker_api_client(cluster, ns: str) -> k8s.ApiClient:
    """An API client that is the AgentFleet's worker ServiceAccount, with the operator's RBAC."""
    af = AgentFleet.model_validate(
        {
            "metadata": {"name": FLEET, "namespace": ns, "uid": "none"},
            "spec": {"modelRef": {"name": "chat"}, "redis": {"url": "redis://r:6379/0"}},
        }
    )
    for obj in render_identity(af):
        obj["metadata"].pop("ownerReferences")  # no AgentFleet object here: the GC would take them
        cluster.apply(obj, ns)
    token = cluster.run("-n", ns, "create", "token", FLEET, "--duration=15m").stdout.strip()
    cfg = k8s.Configuration()
    cfg.host = cluster.apiserver_url
    cfg.ssl_ca_cert = cluster.ca_cert
    cfg.api_key = {"authorization": token}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    return k8s.ApiClient(cfg)


class Follow:
    """Polls the source and, through the admin client, the slices themselves; records when each
    first shows the wanted replica names."""

    def __init__(
        self, source: EndpointSliceSource, admin: k8s.DiscoveryV1Api, ns: str, service: str, api: k8s.ApiClient
    ) -> None:
        self.source, self.admin, self.ns, self.service, self.api = source, admin, ns, service, api

    def slices_view(self) -> set[str]:
        items = self.admin.list_namespaced_endpoint_slice(
            self.ns, label_selector=f"{SERVICE_LABEL}={self.service}"
        ).items
        return {e.name for e in endpoints_from_slices(self.api.sanitize_for_serialization(s) for s in items)}

    def until(self, want: set[str], timeout: float = 60) -> float:
        """Seconds from the slices showing `want` to the source showing it (0 if the source saw
        it first, which a poll can observe)."""
        deadline = time.monotonic() + timeout
        t_slices = t_source = None
        while time.monotonic() < deadline and (t_slices is None or t_source is None):
            now = time.monotonic()
            if t_source is None and {e.name for e in self.source.endpoints()} == want:
                t_source = now
            if t_slices is None and self.slices_view() == want:
                t_slices = now
            time.sleep(0.1)
        assert t_slices is not None, f"the EndpointSlices never showed {sorted(want)}: {sorted(self.slices_view())}"
        assert t_source is not None, (
            f"the source never showed {sorted(want)} (it shows {[e.name for e in self.source.endpoints()]})"
        )
        return max(0.0, t_source - t_slices)


def serving(cluster, ns: str, name: str) -> dict[str, str]:
    return {
        p["metadata"]["name"]: p["status"]["podIP"]
        for p in replica_pods(cluster, ns, name)
        if p["metadata"]["labels"].get(SERVING_LABEL) == "true"
    }


def test_endpointslice_source_follows_scale_and_drain_with_the_workers_rbac(
    operator, gpu_pool, namespace, cluster
) -> None:
    ns = namespace
    gpu_pool.add("h100", count=3)
    api = worker_api_client(cluster, ns)
    # The worker's identity reads EndpointSlices and nothing else.
    with pytest.raises(ApiException) as denied:
        k8s.CoreV1Api(api).list_namespaced_pod(ns)
    assert denied.value.status == 403
    k8s.DiscoveryV1Api(api).list_namespaced_endpoint_slice(ns)

    # Drains long enough to see a draining replica still exist after routing has dropped it.
    cluster.apply(mrs_manifest("chat", gpu_pool, tp=4, replicas=1, lifecycle={"drainTimeoutSeconds": 30}), ns)
    eventually(cluster, operator, settled(cluster, ns, "chat", 1), timeout=60, desc="1 replica Ready")

    source = EndpointSliceSource.for_model_replica_set(
        ns, "chat", api_client=api, watch_timeout_seconds=WATCH_TIMEOUT_S
    )
    admin = k8s.DiscoveryV1Api(k8s_config.new_client_from_config(config_file=cluster.kubeconfig))
    follow = Follow(source, admin, ns, replicas_service("chat"), api)
    asyncio.run(source.start())
    lags: dict[str, float] = {}
    try:
        assert source.synced.is_set()
        one = serving(cluster, ns, "chat")
        lags["first list"] = follow.until(set(one))
        (ep,) = source.endpoints()
        assert ep.base_url.startswith(f"http://{one[ep.name]}:") and ep.base_url.endswith("/v1"), ep

        cluster.run("-n", ns, "scale", "mrs/chat", "--replicas=3")
        eventually(cluster, operator, settled(cluster, ns, "chat", 3), timeout=60, desc="scaled up to 3")
        three = serving(cluster, ns, "chat")
        lags["scale up"] = follow.until(set(three))
        assert {e.name: e.base_url.split("//")[1].split(":")[0] for e in source.endpoints()} == three

        time.sleep(WATCH_TIMEOUT_S + 1)  # at least one watch ended by the server and re-listed
        assert {e.name for e in source.endpoints()} == set(three)

        cluster.run("-n", ns, "scale", "mrs/chat", "--replicas=1")

        def draining() -> dict[str, str] | None:
            s = serving(cluster, ns, "chat")
            return s if len(s) == 1 else None

        left = eventually(cluster, operator, draining, timeout=60, desc="two replicas draining")
        lags["drain"] = follow.until(set(left))
        # Routing dropped them at the drain, not at the deletion: the drained pods still exist.
        gone = set(three) - set(left)
        still = {
            p["metadata"]["name"]: p["metadata"]["labels"].get(SERVING_LABEL)
            for p in replica_pods(cluster, ns, "chat", include_deleting=True)
        }
        assert all(still.get(n) == "false" for n in gone), (gone, still)
    finally:
        asyncio.run(source.close())
    print("\nsource lag behind the EndpointSlices (s): " + json.dumps({k: round(v, 2) for k, v in lags.items()}))
    assert all(v <= RESYNC_BOUND_S for v in lags.values()), lags
