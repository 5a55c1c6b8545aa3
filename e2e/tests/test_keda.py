"""KEDA drives our scale subresources, end to end, with the ScaledObjects of examples/keda/.

KEDA's operator and metrics API server (built from KEDA's Go module, ``e2e/cluster/thirdparty.sh keda``)
run as processes against the control plane; e2e/harness/keda.py registers the metrics API as the
APIService ``v1beta1.external.metrics.k8s.io``. KEDA turns each ScaledObject into an HPA, and the
HPA controller in kube-controller-manager reads the metric through the aggregated API and writes
the count through the scale subresource: nobody in this test sets a replica count.

- examples/keda/modelreplicaset-prometheus.yaml on examples/modelreplicaset-smollm2-cpu.yaml
  (autoscaling off): a Prometheus trigger on ``sum(vllm:num_requests_waiting{...})``. Simulated
  vLLM replicas back the ModelReplicaSet's pods (e2e/harness/autoscale.py) and a private
  Prometheus scrapes them; closed-loop clients build a waiting queue, the set goes 1 -> N, and
  back to 1 when the clients stop.
- examples/keda/agentfleet-redis-streams.yaml on the fleet of examples/agentfleet.yaml: KEDA's
  redis-streams trigger on the lag of consumer group ``workers`` on ``af:default/support:tasks``, the
  quantity the fleet reports as status.queueDepth and its workers export as
  ``agentfleet_queue_depth``. Tasks submitted with the runtime's own TaskStore raise the workers;
  a runtime Worker that finishes them brings the count back to the minimum.

The examples are applied as written except for the fields listed in each test's LOCAL (the
server addresses, the namespace in the query, and shorter timings), and each test checks that the
live ScaledObject differs from its example in exactly those fields.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import config as k8s_config
from kubernetes.client import CoreV1Api

from e2e.harness import operator as fx
from e2e.harness.autoscale import QUEUEING_ENGINE, ClosedLoopLoad, PodBackedFleets
from e2e.harness.keda import Keda
from e2e.harness.neighbours import install_thirdparty_crds, keda_bin_dir
from e2e.harness.operator import eventually
from e2e.tests.test_agentfleet import helpers, redis_server, rewrite  # noqa: F401 - redis_server is a fixture

crds, operator, gpu_pool = fx.crds, fx.operator, fx.gpu_pool

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
MRS_SO = EXAMPLES / "keda" / "modelreplicaset-prometheus.yaml"
FLEET_SO = EXAMPLES / "keda" / "agentfleet-redis-streams.yaml"

# Shorter timings than the examples' (minutes in production, seconds here). The HPA controller
# itself evaluates every 15 s (kube-controller-manager's default sync period).
POLL = 5
DOWN_WINDOW = 20
PERIOD = 15
ENGINE = QUEUEING_ENGINE


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def set_path(doc: dict[str, Any], path: str, value: Any) -> None:
    """``a.b.0.c`` (list indexes as numbers): the field must already exist in the example."""
    *parents, last = path.split(".")
    node: Any = doc
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    key: Any = int(last) if isinstance(node, list) else last
    assert (key < len(node)) if isinstance(node, list) else (key in node), f"{path} is not a field of the example"
    node[key] = value


def get_path(doc: Any, path: str) -> Any:
    for p in path.split("."):
        doc = doc[int(p)] if isinstance(doc, list) else doc[p]
    return doc


def differences(a: Any, b: Any, prefix: str = "") -> set[str]:
    """Dotted paths where ``b`` differs from ``a``, keys only in ``b`` (server defaults) aside."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: set[str] = set()
        for k in a:
            out |= differences(a[k], b.get(k), f"{prefix}{k}.") if k in b else {f"{prefix}{k}"}
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return set().union(*(differences(x, y, f"{prefix}{i}.") for i, (x, y) in enumerate(zip(a, b, strict=True))))
    return set() if a == b or str(a) == str(b) else {prefix.rstrip(".")}


def example_scaled_object(path: Path, local: dict[str, Any]) -> dict[str, Any]:
    (so,) = [d for d in docs(path) if d["kind"] == "ScaledObject"]
    so = copy.deepcopy(so)
    for p, v in local.items():
        set_path(so, p, v)
    return so


def assert_ran_as_written(cluster, namespace: str, path: Path, local: dict[str, Any]) -> dict[str, Any]:
    (example,) = [d for d in docs(path) if d["kind"] == "ScaledObject"]
    live = cluster.json("-n", namespace, "get", "scaledobject", example["metadata"]["name"])
    changed = differences(example["spec"], live["spec"])
    assert changed == {p.removeprefix("spec.") for p in local}, (
        f"the ScaledObject that ran differs from {path.name} in {sorted(changed)}"
    )
    return live


def quantity(q: str) -> float:
    """A resource.Quantity as the metrics API writes values (``22``, ``22500m``, ``1k``)."""
    for suffix, factor in (("m", 1e-3), ("k", 1e3), ("M", 1e6)):
        if q.endswith(suffix):
            return float(q[: -len(suffix)]) * factor
    return float(q)


def scaled_object_ready(cluster, namespace: str, name: str) -> dict[str, Any] | None:
    so = cluster.json("-n", namespace, "get", "scaledobject", name)
    conds = {c["type"]: c for c in (so.get("status") or {}).get("conditions") or []}
    return (
        so
        if conds.get("Ready", {}).get("status") == "True" and (so.get("status") or {}).get("externalMetricNames")
        else None
    )


def hpa_events(cluster, namespace: str, hpa: str) -> list[dict[str, Any]]:
    sel = f"involvedObject.kind=HorizontalPodAutoscaler,involvedObject.name={hpa}"
    return cluster.json("-n", namespace, "get", "events", "--field-selector", sel)["items"]


def scale_writers(obj: dict[str, Any]) -> set[str]:
    """Field managers that wrote through the scale subresource."""
    return {m["manager"] for m in obj["metadata"].get("managedFields", []) if m.get("subresource") == "scale"}


@pytest.fixture
def keda(cluster, namespace) -> Iterator[Keda]:
    bin_dir = keda_bin_dir()
    install_thirdparty_crds(cluster)
    k = Keda(cluster, namespace, bin_dir)
    try:
        yield k.start()
    finally:
        k.stop()


# --- a ModelReplicaSet on waiting requests (Prometheus) --------------------------------------------


@pytest.fixture
def backed(cluster, namespace) -> Iterator[Any]:
    fleets = PodBackedFleets(
        CoreV1Api(k8s_config.new_client_from_config(config_file=cluster.kubeconfig)), namespace, ENGINE
    )
    yield fleets.start
    fleets.stop()


def test_prometheus_scaled_object_scales_a_modelreplicaset_up_and_back(
    operator, gpu_pool, namespace, cluster, keda, backed
) -> None:
    ns = namespace
    (mrs,) = docs(EXAMPLES / "modelreplicaset-smollm2-cpu.yaml")
    name = mrs["metadata"]["name"]
    assert not mrs["spec"].get("autoscaling", {}).get("enabled"), "the example leaves scaling to KEDA"
    # Local to this cluster: the test's own simulated L4 nodes, and a short drain (the simulated
    # pods' in-flight count cannot be read at their IPs, so a replica waits out the whole drain).
    mrs["spec"]["placement"] = {**gpu_pool.selector, "spreadAcross": "None"}
    mrs["spec"]["lifecycle"] = {"drainTimeoutSeconds": 3}
    gpu_pool.add("l4", count=1, gpus=8, product=fx.L4)
    sim, prom = backed(name)
    cluster.apply(mrs, ns)
    eventually(
        cluster, operator, lambda: len(sim.endpoints()) == 1, timeout=90, desc="one pod backed by a simulated replica"
    )

    (example,) = [d for d in docs(MRS_SO) if d["kind"] == "ScaledObject"]
    query = example["spec"]["triggers"][0]["metadata"]["query"]
    assert 'namespace="default"' in query and f'model_name="{name}"' in query, query
    threshold = float(example["spec"]["triggers"][0]["metadata"]["threshold"])
    local = {
        "spec.triggers.0.metadata.serverAddress": prom.url,
        "spec.triggers.0.metadata.query": query.replace('namespace="default"', f'namespace="{ns}"'),
        "spec.pollingInterval": POLL,
        "spec.cooldownPeriod": DOWN_WINDOW,
        "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleUp.stabilizationWindowSeconds": 0,
        "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleUp.policies.0.periodSeconds": PERIOD,
        "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.stabilizationWindowSeconds": DOWN_WINDOW,
        "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.policies.0.periodSeconds": PERIOD,
    }
    so = example_scaled_object(MRS_SO, local)
    cluster.apply(so, ns)
    so_name = so["metadata"]["name"]
    live = eventually(
        cluster,
        operator,
        lambda: scaled_object_ready(cluster, ns, so_name),
        timeout=90,
        desc=f"ScaledObject {so_name} Ready\n{keda.tails()}",
    )
    assert_ran_as_written(cluster, ns, MRS_SO, local)
    metric = live["status"]["externalMetricNames"][0]
    hpa = f"keda-hpa-{so_name}"
    h = cluster.json("-n", ns, "get", "hpa", hpa)
    assert h["spec"]["scaleTargetRef"] == {
        "apiVersion": "agentfleet.io/v1alpha1",
        "kind": "ModelReplicaSet",
        "name": name,
    }
    assert h["spec"]["metrics"][0]["type"] == "External" and h["spec"]["metrics"][0]["external"]["target"][
        "averageValue"
    ] == str(int(threshold))

    # Idle: the metric reads 0 through the aggregated API, and the set stays at minReplicaCount.
    assert [quantity(i["value"]) for i in keda.external_metric(metric, so_name)] == [0.0]
    assert cluster.json("-n", ns, "get", "mrs", name)["spec"]["replicas"] == 1

    clients = 24  # ~22 waiting on one replica: ceil(22 / 8) = 3 replicas wanted
    load = ClosedLoopLoad(sim, clients=clients)
    try:
        prom.wait_for(
            query.replace('namespace="default"', f'namespace="{ns}"'),
            lambda r: bool(r) and float(r[0]["value"][1]) > threshold,
            timeout=60,
        )

        def grown() -> int | None:
            n = cluster.json("-n", ns, "get", "mrs", name)["spec"]["replicas"]
            return n if n > 1 else None

        high = eventually(
            cluster, operator, grown, timeout=120, desc=f"spec.replicas raised by the HPA\n{keda.tails()}", interval=1
        )
        assert high <= math.ceil(clients / threshold), high
        seen = [quantity(i["value"]) for i in keda.external_metric(metric, so_name)]
        assert seen and seen[0] > 0, seen
        # The MRS controller follows: a pod per replica, each backed and taking its share of the load.
        eventually(cluster, operator, lambda: len(sim.endpoints()) >= high, timeout=90, desc=f"{high} replicas serving")
        obj = cluster.json("-n", ns, "get", "mrs", name, "--show-managed-fields")
        writers = scale_writers(obj)
        assert any(w.startswith("kube-controller-manager") for w in writers), (
            f"spec.replicas not written by the HPA controller through /scale: {writers}"
        )
        rescaled = [e for e in hpa_events(cluster, ns, hpa) if e["reason"] == "SuccessfulRescale"]
        assert any(metric in e["message"] and "above target" in e["message"] for e in rescaled), [
            e["message"] for e in rescaled
        ]
    finally:
        load.stop()

    # Quiet: the queue empties, and after the scale-down window the HPA takes the set back to 1.
    eventually(
        cluster,
        operator,
        lambda: cluster.json("-n", ns, "get", "mrs", name)["spec"]["replicas"] == 1,
        timeout=DOWN_WINDOW + 8 * PERIOD,
        desc="spec.replicas back to 1",
    )
    eventually(
        cluster, operator, lambda: len(sim.endpoints()) == 1, timeout=90, desc="the extra replicas drained and gone"
    )
    st = cluster.json("-n", ns, "get", "mrs", name)["status"]
    assert st["desiredReplicas"] == 1 and "ScalingActive" not in {c["type"] for c in st.get("conditions", [])}, st
    messages = [e["message"] for e in hpa_events(cluster, ns, hpa) if e["reason"] == "SuccessfulRescale"]
    assert any("New size: 1" in m and "below target" in m for m in messages), messages


# --- an AgentFleet's workers on the fleet's queue depth (redis-streams) -----------------------------


def test_redis_streams_scaled_object_scales_an_agentfleets_workers_on_queue_depth(
    operator,
    gpu_pool,
    namespace,
    cluster,
    keda,
    redis_server,  # noqa: F811
) -> None:
    ns = namespace
    gpu_pool.add("h100", count=1, gpus=8)
    fleet_docs = [
        rewrite(d, gpu_pool, "http://127.0.0.1:9", redis_server.url) for d in docs(EXAMPLES / "agentfleet.yaml")
    ]
    af = next(d for d in fleet_docs if d["kind"] == "AgentFleet")
    fleet = af["metadata"]["name"]
    assert not af["spec"]["workers"].get("autoscaling"), "the example leaves scaling its workers to KEDA"
    for d in fleet_docs:
        cluster.apply(d, ns)
    worker = f"{fleet}-worker"

    def workers() -> tuple[int, int | None]:
        spec = cluster.json("-n", ns, "get", "agentfleet", fleet)["spec"]["workers"]["replicas"]
        dep = cluster.run("-n", ns, "get", "deployment", worker, "-o", "jsonpath={.spec.replicas}", check=False)
        return spec, int(dep.stdout) if dep.returncode == 0 and dep.stdout else None

    eventually(cluster, operator, lambda: workers()[1] is not None, timeout=90, desc=f"Deployment {worker}")

    (example,) = [d for d in docs(FLEET_SO) if d["kind"] == "ScaledObject"]
    trigger = example["spec"]["triggers"][0]["metadata"]
    assert trigger["stream"] == f"af:default/{fleet}:tasks" and trigger["consumerGroup"] == "workers", trigger
    per_worker = int(trigger["lagCount"])
    local = {
        "spec.triggers.0.metadata.address": f"127.0.0.1:{redis_server.port}",
        "spec.triggers.0.metadata.stream": f"af:{ns}/{fleet}:tasks",  # keys hold the namespace
        "spec.pollingInterval": POLL,
        "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.stabilizationWindowSeconds": DOWN_WINDOW,
    }
    so = example_scaled_object(FLEET_SO, local)
    so_name = so["metadata"]["name"]
    hpa = f"keda-hpa-{so_name}"

    # Tasks wait on the fleet's stream (no worker runs: kwok runs no containers): the runtime's
    # own TaskStore puts them there, as the task API does.
    tasks = 3 * per_worker + 10  # ceil(160 / 50) = 4 workers wanted

    async def submit() -> list[str]:
        async with helpers.environment(redis_server.url, fleet, namespace=ns) as env:
            return [await env.submit(f"question {i} #steps=1") for i in range(tasks)]

    ids = helpers.arun(submit(), timeout=120)
    eventually(
        cluster,
        operator,
        lambda: cluster.json("-n", ns, "get", "agentfleet", fleet).get("status", {}).get("queueDepth") == tasks,
        timeout=90,
        desc=f"status.queueDepth {tasks}",
    )

    cluster.apply(so, ns)
    live = eventually(
        cluster,
        operator,
        lambda: scaled_object_ready(cluster, ns, so_name),
        timeout=90,
        desc=f"ScaledObject {so_name} Ready\n{keda.tails()}",
    )
    assert_ran_as_written(cluster, ns, FLEET_SO, local)
    metric = live["status"]["externalMetricNames"][0]
    h = cluster.json("-n", ns, "get", "hpa", hpa)
    assert h["spec"]["scaleTargetRef"] == {"apiVersion": "agentfleet.io/v1alpha1", "kind": "AgentFleet", "name": fleet}
    # KEDA reads the same queue depth the fleet reports.
    assert [quantity(i["value"]) for i in keda.external_metric(metric, so_name)] == [float(tasks)]

    want = math.ceil(tasks / per_worker)
    eventually(
        cluster,
        operator,
        lambda: workers() == (want, want),
        timeout=120,
        desc=f"{want} workers (spec and Deployment)\n{keda.tails()}",
        interval=1,
    )
    obj = cluster.json("-n", ns, "get", "agentfleet", fleet, "--show-managed-fields")
    writers = scale_writers(obj)
    assert any(w.startswith("kube-controller-manager") for w in writers), (
        f"spec.workers.replicas not written by the HPA controller through /scale: {writers}"
    )

    # A worker of the runtime takes and finishes every task: the lag falls to 0, and after the
    # scale-down window the HPA takes the fleet to minReplicaCount.
    async def work() -> None:
        async with (
            helpers.environment(redis_server.url, fleet, namespace=ns) as env,
            helpers.running_worker(env.config),
        ):
            await env.wait(ids, timeout=240)

    helpers.arun(work(), timeout=300)
    assert [quantity(i["value"]) for i in keda.external_metric(metric, so_name)] == [0.0]
    floor = int(example["spec"]["minReplicaCount"])
    eventually(
        cluster,
        operator,
        lambda: workers() == (floor, floor),
        timeout=DOWN_WINDOW + 6 * PERIOD,
        desc=f"{floor} worker(s) again",
        interval=1,
    )
    messages = [e["message"] for e in hpa_events(cluster, ns, hpa) if e["reason"] == "SuccessfulRescale"]
    assert any(f"New size: {want}" in m and "above target" in m for m in messages), messages
    assert any(f"New size: {floor}" in m and "below target" in m for m in messages), messages


def test_the_docs_show_the_scaled_object_that_ran() -> None:
    """docs/concepts.md's "Scaling: built-in or external" quotes
    examples/keda/modelreplicaset-prometheus.yaml whole (comments aside), so what it shows is what
    the test above ran."""
    page = (ROOT / "docs" / "concepts.md").read_text()
    section = page[page.index("### Scaling: built-in or external") :]
    blocks = [b.split("```", 1)[0] for b in section.split("```yaml\n")[1:]]
    shown = [d for b in blocks for d in yaml.safe_load_all(b) if d and d.get("kind") == "ScaledObject"]
    assert shown, "no ScaledObject in docs/concepts.md's scaling section"
    (example,) = [d for d in docs(MRS_SO) if d["kind"] == "ScaledObject"]
    assert shown[0] == example
