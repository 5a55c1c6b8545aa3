"""KEDA drives our scale subresources, end to end, with the HPA controller doing the scaling.

KEDA's operator and metrics API server (built from KEDA's Go module, e2e/thirdparty.sh) run as
processes against the control plane; its External metrics API is registered as an APIService
(e2e/keda_harness.py). For each ScaledObject in examples/keda/, KEDA creates an HPA and the HPA
controller in kube-controller-manager reads the metric through the aggregation layer and writes
the target's replicas through its scale subresource:

- examples/keda/modelreplicaset-prometheus.yaml: a Prometheus trigger on
  ``vllm:num_requests_waiting`` scales a ModelReplicaSet (autoscaling off) from 1 to N under load
  and back to 1 when the load stops. Simulated vLLM replicas back the pods the operator creates
  and a private Prometheus scrapes them (as in test_autoscaling.py);
- examples/keda/agentfleet-redis-streams.yaml: the fleet's queue depth (the lag of consumer group
  ``workers`` on ``af:<fleet>:tasks``, read from a real Redis) scales an AgentFleet's workers.

The examples run as written except for the addresses of Prometheus/Redis, the namespace in the
query and shorter timings (``OVERRIDES``); each test checks that the live ScaledObject is the
example with exactly those changes.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from e2e import fixtures_operator as fx
from e2e.autoscale_harness import ClosedLoopLoad
from e2e.demo.installers import ensure_redis_server
from e2e.fixtures_operator import eventually
from e2e.keda_harness import Keda
from e2e.neighbours import install_thirdparty_crds, keda_bin_dir
from e2e.test_agentfleet import apply_stuck_model, helpers
from e2e.test_autoscaling import backed  # noqa: F401 - a fixture

crds, operator, gpu_pool = fx.crds, fx.operator, fx.gpu_pool

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[1]
KEDA_EXAMPLES = ROOT / "examples" / "keda"
# Timings the tests shorten (HPA behaviour and KEDA's polling), the same for both examples.
SCALE_DOWN_WINDOW = 15
BEHAVIOR = {
    "scaleUp": {"stabilizationWindowSeconds": 0, "policies": [{"type": "Pods", "value": 8, "periodSeconds": 15}]},
    "scaleDown": {"stabilizationWindowSeconds": SCALE_DOWN_WINDOW, "policies": [{"type": "Pods", "value": 8, "periodSeconds": 15}]},
}
OVERRIDES = ("spec.pollingInterval", "spec.cooldownPeriod", "spec.advanced.horizontalPodAutoscalerConfig.behavior", "spec.triggers[0].metadata")


def example(name: str) -> dict[str, Any]:
    (doc,) = [d for d in yaml.safe_load_all((KEDA_EXAMPLES / name).read_text()) if d]
    return doc


def shortened(doc: dict[str, Any], **metadata: str) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    spec = doc["spec"]
    spec["pollingInterval"] = 5
    if "cooldownPeriod" in spec:
        spec["cooldownPeriod"] = 30
    spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"] = copy.deepcopy(BEHAVIOR)
    spec["triggers"][0]["metadata"].update(metadata)
    return doc


def without_overrides(doc: dict[str, Any]) -> dict[str, Any]:
    """The ScaledObject's fields outside OVERRIDES, and the trigger metadata keys left as written."""
    spec = copy.deepcopy(doc["spec"])
    for k in ("pollingInterval", "cooldownPeriod"):
        spec.pop(k, None)
    spec["advanced"]["horizontalPodAutoscalerConfig"].pop("behavior", None)
    spec["triggers"] = [{**t, "metadata": sorted(t["metadata"])} for t in spec["triggers"]]
    return {"name": doc["metadata"]["name"], "spec": spec}


def assert_ran_the_example(cluster: Any, ns: str, name: str, file: str, changed: dict[str, str]) -> None:
    live = cluster.json("-n", ns, "get", "scaledobject", name)
    ex = example(file)
    assert without_overrides(live) == without_overrides(ex), "the ScaledObject that ran is not examples/keda/" + file
    meta = live["spec"]["triggers"][0]["metadata"]
    assert {k: v for k, v in meta.items() if k not in changed} == {k: v for k, v in ex["spec"]["triggers"][0]["metadata"].items() if k not in changed}
    assert {k: meta[k] for k in changed} == changed


@pytest.fixture(scope="module")
def keda(crds) -> Iterator[Keda]:
    install_thirdparty_crds(crds)
    k = Keda(crds, str(keda_bin_dir()))
    try:
        k.start()
    except Exception:
        k.stop()
        raise
    yield k
    k.stop()


def hpa_of(cluster: Any, ns: str, scaled_object: str) -> dict[str, Any]:
    return cluster.json("-n", ns, "get", "hpa", f"keda-hpa-{scaled_object}")


def scale_writers(obj: dict[str, Any]) -> set[str]:
    return {m["manager"] for m in obj["metadata"].get("managedFields", []) if m.get("subresource") == "scale"}


def test_keda_scales_a_modelreplicaset_on_waiting_requests_and_back(keda, operator, gpu_pool, namespace, cluster, backed) -> None:  # noqa: F811
    ns = namespace
    gpu_pool.add("l4", count=1, gpus=8, product=fx.L4)
    (mrs,) = [d for d in yaml.safe_load_all((ROOT / "examples" / "modelreplicaset-smollm2-cpu.yaml").read_text()) if d]
    name = mrs["metadata"]["name"]
    # Placement into this test's pool; quick drains so the scale-down is over in seconds.
    mrs["spec"]["placement"] = {**gpu_pool.selector, "spreadAcross": "None"}
    mrs["spec"]["lifecycle"] = {"drainTimeoutSeconds": 3, "restartBackoffSeconds": 2, "maxRestartBackoffSeconds": 8}
    sim, prom = backed(name)
    cluster.apply(mrs, ns)
    eventually(cluster, operator, lambda: len(sim.endpoints()) == 1, timeout=90, desc="one smollm2 pod backed by a simulated replica")
    assert cluster.json("-n", ns, "get", "mrs", name)["spec"]["autoscaling"]["enabled"] is False

    so = example("modelreplicaset-prometheus.yaml")
    query = so["spec"]["triggers"][0]["metadata"]["query"].replace('namespace="default"', f'namespace="{ns}"')
    changed = {"serverAddress": prom.url, "query": query}
    cluster.apply(shortened(so, **changed), ns)
    so_name = so["metadata"]["name"]
    eventually(cluster, operator, lambda: hpa_of(cluster, ns, so_name), timeout=60, desc="KEDA's HPA for the ScaledObject")
    assert_ran_the_example(cluster, ns, so_name, "modelreplicaset-prometheus.yaml", changed)

    def spec_replicas() -> int:
        return int(cluster.json("-n", ns, "get", "mrs", name)["spec"]["replicas"])

    # 24 agents on one replica that runs 2 at a time: ~22 waiting, 8 per replica wanted -> 3.
    load = ClosedLoopLoad(sim, clients=24)
    try:
        try:
            eventually(cluster, operator, lambda: spec_replicas() >= 3, timeout=150, desc="the HPA raising spec.replicas to 3 or more")
        except BaseException:
            print(keda.tail("keda-operator"), keda.tail("keda-adapter"), cluster.run("-n", ns, "describe", "hpa", check=False).stdout)
            raise
        high = spec_replicas()
        eventually(cluster, operator, lambda: len(sim.endpoints()) == spec_replicas(), timeout=90, desc="the new replicas serving")
        hpa = hpa_of(cluster, ns, so_name)
        metric = hpa["status"]["currentMetrics"][0]["external"]
        assert metric["metric"]["name"].startswith("s0-prometheus"), metric
        assert float(metric["current"]["averageValue"].rstrip("m")) > 0, metric
    finally:
        load.stop()
    obj = cluster.json("-n", ns, "get", "mrs", name, "--show-managed-fields")
    # The HPA controller (kube-controller-manager) wrote spec.replicas through /scale; KEDA itself
    # scales only between 0 and 1, and minReplicaCount is 1.
    assert any(w.startswith("kube-controller-manager") for w in scale_writers(obj)), scale_writers(obj)
    assert obj["metadata"]["generation"] > 1 and high >= 3

    eventually(cluster, operator, lambda: spec_replicas() == 1, timeout=SCALE_DOWN_WINDOW + 120, desc="the HPA scaling back to 1")
    eventually(cluster, operator, lambda: len(sim.endpoints()) == 1, timeout=90, desc="the extra replicas drained and gone")
    cluster.run("-n", ns, "delete", "scaledobject", so_name, "--wait=true", "--timeout=60s")


@pytest.fixture
def redis_url(tmp_path) -> Iterator[str]:
    server = helpers.RedisServer(ensure_redis_server(), tmp_path / "redis")
    server.start()
    yield server.url
    server.stop()


def test_keda_scales_an_agentfleets_workers_on_queue_depth_and_back(keda, operator, namespace, cluster, redis_url) -> None:
    ns = namespace
    so = example("agentfleet-redis-streams.yaml")
    fleet = so["spec"]["scaleTargetRef"]["name"]
    apply_stuck_model(cluster, ns)
    (af,) = [
        d for d in yaml.safe_load_all((ROOT / "examples" / "agentfleet.yaml").read_text()) if d and d["kind"] == "AgentFleet" and d["metadata"]["name"] == fleet
    ]
    af["spec"]["modelRef"] = {"name": "stuck"}
    af["spec"].pop("vectorIndexRef", None)
    af["spec"]["tools"] = [t for t in af["spec"].get("tools", []) if t.get("type") != "Retrieval"]
    af["spec"]["redis"] = {"url": redis_url}
    af["spec"]["workers"]["replicas"] = 1
    cluster.apply(af, ns)
    worker = f"{fleet}-worker"
    eventually(
        cluster, operator, lambda: cluster.run("-n", ns, "get", "deployment", worker, check=False).returncode == 0, timeout=90, desc="the worker Deployment"
    )

    # The queue as the task API fills it: the workers' consumer group and tasks on the stream.
    config = helpers.make_config(redis_url, fleet)
    store = helpers.store_for(config)
    helpers.arun(store.ensure_group())
    host_port = redis_url.removeprefix("redis://").split("/")[0]
    changed = {"address": host_port}
    cluster.apply(shortened(so, **changed), ns)
    so_name = so["metadata"]["name"]
    eventually(cluster, operator, lambda: hpa_of(cluster, ns, so_name), timeout=60, desc="KEDA's HPA for the ScaledObject")
    assert_ran_the_example(cluster, ns, so_name, "agentfleet-redis-streams.yaml", changed)
    assert so["spec"]["triggers"][0]["metadata"]["stream"] == f"af:{fleet}:tasks" == store.keys.stream

    lag_per_worker = int(so["spec"]["triggers"][0]["metadata"]["lagCount"])
    tasks = 2 * lag_per_worker + 30  # -> ceil(130 / 50) = 3 workers
    for i in range(tasks):
        helpers.arun(helpers.submit(store, config, f"task {i}"))

    def workers() -> tuple[int, int]:
        spec = cluster.json("-n", ns, "get", "agentfleet", fleet)["spec"]["workers"]["replicas"]
        dep = cluster.json("-n", ns, "get", "deployment", worker)["spec"]["replicas"]
        return int(spec), int(dep)

    try:
        eventually(cluster, operator, lambda: workers() == (3, 3), timeout=150, desc="3 workers: spec.workers.replicas and the Deployment")
    except BaseException:
        print(keda.tail("keda-operator"), keda.tail("keda-adapter"), cluster.run("-n", ns, "describe", "hpa", check=False).stdout)
        raise
    obj = cluster.json("-n", ns, "get", "agentfleet", fleet, "--show-managed-fields")
    assert any(w.startswith("kube-controller-manager") for w in scale_writers(obj)), scale_writers(obj)

    # A worker takes every task (delivered: no longer lag): the queue is empty, back to 1 worker.
    r = redis.Redis.from_url(redis_url)
    r.xreadgroup("workers", "e2e-worker", {store.keys.stream: ">"}, count=10 * tasks)
    eventually(cluster, operator, lambda: workers() == (1, 1), timeout=SCALE_DOWN_WINDOW + 120, desc="back to 1 worker")
    cluster.run("-n", ns, "delete", "scaledobject", so_name, "--wait=true", "--timeout=60s")
