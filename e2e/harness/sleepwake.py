"""Scale to zero on the real control plane: a GPU node whose kubelet is this harness, so that a
replica turns Ready only once its simulated model has loaded.

kwok marks a pod Ready the moment it is bound: every replica would "load" in no time, and a call
sent to a replica still loading could not happen. For the scale-to-zero test one GPU node is
created without kwok's annotation (``GpuPool.add(kwok=False)``; taking a node from kwok later
raced kwok's own watch of it) and ``LoadingKubelet`` does a kubelet's part for it: it keeps the
node Ready (its Lease and Ready condition), and for the ModelReplicaSet's pods bound there it
reports each Running with an address but not Ready,
starts a simulated vLLM replica for it (agentfleet_sim with ``startup_seconds`` = the load time:
its /health and its completions answer 503 until then, and it counts the calls it refused), and
reports the pod Ready once that replica's /health passes, as the readiness probe the operator
renders would. The EndpointSlices (kube-controller-manager) and so the router follow that
readiness. Each poll does all of its work again where a step failed before (a status report the
API refused, the targets file), so one refused call loses nothing.

``MappedSource`` is the router's replica source in the test: the runtime's own EndpointSlice
source, with each ready pod's address replaced by its simulated replica's URL (kwok pod addresses
lead nowhere).
"""

from __future__ import annotations

import datetime as dt
import time
import urllib.request
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from agentfleet_runtime.routing.settings import Endpoint
from e2e.harness.autoscale import MRS_LABEL, ROLE_LABEL, SERVING_LABEL, PodBackedSim

HOST_IP = "10.0.0.1"  # the node's address (a kwok node's pods and addresses lead nowhere either)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class LoadingKubelet(PodBackedSim):
    """PodBackedSim for one node that the harness runs (see the module docstring)."""

    def __init__(
        self,
        core: Any,
        coordination: Any,
        namespace: str,
        mrs: str,
        node: str,
        engine: dict[str, Any],
        sd_file: Path,
        load_seconds: float,
    ) -> None:
        self.coordination = coordination
        self.node = node
        self.ready: set[str] = set()
        self.reported: dict[str, bool] = {}  # backed pod name -> the readiness its status last said
        self.uids: dict[str, str] = {}  # backed pod name -> its uid
        self.started_at: dict[str, float] = {}  # pod uid -> when its replica began loading (time.time())
        self.ready_at: dict[str, float] = {}  # pod uid -> when it was reported Ready
        self.ips: dict[str, str] = {}
        self.refused_total = 0  # calls refused while loading, summed over replicas that have gone
        self._lease_at = 0.0
        self._ready_since = _now()
        super().__init__(core, namespace, mrs, engine, sd_file, poll_s=0.1, startup_seconds=load_seconds)

    def _heartbeat(self) -> None:
        """The node's Lease and Ready condition, as a kubelet keeps them (every 5 s)."""
        now = dt.datetime.now(dt.UTC)
        if now.timestamp() - self._lease_at < 5:
            return
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        spec = {"holderIdentity": self.node, "leaseDurationSeconds": 40, "renewTime": stamp}
        try:
            self.coordination.patch_namespaced_lease(self.node, "kube-node-lease", {"spec": spec})
        except ApiException as e:
            if e.status != 404:
                raise
            body = {"metadata": {"name": self.node, "namespace": "kube-node-lease"}, "spec": spec}
            self.coordination.create_namespaced_lease("kube-node-lease", body)
        ready = {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "e2e/harness/sleepwake.py runs this node's pods",
            "lastHeartbeatTime": _now(),
            "lastTransitionTime": self._ready_since,
        }
        status = {"conditions": [ready], "addresses": [{"type": "InternalIP", "address": HOST_IP}]}
        self.core.patch_node_status(self.node, {"status": status})
        self._lease_at = now.timestamp()

    def _status(self, name: str, ready: bool) -> None:
        ip = self.ips.setdefault(name, f"10.250.{len(self.ips) // 250}.{len(self.ips) % 250 + 1}")
        t = _now()
        conds = [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": t},
            {"type": "Initialized", "status": "True", "lastTransitionTime": t},
            {"type": "ContainersReady", "status": str(ready), "lastTransitionTime": t},
            {"type": "Ready", "status": str(ready), "lastTransitionTime": t},
        ]
        body = {
            "status": {
                "phase": "Running",
                "podIP": ip,
                "podIPs": [{"ip": ip}],
                "hostIP": HOST_IP,
                "conditions": conds,
            }
        }
        self.core.patch_namespaced_pod_status(name, self.namespace, body)

    def _loaded(self, url: str) -> bool:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                return r.status == 200
        except Exception:  # noqa: BLE001 - 503 while loading, or not listening yet
            return False

    def sync(self) -> None:
        self._heartbeat()
        live: dict[str, bool] = {}
        uids: dict[str, str] = {}
        gone: list[str] = []
        for pod in self._pods():
            labels = pod.metadata.labels or {}
            if labels.get(ROLE_LABEL) == "worker" or pod.spec.node_name != self.node:
                continue
            if pod.metadata.deletion_timestamp is not None:
                gone.append(pod.metadata.name)  # its replica stops below; the kubelet confirms the delete
                continue
            live[pod.metadata.name] = labels.get(SERVING_LABEL) != "false"
            uids[pod.metadata.name] = pod.metadata.uid
        # A replica pod deleted and created again keeps its name: the uid tells them apart.
        for name in sorted(n for n in self.backing if uids.get(n) != self.uids.get(n)):
            index, _ = self.backing.pop(name)
            self.refused_total += int(self.fleet.state(index).get("calls_while_loading", 0))
            self.fleet.remove_replica(index)
            self.ready.discard(name)
            self.reported.pop(name, None)
            self.uids.pop(name, None)
        for name in sorted(set(live) - set(self.backing)):
            handle = self.fleet.add_replica()  # starts loading now
            self.uids[name] = uids[name]
            self.started_at[uids[name]] = time.time()
            self.backing[name] = (handle.index, handle.url)
        self._write_sd()  # only when its targets changed (PodBackedSim)
        for name, (_, url) in self.backing.items():
            loaded = name in self.ready or self._loaded(url)
            if self.reported.get(name) != loaded:
                self._status(name, ready=loaded)  # refused: reported again on the next poll
                self.reported[name] = loaded
            if loaded and name not in self.ready:
                self.ready.add(name)
                self.ready_at[self.uids[name]] = time.time()
        with self._lock:
            self.serving = {n for n, s in live.items() if s and n in self.ready}
        for name in gone:
            self.core.delete_namespaced_pod(name, self.namespace, grace_period_seconds=0)

    def calls_while_loading(self) -> int:
        """Calls any replica refused because its model was still loading (should stay 0)."""
        with self._lock:
            indices = [i for i, _ in self.backing.values()]
        return self.refused_total + sum(int(self.fleet.state(i).get("calls_while_loading", 0)) for i in indices)


class MappedSource:
    """The runtime's EndpointSlice source, each ready pod's address swapped for its replica's URL."""

    def __init__(self, inner: Any, kubelet: LoadingKubelet) -> None:
        self.inner, self.kubelet = inner, kubelet

    def endpoints(self) -> tuple[Endpoint, ...]:
        with self.kubelet._lock:
            urls = {p: u for p, (_, u) in self.kubelet.backing.items()}
        return tuple(Endpoint(e.name, f"{urls[e.name]}/v1") for e in self.inner.endpoints() if e.name in urls)

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()


__all__ = ["MRS_LABEL", "LoadingKubelet", "MappedSource"]
