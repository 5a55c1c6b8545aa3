"""E2E checks of the harness itself: the local control plane, kwok and the
simulated GPU topology behave like a real cluster for the operator's purposes."""

from __future__ import annotations

import json

import pytest

from tests.builders import Pod

pytestmark = pytest.mark.e2e

GPU = "nvidia.com/gpu"
NVLINK = "agentfleet.io/nvlink-domain"


def _pod(
    name: str, *, gpus: int | None = None, tolerate_gpu: bool = False, node_affinity: dict[str, list[str]] | None = None
) -> dict:
    p = Pod(name).image("registry.invalid/agentfleet/sim:latest").restart("Never")
    if gpus is not None:
        p.gpus(gpus)
    if tolerate_gpu:
        p.tolerate_gpus()
    if node_affinity:
        p.node_affinity(node_affinity)
    return p.obj()


def _ready(obj: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in obj.get("status", {}).get("conditions", []))


def _wait_running(cluster, namespace: str, name: str, timeout: float = 60) -> dict:
    def check():
        pod = cluster.json("-n", namespace, "get", "pod", name)
        return pod if pod["status"].get("phase") == "Running" and _ready(pod) else None

    return cluster.wait_for(check, timeout=timeout, desc=f"pod {namespace}/{name} Running and Ready")


def _wait_nodes_free(cluster, node_names: set[str], timeout: float = 120) -> None:
    """Wait until no pod (e.g. from a still-terminating namespace of an earlier
    run) occupies the given nodes, so GPU capacity assertions are exact."""

    def free():
        pods = cluster.json("get", "pods", "-A")["items"]
        return not [p for p in pods if p["spec"].get("nodeName") in node_names]

    cluster.wait_for(free, timeout=timeout, desc=f"nodes {sorted(node_names)} to be free of pods")


def test_topology_nodes_exist_ready_with_gpus_and_labels(cluster, topology_nodes):
    live = {n["metadata"]["name"]: n for n in cluster.json("get", "nodes")["items"]}
    assert topology_nodes, "topology yields no nodes"
    for want in topology_nodes:
        name = want["metadata"]["name"]
        assert name in live, f"node {name} from the topology does not exist"
        node = live[name]
        assert _ready(node), f"node {name} is not Ready: {node['status'].get('conditions')}"
        for key, value in want["metadata"]["labels"].items():
            assert node["metadata"]["labels"].get(key) == value, f"{name}: label {key}"
        for field in ("capacity", "allocatable"):
            for res, qty in want["status"][field].items():
                assert node["status"][field].get(res) == qty, f"{name}: {field}[{res}]"
            if GPU not in want["status"][field]:
                assert GPU not in node["status"][field], f"{name}: unexpected {GPU}"
        want_taints = {(t["key"], t.get("value"), t["effect"]) for t in want["spec"].get("taints", [])}
        have_taints = {(t["key"], t.get("value"), t["effect"]) for t in node["spec"].get("taints", [])}
        assert have_taints == want_taints, f"{name}: taints"
    # The default topology is a GPU cluster: at least one 8-GPU node with the
    # GPU-feature-discovery style labels the operator relies on.
    gpu_nodes = [n for n in live.values() if n["status"]["allocatable"].get(GPU)]
    assert gpu_nodes
    for n in gpu_nodes:
        labels = n["metadata"]["labels"]
        for key in (
            "nvidia.com/gpu.product",
            "nvidia.com/gpu.memory",
            "nvidia.com/gpu.count",
            NVLINK,
            "agentfleet.io/topology-block",
            "topology.kubernetes.io/zone",
        ):
            assert labels.get(key), f"{n['metadata']['name']} lacks label {key}"
        assert labels["nvidia.com/gpu.count"] == n["status"]["allocatable"][GPU]


def test_control_plane_components_healthy(cluster):
    verbose = cluster.run("get", "--raw", "/readyz?verbose").stdout
    assert "readyz check passed" in verbose
    assert "[+]etcd ok" in verbose
    assert cluster.run("get", "--raw", "/livez").stdout.strip() == "ok"
    for component in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        assert cluster.health(component).strip() == "ok", component
    assert '"health":"true"' in cluster.health("etcd")
    cluster.health("kwok")
    version = json.loads(cluster.run("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == cluster.k8s_version
    assert version["clientVersion"]["gitVersion"] == cluster.k8s_version
    # The API server serves OpenAPI v3, so `kubectl explain` works.
    assert "nodeAffinity" in cluster.run("explain", "pod.spec.affinity").stdout


def test_gpu_pod_scheduled_in_nvlink_domain(cluster, namespace, topology_nodes):
    # Pick the NVLink domain of the second 8-GPU pool so a match is not just
    # "the first node".
    domains: dict[str, set[str]] = {}
    for n in topology_nodes:
        if n["status"]["allocatable"].get(GPU) == "8":
            domains.setdefault(n["metadata"]["labels"][NVLINK], set()).add(n["metadata"]["name"])
    assert len(domains) >= 2, "topology needs at least two NVLink domains of 8-GPU nodes"
    domain = sorted(domains)[1]
    _wait_nodes_free(cluster, domains[domain])

    cluster.apply(_pod("trainer", gpus=8, tolerate_gpu=True, node_affinity={NVLINK: [domain]}), namespace)
    pod = _wait_running(cluster, namespace, "trainer")
    assert pod["spec"]["nodeName"] in domains[domain]
    assert pod["status"].get("podIP"), "kwok should assign a pod IP"
    scheduled = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert scheduled and scheduled[0]["status"] == "True"
    events = cluster.json(
        "-n", namespace, "get", "events", "--field-selector", "involvedObject.name=trainer,reason=Scheduled"
    )["items"]
    assert any(
        e.get("reportingComponent") == "default-scheduler"
        or e.get("source", {}).get("component") == "default-scheduler"
        for e in events
    ), events


def test_gpu_capacity_is_accounted_per_node(cluster, namespace, topology_nodes):
    # A domain with exactly two 8-GPU nodes fits two 8-GPU pods, not three.
    domains: dict[str, set[str]] = {}
    for n in topology_nodes:
        if n["status"]["allocatable"].get(GPU) == "8":
            domains.setdefault(n["metadata"]["labels"][NVLINK], set()).add(n["metadata"]["name"])
    candidates = sorted(d for d, names in domains.items() if len(names) == 2)
    if not candidates:
        pytest.skip("topology has no NVLink domain of exactly two 8-GPU nodes")
    domain = candidates[-1]
    _wait_nodes_free(cluster, domains[domain])
    for i in range(3):
        cluster.apply(_pod(f"worker-{i}", gpus=8, tolerate_gpu=True, node_affinity={NVLINK: [domain]}), namespace)

    def two_running():
        pods = cluster.json("-n", namespace, "get", "pods")["items"]
        running = [p for p in pods if p["status"].get("phase") == "Running"]
        return pods if len(running) == 2 else None

    pods = cluster.wait_for(two_running, timeout=60, desc="two of three 8-GPU pods Running")
    running = [p for p in pods if p["status"].get("phase") == "Running"]
    assert {p["spec"]["nodeName"] for p in running} == domains[domain]
    pending = [p for p in pods if p["status"].get("phase") == "Pending"]
    assert len(pending) == 1 and not pending[0]["spec"].get("nodeName")


def test_pod_requesting_too_many_gpus_stays_pending(cluster, namespace, topology_nodes):
    most = max(int(n["status"]["allocatable"].get(GPU, "0")) for n in topology_nodes)
    cluster.apply(_pod("too-big", gpus=most + 1, tolerate_gpu=True), namespace)

    def failed_scheduling():
        events = cluster.json(
            "-n", namespace, "get", "events", "--field-selector", "involvedObject.name=too-big,reason=FailedScheduling"
        )["items"]
        return events or None

    events = cluster.wait_for(failed_scheduling, timeout=60, desc="FailedScheduling event")
    assert any(f"Insufficient {GPU}" in e.get("message", "") for e in events), events
    pod = cluster.json("-n", namespace, "get", "pod", "too-big")
    assert pod["status"]["phase"] == "Pending"
    assert not pod["spec"].get("nodeName")
    cond = [c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled"]
    assert cond and cond[0]["status"] == "False" and cond[0]["reason"] == "Unschedulable"


def test_deployment_creates_running_pods_on_untainted_nodes(cluster, namespace, topology_nodes):
    untainted = {n["metadata"]["name"] for n in topology_nodes if not n["spec"].get("taints")}
    assert untainted, "topology needs untainted (CPU) nodes"
    cluster.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "web",
                                "image": "registry.invalid/agentfleet/web:latest",
                                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                            }
                        ]
                    },
                },
            },
        },
        namespace,
    )

    def available():
        d = cluster.json("-n", namespace, "get", "deployment", "web")
        return d if d.get("status", {}).get("availableReplicas") == 3 else None

    cluster.wait_for(available, timeout=90, desc="deployment web with 3 available replicas")
    pods = cluster.json("-n", namespace, "get", "pods", "-l", "app=web")["items"]
    assert len(pods) == 3
    for p in pods:
        assert p["status"]["phase"] == "Running" and _ready(p)
        assert p["spec"]["nodeName"] in untainted, "pods without a GPU toleration must avoid GPU nodes"
        owner = p["metadata"]["ownerReferences"][0]
        assert owner["kind"] == "ReplicaSet" and owner["controller"] is True

    # Deleting the Deployment cascades to its ReplicaSet and pods.
    cluster.run("-n", namespace, "delete", "deployment", "web", "--wait=false")
    cluster.wait_for(
        lambda: not cluster.json("-n", namespace, "get", "replicasets,pods", "-l", "app=web")["items"],
        timeout=90,
        desc="ReplicaSet and pods of the deleted Deployment to be garbage-collected",
    )


def test_owner_reference_cascade_deletion(cluster, namespace):
    cluster.run("-n", namespace, "create", "configmap", "parent", "--from-literal=role=owner")
    parent = cluster.json("-n", namespace, "get", "configmap", "parent")
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "child",
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "name": "parent",
                        "uid": parent["metadata"]["uid"],
                    }
                ],
            },
            "data": {"role": "dependent"},
        },
        namespace,
    )
    assert cluster.run("-n", namespace, "get", "configmap", "child", check=False).returncode == 0
    cluster.run("-n", namespace, "delete", "configmap", "parent", "--cascade=background")

    def child_gone():
        return (
            cluster.run("-n", namespace, "get", "configmap", "child", "--ignore-not-found", "-o", "name").stdout.strip()
            == ""
        )

    cluster.wait_for(child_gone, timeout=60, desc="garbage collector to delete the child ConfigMap")
