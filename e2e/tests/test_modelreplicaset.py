"""The ModelReplicaSet controller on the real control plane, with kwok GPU nodes.

The operator runs as a real subprocess (python -m agentfleet.manager) with the cluster's
kubeconfig. Every test brings its own node pool (e2e/harness/operator.py), so placements are
exact and a node may be deleted. kwok makes bound pods Running and Ready; no vLLM runs, so /metrics is
unreachable and drains end at spec.lifecycle.drainTimeoutSeconds - except in the drain test that
serves vLLM replica simulators on the pods' own IPs (PodIPSims).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from agentfleet_contract.modelreplicaset import ModelReplicaSetSpec
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client import CoreV1Api

from agentfleet.placement import inventory_from_k8s, plan, requests_for
from agentfleet.render.modelreplicaset import spec_hash
from agentfleet.replica_rollout import parse_in_flight
from agentfleet_sim.config import EngineConfig, ReplicaConfig
from agentfleet_sim.replica import Replica
from agentfleet_sim.server import ReplicaServer
from e2e.harness import operator as fx
from e2e.harness.operator import H100, L4, eventually
from e2e.harness.ports import free_port
from tests.builders import MRS

# The operator and node-pool fixtures (module-level names are how pytest finds them).
crds, operator, gpu_pool = fx.crds, fx.operator, fx.gpu_pool

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


@pytest.fixture(autouse=True)
def _operator_back_after_each_test(operator):
    """A test that stops or kills the operator and then fails must not leave the next ones without it."""
    args = operator.args
    yield
    operator.args = args
    if not operator.running:
        operator.start()


MRS_LABEL = "agentfleet.io/modelreplicaset"
REPLICA_LABEL = "agentfleet.io/replica"
SERVING_LABEL = "agentfleet.io/serving"


# --- helpers ---------------------------------------------------------------------------------


def mrs_manifest(
    name: str,
    pool,
    *,
    tp: int = 1,
    pp: int = 1,
    replicas: int = 1,
    model: str = "meta-llama/Llama-3.1-8B-Instruct",
    product: str = H100,
    **spec: Any,
) -> dict:
    m = (
        MRS(name)
        .model(model, served=name)
        .tp(tp)
        .pp(pp)
        .gpu(product)
        .replicas(replicas)
        .placement(**pool.selector, **spec.pop("placement", {}))
    )
    # Short drains and backoffs keep the suite fast; the logic is the same at any length.
    lifecycle = {
        "drainTimeoutSeconds": 3,
        "restartBackoffSeconds": 2,
        "maxRestartBackoffSeconds": 8,
        **spec.pop("lifecycle", {}),
    }
    return m.spec(lifecycle=lifecycle, **spec).obj()


def get_mrs(cluster, ns: str, name: str) -> dict:
    return cluster.json("-n", ns, "get", "mrs", name)


def cond(obj: dict, type_: str) -> dict:
    return next((c for c in (obj.get("status") or {}).get("conditions", []) if c["type"] == type_), {})


def replica_pods(cluster, ns: str, name: str, *, include_deleting: bool = False) -> list[dict]:
    items = cluster.json("-n", ns, "get", "pods", "-l", f"{MRS_LABEL}={name}")["items"]
    return [p for p in items if include_deleting or not p["metadata"].get("deletionTimestamp")]


def pod_ready(p: dict) -> bool:
    return p["status"].get("phase") == "Running" and any(
        c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", [])
    )


def events(cluster, ns: str, name: str) -> list[dict]:
    items = cluster.json(
        "-n", ns, "get", "events", "--field-selector", f"involvedObject.kind=ModelReplicaSet,involvedObject.name={name}"
    )["items"]
    return sorted(items, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")


def settled(cluster, ns: str, name: str, n: int):
    """A predicate: n replicas ready and serving, status agreeing with the pods, Ready=True."""

    def check() -> dict | None:
        obj = get_mrs(cluster, ns, name)
        st = obj.get("status") or {}
        pods = replica_pods(cluster, ns, name)
        serving = [p for p in pods if p["metadata"]["labels"].get("agentfleet.io/role") != "worker"]
        ok = (
            cond(obj, "Ready").get("status") == "True"
            and st.get("observedGeneration") == obj["metadata"]["generation"]
            and st.get("readyReplicas") == n
            and st.get("replicas") == n
            and len(st.get("placements", [])) == n
            and len(serving) == n
            and all(pod_ready(p) for p in pods)
            and all(p["metadata"]["labels"].get(SERVING_LABEL) == "true" for p in serving)
        )
        return obj if ok else None

    return check


def assert_status_matches_pods(obj: dict, pods: list[dict]) -> None:
    by_replica: dict[str, list[dict]] = {}
    for p in pods:
        by_replica.setdefault(p["metadata"]["labels"][REPLICA_LABEL], []).append(p)
    placements = {p["name"]: p for p in obj["status"]["placements"]}
    assert set(placements) == set(by_replica)
    for replica, group in by_replica.items():
        group.sort(key=lambda p: p["metadata"]["name"])
        assert placements[replica]["nodes"] == [p["spec"]["nodeName"] for p in group], replica
        assert placements[replica]["phase"] == "Ready"


def core_api(cluster) -> CoreV1Api:
    return CoreV1Api(k8s_config.new_client_from_config(config_file=cluster.kubeconfig))


class DrainTimeline:
    """When each replica stopped serving (serving label false) and when its pods started
    deleting, by replica, from a pod watch running while the block runs."""

    def __init__(self, cluster, ns: str, mrs: str) -> None:
        self.core, self.ns, self.mrs = core_api(cluster), ns, mrs
        self.seen: dict[str, dict[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> dict[str, dict[str, float]]:
        self._thread.start()
        time.sleep(0.5)  # the watch is established before the block acts
        return self.seen

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _watch(self) -> None:
        w = k8s_watch.Watch()
        for ev in w.stream(
            self.core.list_namespaced_pod,
            self.ns,
            label_selector=f"{MRS_LABEL}={self.mrs}",
            timeout_seconds=60,
            _request_timeout=70,
        ):
            pod = ev["object"]
            rec = self.seen.setdefault((pod.metadata.labels or {}).get(REPLICA_LABEL, pod.metadata.name), {})
            if (pod.metadata.labels or {}).get(SERVING_LABEL) == "false":
                rec.setdefault("draining", time.monotonic())
            if pod.metadata.deletion_timestamp or ev["type"] == "DELETED":
                rec.setdefault("deleted", time.monotonic())
            if self._stop.is_set():
                w.stop()
                return


# --- tests -----------------------------------------------------------------------------------


def test_apply_places_replicas_on_matching_nodes_and_reports_status(operator, gpu_pool, namespace, cluster) -> None:
    ns = namespace
    gpu_pool.add("h100a", count=2, zone="zone-a")
    gpu_pool.add("h100b", count=1, zone="zone-b")
    gpu_pool.add("l4", count=1, gpus=4, product=L4, zone="zone-a")
    manifest = mrs_manifest("llama", gpu_pool, tp=4, replicas=3)
    # What the pure planner makes of this exact inventory: the pods must land there.
    spec = ModelReplicaSetSpec.model_validate(manifest["spec"])
    inventory = inventory_from_k8s(gpu_pool.nodes(), [])
    names = [f"llama-{spec_hash(spec)[:5]}-{i}" for i in range(3)]
    expected = {
        a.key.split("/")[1]: list(a.nodes) for a in plan(inventory, requests_for(ns, "llama", spec, names)).placed
    }
    assert len(expected) == 3

    cluster.apply(manifest, ns)
    obj = eventually(cluster, operator, settled(cluster, ns, "llama", 3), timeout=45, desc="3 replicas Ready")

    pods = replica_pods(cluster, ns, "llama")
    assert {p["metadata"]["labels"][REPLICA_LABEL]: [p["spec"]["nodeName"]] for p in pods} == expected
    node_labels = {n["metadata"]["name"]: n["metadata"]["labels"] for n in gpu_pool.nodes()}
    for p in pods:
        labels = node_labels[p["spec"]["nodeName"]]
        assert labels["nvidia.com/gpu.product"] == H100, "placed on a node of the wrong GPU product"
        assert p["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] == "4"
        term = p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
            "nodeSelectorTerms"
        ][0]
        assert term["matchFields"][0]["values"] == [p["spec"]["nodeName"]], (
            "the plan reaches the scheduler as node affinity"
        )
    assert_status_matches_pods(obj, pods)
    zones = {pl["zone"] for pl in obj["status"]["placements"]}
    assert zones == {"zone-a", "zone-b"}, "replicas are spread over zones"
    for pl in obj["status"]["placements"]:
        node = pl["nodes"][0]
        assert pl["zone"] == node_labels[node]["topology.kubernetes.io/zone"]
        assert pl["block"] == node_labels[node]["agentfleet.io/topology-block"]
        assert pl["endpoint"].endswith(":8000") and pl["gpus"] == 4 and pl["restarts"] == 0

    st = obj["status"]
    assert st["desiredReplicas"] == 3 and st["gpusPerReplica"] == 4 and st["servedModelName"] == "llama"
    assert st["selector"] == "agentfleet.io/modelreplicaset=llama,agentfleet.io/role notin (worker)"
    assert st["capacity"]["kvTokensPerReplica"] > 0 and st["capacity"]["concurrentSequences"] > 0
    assert cond(obj, "Progressing")["status"] == "False" and cond(obj, "Degraded")["status"] == "False"
    # The scale subresource's selector finds exactly the replicas.
    assert len(cluster.json("-n", ns, "get", "pods", "-l", st["selector"])["items"]) == 3
    # The operator writes status only: nothing into spec, no finalizer, no kopf annotations.
    managed = cluster.json("-n", ns, "get", "mrs", "llama", "--show-managed-fields")["metadata"]["managedFields"]
    writers = {(m["manager"], m.get("subresource", "")) for m in managed if not m["manager"].startswith("kubectl")}
    assert writers and all(sub == "status" for _, sub in writers), writers
    assert not obj["metadata"].get("finalizers")
    assert not any(k.startswith("kopf.zalando.org") for k in obj["metadata"].get("annotations", {}))

    # Children are owned (GC on delete) and the Services select serving replicas.
    uid = obj["metadata"]["uid"]
    for kind, name in (
        ("service", "llama"),
        ("service", "llama-replicas"),
        ("pdb", "llama"),
        *(("pod", p["metadata"]["name"]) for p in pods),
    ):
        child = cluster.json("-n", ns, "get", kind, name)
        refs = child["metadata"]["ownerReferences"]
        assert refs[0]["uid"] == uid and refs[0]["controller"] is True, f"{kind}/{name}"
    svc = cluster.json("-n", ns, "get", "service", "llama")
    assert svc["spec"]["selector"] == {MRS_LABEL: "llama", SERVING_LABEL: "true"}
    scaled = [e["message"] for e in events(cluster, ns, "llama") if e["reason"] == "ScalingUp"]
    assert scaled and all(f"{r} on {n[0]}" in scaled[0] for r, n in expected.items()), scaled


def test_scale_up_and_down_drains_before_deleting(operator, gpu_pool, namespace, cluster) -> None:
    ns = namespace
    gpu_pool.add("h100", count=2)
    cluster.apply(mrs_manifest("qwen", gpu_pool, tp=2, replicas=1), ns)
    eventually(cluster, operator, settled(cluster, ns, "qwen", 1), timeout=30, desc="1 replica Ready")

    cluster.run("-n", ns, "patch", "mrs", "qwen", "--type=merge", "-p", json.dumps({"spec": {"replicas": 3}}))
    obj = eventually(cluster, operator, settled(cluster, ns, "qwen", 3), timeout=30, desc="scaled up to 3")
    assert obj["status"]["lastScaleReason"] == "spec.replicas 1 -> 3"
    first = sorted(p["metadata"]["labels"][REPLICA_LABEL] for p in replica_pods(cluster, ns, "qwen"))

    # Watch every pod from now on: the drain switch must flip before the deletion.
    with DrainTimeline(cluster, ns, "qwen") as seen:
        out = cluster.run("-n", ns, "scale", "mrs/qwen", "--replicas=1")  # the scale subresource, as HPA/KEDA use it
        assert "scaled" in out.stdout
        obj = eventually(cluster, operator, settled(cluster, ns, "qwen", 1), timeout=40, desc="scaled down to 1")
        cluster.wait_for(
            lambda: len(replica_pods(cluster, ns, "qwen", include_deleting=True)) == 1,
            timeout=20,
            desc="drained pods gone",
        )

    survivor = replica_pods(cluster, ns, "qwen")[0]["metadata"]["labels"][REPLICA_LABEL]
    # No metrics (kwok): the newest replicas go first, the oldest stays.
    assert survivor == first[0]
    victims = sorted(set(first) - {survivor})
    for v in victims:
        rec = seen.get(v, {})
        assert "draining" in rec and "deleted" in rec, f"{v}: {rec}"
        # Out of every Service first; deleted after drainTimeoutSeconds (in-flight unknown: the
        # ReplicaDeleted Event below names the timeout). The operator's 3 s count from its decision,
        # before it patches the label the watch sees, so the gap reads that patch's latency short of
        # 3 s (2.79 s in a CI run on a busy machine); a replica known idle goes at the first poll, 2 s.
        assert rec["deleted"] - rec["draining"] >= 2.0, (
            f"{v} deleted {rec['deleted'] - rec['draining']:.1f}s after it stopped serving"
        )
    msgs = [(e["reason"], e["message"]) for e in events(cluster, ns, "qwen")]
    assert sum(1 for r, m in msgs if r == "Draining") >= 2
    assert any(r == "ReplicaDeleted" and "drain timeout (3s)" in m for r, m in msgs)
    assert obj["status"]["lastScaleReason"] == "spec.replicas 3 -> 1"


class PodIPSims:
    """vLLM replica simulators listening on replica pods' own IPs.

    kwok pods get IPs from the cluster's pod CIDR that nothing answers on. Routing each IP to
    loopback as a local address (Linux AnyIP: ``ip route add local IP/32 dev lo``) lets a
    simulator bind it, so the operator reads real vLLM /metrics at the pod's address, exactly
    the way it does in a real cluster. Needs CAP_NET_ADMIN; the routes are removed afterwards.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.routes: list[str] = []
        # As e2e/cluster/cluster.sh installs packages: directly as root, else through sudo.
        self.sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
        self.servers: dict[str, ReplicaServer] = {}
        self.calls: list[concurrent.futures.Future] = []

    def route(self, ip: str) -> None:
        cmd = [*self.sudo, "ip", "route", "replace", "local", f"{ip}/32", "dev", "lo"]
        try:
            subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.CalledProcessError) as exc:
            pytest.skip(
                f"cannot make pod IP {ip} local ({' '.join(cmd)}: {getattr(exc, 'stderr', exc)}); needs root or "
                "passwordless sudo"
            )
        self.routes.append(ip)

    def serve(self, name: str, ip: str, port: int, served_name: str, **engine_fields: Any) -> None:
        self.route(ip)
        engine = EngineConfig(
            model=served_name, served_name=served_name, decode_base_s=0.02, decode_per_seq_s=0.0, **engine_fields
        )
        server = ReplicaServer(Replica(ReplicaConfig(engine=engine), name=name), ip, port)
        asyncio.run_coroutine_threadsafe(server.start(), self.loop).result(10)
        self.servers[name] = server

    def hold(self, name: str, tokens: int) -> concurrent.futures.Future:
        """One completion that decodes `tokens` tokens (~20 ms each), over HTTP; done when it ends."""
        server = self.servers[name]
        body = {
            "model": server.replica.config.engine.served_name,
            "messages": [{"role": "user", "content": f"hold {name} {tokens}"}],
            "max_tokens": tokens,
            "ignore_eos": True,
        }

        async def call() -> float:
            async with aiohttp.ClientSession() as s, s.post(f"{server.url}/v1/chat/completions", json=body) as r:
                await r.read()
                r.raise_for_status()
            return time.monotonic()

        future = asyncio.run_coroutine_threadsafe(call(), self.loop)
        self.calls.append(future)
        return future

    def running(self, name: str) -> int:
        return parse_in_flight(urllib.request.urlopen((f"{self.servers[name].url}/metrics"), timeout=5).read().decode())  # noqa: S310

    def close(self) -> None:
        for future in self.calls:
            future.cancel()
        concurrent.futures.wait(self.calls, timeout=10)
        for server in self.servers.values():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        for ip in self.routes:
            subprocess.run(
                [*self.sudo, "ip", "route", "del", "local", f"{ip}/32", "dev", "lo"],
                check=False,
                capture_output=True,
                timeout=10,
            )


@pytest.fixture
def pod_sims() -> Iterator[PodIPSims]:
    sims = PodIPSims()
    yield sims
    sims.close()


def test_scale_down_drains_the_replica_with_least_in_flight_work(
    operator, gpu_pool, namespace, cluster, pod_sims
) -> None:
    """vLLM answers on each replica pod's IP: scale-down picks the replica holding the fewest
    requests (not the newest), takes it out of service, and deletes it when its last request
    ends, well before drainTimeoutSeconds."""
    ns = namespace
    gpu_pool.add("h100", count=1)
    port = free_port()
    manifest = mrs_manifest("mix", gpu_pool, replicas=3, lifecycle={"drainTimeoutSeconds": 90})
    manifest["spec"]["engine"]["port"] = port
    cluster.apply(manifest, ns)
    eventually(cluster, operator, settled(cluster, ns, "mix", 3), timeout=30, desc="3 replicas Ready")

    pods = sorted(
        replica_pods(cluster, ns, "mix"), key=lambda p: p["metadata"]["creationTimestamp"] + p["metadata"]["name"]
    )
    replicas = [p["metadata"]["labels"][REPLICA_LABEL] for p in pods]
    for p, r in zip(pods, replicas, strict=True):
        assert p["status"].get("podIP"), p["metadata"]["name"]
        pod_sims.serve(r, p["status"]["podIP"], port, "mix")
    oldest, middle, newest = replicas
    # Oldest and newest hold long requests (~60 s); the middle one a single short one (~5 s).
    held = [pod_sims.hold(oldest, 3000) for _ in range(3)] + [pod_sims.hold(newest, 3000) for _ in range(2)]
    short = pod_sims.hold(middle, 250)
    cluster.wait_for(
        lambda: [pod_sims.running(r) for r in replicas] == [3, 1, 2],
        timeout=10,
        interval=0.1,
        desc="requests running 3/1/2",
    )

    with DrainTimeline(cluster, ns, "mix") as seen:
        cluster.run("-n", ns, "scale", "mrs/mix", "--replicas=2")
        short_done = short.result(timeout=30)
        assert pod_sims.running(middle) == 0
        eventually(cluster, operator, settled(cluster, ns, "mix", 2), timeout=30, desc="scaled down to 2")
        cluster.wait_for(
            lambda: len(replica_pods(cluster, ns, "mix", include_deleting=True)) == 2,
            timeout=20,
            desc="drained pod gone",
        )

    survivors = sorted(p["metadata"]["labels"][REPLICA_LABEL] for p in replica_pods(cluster, ns, "mix"))
    assert survivors == sorted([oldest, newest]), f"{middle} held the fewest requests; survivors {survivors}"
    rec = seen.get(middle, {})
    assert "draining" in rec and "deleted" in rec, rec
    # Out of service while its request ran; deleted only once it had finished, long before the timeout.
    assert rec["draining"] < short_done <= rec["deleted"] + 0.05, (rec, short_done)
    assert rec["deleted"] - short_done < 10, f"deleted {rec['deleted'] - short_done:.1f}s after its last request ended"
    assert all(not f.done() for f in held), "the long requests on the surviving replicas were cut"
    assert [pod_sims.running(r) for r in (oldest, newest)] == [3, 2]
    msgs = [(e["reason"], e["message"]) for e in events(cluster, ns, "mix")]
    assert any(r == "Draining" and middle in m and "1 requests in flight" in m for r, m in msgs), msgs
    assert any(r == "ReplicaDeleted" and middle in m and "0 requests in flight" in m for r, m in msgs), msgs


def test_multi_node_gang_in_one_block_restarts_as_a_group(operator, gpu_pool, namespace, cluster) -> None:
    ns = namespace
    a = gpu_pool.add("rack-a", count=2, block=f"{ns}-rack-a", nvlink=f"{ns}-nvl-a")
    gpu_pool.add("rack-b", count=1, block=f"{ns}-rack-b", nvlink=f"{ns}-nvl-b")
    cluster.apply(mrs_manifest("llama-405b", gpu_pool, tp=8, pp=2, model="meta-llama/Llama-3.1-405B-Instruct-FP8"), ns)
    obj = eventually(cluster, operator, settled(cluster, ns, "llama-405b", 1), timeout=45, desc="gang Ready")

    pods = sorted(replica_pods(cluster, ns, "llama-405b"), key=lambda p: p["metadata"]["name"])
    assert [p["metadata"]["labels"]["agentfleet.io/role"] for p in pods] == ["leader", "worker"]
    assert sorted(p["spec"]["nodeName"] for p in pods) == sorted(a), "both pods in the one block with two free nodes"
    assert all(p["spec"]["restartPolicy"] == "Never" for p in pods)
    pl = obj["status"]["placements"][0]
    assert (pl["block"], pl["gpus"], pl["gpusPerNode"]) == (f"{ns}-rack-a", 16, 8)
    assert_status_matches_pods(obj, pods)
    cluster.json("-n", ns, "get", "service", "llama-405b-gang")  # workers find their leader through it

    # One member dies: the whole group is deleted and comes back after the backoff, once.
    old_uids = {p["metadata"]["uid"] for p in pods}
    cluster.run("-n", ns, "delete", "pod", pods[1]["metadata"]["name"], "--wait=false")

    def restarted():
        o = get_mrs(cluster, ns, "llama-405b")
        now = replica_pods(cluster, ns, "llama-405b")
        fresh = [p for p in now if p["metadata"]["uid"] not in old_uids]
        return (
            o
            if len(fresh) == 2
            and not ({p["metadata"]["uid"] for p in now} & old_uids)
            and settled(cluster, ns, "llama-405b", 1)()
            else None
        )

    obj = eventually(cluster, operator, restarted, timeout=45, desc="the gang restarted as a whole")
    assert obj["status"]["placements"][0]["restarts"] == 1
    assert obj["status"]["placements"][0]["nodes"] == pl["nodes"], "restarted where it was"
    msgs = [(e["reason"], e["message"]) for e in events(cluster, ns, "llama-405b")]
    assert any(r == "GangRestart" and "restart 1" in m and "deleting the group" in m for r, m in msgs), msgs
    time.sleep(4)  # no restart storm once it runs again
    assert get_mrs(cluster, ns, "llama-405b")["status"]["placements"][0]["restarts"] == 1


def test_node_removed_replica_is_replaced(operator, gpu_pool, namespace, cluster) -> None:
    ns = namespace
    gpu_pool.add("h100", count=2)
    cluster.apply(mrs_manifest("mistral", gpu_pool, tp=8, replicas=1, model="mistralai/Mistral-7B-Instruct-v0.3"), ns)
    obj = eventually(cluster, operator, settled(cluster, ns, "mistral", 1), timeout=30, desc="1 replica Ready")
    lost = obj["status"]["placements"][0]["nodes"][0]

    cluster.run("delete", "node", lost)

    def replaced():
        o = settled(cluster, ns, "mistral", 1)()
        return o if o and o["status"]["placements"][0]["nodes"][0] != lost else None

    obj = eventually(cluster, operator, replaced, timeout=40, desc="replica re-placed off the deleted node")
    assert_status_matches_pods(obj, replica_pods(cluster, ns, "mistral"))
    msgs = [(e["reason"], e["message"]) for e in events(cluster, ns, "mistral")]
    assert any(r == "NodeLost" and lost in m for r, m in msgs), msgs


def test_unplaceable_replica_gets_condition_and_event_not_pods(operator, gpu_pool, namespace, cluster) -> None:
    ns = namespace
    gpu_pool.add("small", count=2, gpus=4)
    manifest = mrs_manifest("big", gpu_pool, tp=8, replicas=1)
    spec = ModelReplicaSetSpec.model_validate(manifest["spec"])
    # The whole cluster, as the operator sees it: the message also counts the nodes it excludes.
    inventory = inventory_from_k8s(cluster.json("get", "nodes")["items"], cluster.json("get", "pods", "-A")["items"])
    p = plan(inventory, requests_for(ns, "big", spec, [f"big-{spec_hash(spec)[:5]}-0"]))
    assert len(p.unplaced) == 1
    want = p.unplaced[0]

    cluster.apply(manifest, ns)

    def reported():
        o = get_mrs(cluster, ns, "big")
        evs = [e for e in events(cluster, ns, "big") if e["type"] == "Warning" and e["reason"] == want.reason]
        return (o, evs) if cond(o, "ScalingLimited").get("status") == "True" and evs else None

    obj, evs = eventually(cluster, operator, reported, timeout=30, desc="ScalingLimited condition and Warning event")
    assert evs[0]["message"] == want.message  # the planner's exact words
    print(want.message)
    for type_ in ("ScalingLimited", "Ready"):
        c = cond(obj, type_)
        assert c["reason"] == want.reason and want.message in c["message"], c
    assert cond(obj, "Ready")["status"] == "False"
    assert obj["status"]["replicas"] == 0 and obj["status"].get("placements", []) == []
    time.sleep(2)
    assert replica_pods(cluster, ns, "big", include_deleting=True) == [], "never a silent Pending pod"

    # Room appears: the waiting replica is placed without any change to the object.
    gpu_pool.add("big", count=1, gpus=8)
    eventually(cluster, operator, settled(cluster, ns, "big", 1), timeout=30, desc="placed once a node fits")


def test_model_that_does_not_fit_is_refused_with_the_numbers(operator, gpu_pool, namespace, cluster) -> None:
    ns = namespace
    gpu_pool.add("h100", count=1)
    cluster.apply(mrs_manifest("huge", gpu_pool, tp=1, model="meta-llama/Llama-3.1-70B-Instruct"), ns)

    def refused():
        o = get_mrs(cluster, ns, "huge")
        return o if cond(o, "Ready").get("reason") == "ModelDoesNotFit" else None

    obj = eventually(cluster, operator, refused, timeout=30, desc="Ready=False ModelDoesNotFit")
    c = cond(obj, "Ready")
    assert (
        c["status"] == "False"
        and "131.4 GiB" in c["message"]
        and "smallest tensorParallelSize that fits is 4" in c["message"]
    )
    assert obj["status"]["capacity"]["weightsBytes"] > 130 * 2**30
    assert any(e["reason"] == "ModelDoesNotFit" and e["type"] == "Warning" for e in events(cluster, ns, "huge"))
    time.sleep(1)
    assert replica_pods(cluster, ns, "huge", include_deleting=True) == []


def test_operator_killed_mid_scale_up_creates_no_duplicates(operator, gpu_pool, namespace, cluster) -> None:
    ns = namespace
    gpu_pool.add("h100", count=3)
    cluster.apply(mrs_manifest("fleet", gpu_pool, tp=1, replicas=1, placement={"spreadAcross": "None"}), ns)
    eventually(cluster, operator, settled(cluster, ns, "fleet", 1), timeout=30, desc="1 replica Ready")

    # Paced writes (2/s) hold the operator inside its create loop for seconds, so the kill lands
    # mid-scale-up on a fast machine too; the restarted operator writes at full speed.
    normal_args = operator.args
    operator.stop()
    operator.args = (*normal_args, "--api-qps", "2", "--api-burst", "1")
    operator.start()
    operator.args = normal_args

    core = core_api(cluster)
    created: list[str] = []
    killed_at: list[int] = []

    def watch_and_kill() -> None:
        w = k8s_watch.Watch()
        for ev in w.stream(
            core.list_namespaced_pod, ns, label_selector=f"{MRS_LABEL}=fleet", timeout_seconds=30, _request_timeout=40
        ):
            if ev["type"] == "ADDED" and ev["object"].metadata.name not in created:
                created.append(ev["object"].metadata.name)
                # The first pod is the one that exists; at the second new one the operator is
                # inside its create loop. Crash it there.
                if len(created) == 3 and not killed_at:
                    operator.kill()
                    killed_at.append(len(created))
                    w.stop()
                    return

    w = threading.Thread(target=watch_and_kill, daemon=True)
    w.start()
    cluster.wait_for(lambda: len(created) == 1, timeout=10, interval=0.1, desc="the watch sees the first pod")
    cluster.run("-n", ns, "patch", "mrs", "fleet", "--type=merge", "-p", json.dumps({"spec": {"replicas": 24}}))
    w.join(30)
    assert killed_at, "the operator was not caught in the middle of the scale-up"
    assert not operator.running
    at_kill = len(replica_pods(cluster, ns, "fleet"))
    print(f"operator SIGKILLed with {at_kill} of 24 replica pods created")
    assert at_kill < 24, "the scale-up finished before the kill; the test proved nothing"
    st = get_mrs(cluster, ns, "fleet").get("status") or {}
    print(f"status at kill: {len(st.get('placements', []))} placements recorded")

    operator.start()
    obj = eventually(
        cluster, operator, settled(cluster, ns, "fleet", 24), timeout=60, desc="24 replicas Ready after the restart"
    )
    pods = replica_pods(cluster, ns, "fleet", include_deleting=True)
    replicas = [p["metadata"]["labels"][REPLICA_LABEL] for p in pods]
    assert len(pods) == 24 and len(set(replicas)) == 24, "duplicate replicas"
    h = spec_hash(ModelReplicaSetSpec.model_validate(obj["spec"]))[:5]
    assert sorted(replicas) == sorted(f"fleet-{h}-{i}" for i in range(24))
    per_node: dict[str, int] = {}
    for p in pods:
        per_node[p["spec"]["nodeName"]] = per_node.get(p["spec"]["nodeName"], 0) + 1
    assert sorted(per_node.values()) == [8, 8, 8]
    assert_status_matches_pods(obj, pods)


def test_rolling_update_surges_one_replica_at_a_time(operator, gpu_pool, namespace, cluster) -> None:
    ns = namespace
    gpu_pool.add("h100", count=1)
    cluster.apply(mrs_manifest("phi", gpu_pool, tp=2, replicas=2, model="microsoft/Phi-3-mini-4k-instruct"), ns)
    obj = eventually(cluster, operator, settled(cluster, ns, "phi", 2), timeout=30, desc="2 replicas Ready")
    old = {p["metadata"]["labels"][REPLICA_LABEL] for p in replica_pods(cluster, ns, "phi")}

    peak = [0]
    seen: list[str] = []  # each change of the replicas present (deleting ones marked), for the failure message
    sampled: list[set[str]] = []  # the replicas each successful sample saw
    errors: list[str] = []
    stop = threading.Event()

    def sample() -> None:
        start = time.monotonic()
        while not stop.is_set():
            try:
                pods = replica_pods(cluster, ns, "phi", include_deleting=True)
            except Exception as e:  # noqa: BLE001 - a busy API server may refuse one read; counted and judged below
                errors.append(repr(e))
            else:
                present = {p["metadata"]["labels"][REPLICA_LABEL] for p in pods}
                sampled.append(present)
                peak[0] = max(peak[0], len(present))
                now = " ".join(
                    sorted(
                        p["metadata"]["labels"][REPLICA_LABEL]
                        + ("(deleting)" if p["metadata"].get("deletionTimestamp") else "")
                        for p in pods
                    )
                )
                if not seen or not seen[-1].endswith(now):
                    seen.append(f"{time.monotonic() - start:6.2f}s {now}")
            time.sleep(0.2)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    cluster.run(
        "-n", ns, "patch", "mrs", "phi", "--type=merge", "-p", json.dumps({"spec": {"engine": {"maxNumSeqs": 64}}})
    )

    def rolled():
        o = settled(cluster, ns, "phi", 2)()
        if not o or o["metadata"]["generation"] != o["status"]["observedGeneration"]:
            return None
        now = {p["metadata"]["labels"][REPLICA_LABEL] for p in replica_pods(cluster, ns, "phi", include_deleting=True)}
        return o if not (now & old) and len(now) == 2 else None

    obj = eventually(cluster, operator, rolled, timeout=60, desc="both replicas replaced")
    stop.set()
    t.join(5)
    # The peak means something only if the sampler watched the rollout: most reads succeeded, and
    # it saw an old replica beside a new one (the surge) at least once.
    assert len(sampled) >= 5 and len(errors) <= len(sampled), (
        f"{len(sampled)} samples, {len(errors)} errors: {errors[:3]}"
    )
    assert any(present & old and present - old for present in sampled), (
        "the sampler never saw the rollout\n" + "\n".join(seen)
    )
    assert peak[0] <= 3, f"{peak[0]} replicas at once: more than one surge replica\n" + "\n".join(seen)
    new_hash = spec_hash(ModelReplicaSetSpec.model_validate(obj["spec"]))
    assert all(p["metadata"]["labels"]["agentfleet.io/spec-hash"] == new_hash for p in replica_pods(cluster, ns, "phi"))
    reasons = [e["reason"] for e in events(cluster, ns, "phi")]
    assert reasons.count("RollingUpdate") >= 2 and reasons.count("Draining") >= 2


def test_delete_removes_everything_even_with_the_operator_down(operator, gpu_pool, namespace, cluster) -> None:
    ns = namespace
    gpu_pool.add("h100", count=1)
    cluster.apply(mrs_manifest("gone", gpu_pool, tp=4, replicas=2), ns)
    eventually(cluster, operator, settled(cluster, ns, "gone", 2), timeout=30, desc="2 replicas Ready")
    operator.stop()
    try:
        # No finalizer: deletion never waits for an operator that is not there.
        cluster.run("-n", ns, "delete", "mrs", "gone", "--timeout=20s")

        def children_gone() -> bool:
            left = cluster.run(
                "-n", ns, "get", "pods,services,pdb", "-l", f"{MRS_LABEL}=gone", "-o", "name"
            ).stdout.split()
            return not left

        cluster.wait_for(children_gone, timeout=40, desc="pods, Services and the PDB garbage-collected")
    finally:
        operator.start()


def test_pod_template_overlay_reaches_the_pods_and_a_collision_is_refused_by_field(
    operator, gpu_pool, namespace, cluster
) -> None:
    ns = namespace
    gpu_pool.add("h100", count=1)
    overlay = {
        "metadata": {"annotations": {"example.com/team": "search"}},
        "spec": {
            "volumes": [{"name": "corp-ca", "emptyDir": {}}],
            "containers": [
                {
                    "name": "vllm",
                    "env": [{"name": "SSL_CERT_DIR", "value": "/corp-ca"}],
                    "volumeMounts": [{"name": "corp-ca", "mountPath": "/corp-ca"}],
                },
                {"name": "shipper", "image": "busybox:1.36", "command": ["sleep", "infinity"]},
            ],
        },
    }
    cluster.apply(mrs_manifest("lay", gpu_pool, podTemplate=overlay), ns)
    eventually(cluster, operator, settled(cluster, ns, "lay", 1), timeout=45, desc="1 replica Ready")
    [pod] = replica_pods(cluster, ns, "lay")
    vllm, shipper = pod["spec"]["containers"]
    assert pod["metadata"]["annotations"]["example.com/team"] == "search"
    assert {"name": "SSL_CERT_DIR", "value": "/corp-ca"} in vllm["env"]
    assert shipper["name"] == "shipper" and shipper["securityContext"] == vllm["securityContext"]

    # HF_HOME is the operator's: refused by field on the object, and the running pod is left alone.
    bad = {"spec": {"containers": [{"name": "vllm", "env": [{"name": "HF_HOME", "value": "/x"}]}]}}
    cluster.run("patch", "-n", ns, "mrs", "lay", "--type=merge", "-p", json.dumps({"spec": {"podTemplate": bad}}))

    def refused():
        o = get_mrs(cluster, ns, "lay")
        c = cond(o, "Ready")
        return (
            c
            if c.get("status") == "False"
            and "spec.podTemplate.spec.containers[vllm].env[HF_HOME]" in c.get("message", "")
            else None
        )

    eventually(cluster, operator, refused, timeout=30, desc="Ready False naming spec.podTemplate...env[HF_HOME]")
    assert any(e["reason"] == "InvalidSpec" for e in events(cluster, ns, "lay"))
    assert [p["metadata"]["name"] for p in replica_pods(cluster, ns, "lay")] == [pod["metadata"]["name"]]
