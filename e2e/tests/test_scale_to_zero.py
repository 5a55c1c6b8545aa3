"""Scale to zero and back on the real control plane, with simulated replicas that take a load time.

A ModelReplicaSet with ``autoscaling.minReplicas: 0`` and an AgentFleet that calls it (its Redis a
real local one) are left idle: after ``sleepAfterIdleSeconds`` the set sleeps at zero replicas
(status.sleep Sleeping, desiredReplicas 0, no pod). A task submitted with the runtime's own
TaskStore (as the task API does) waits in the fleet's stream; the operator reads that queue, wakes
the set (Waking), its replica pod is created and loads for LOAD_S (e2e/harness/sleepwake.py: this
node's kubelet is the harness, which reports the pod Ready only once the simulated model has
loaded), and a runtime Worker (the fleet's worker, which kwok cannot run) serves the task through
the runtime's router on the set's EndpointSlices. Per cycle the test checks: the task ends done
(none lost), no call reached a replica still loading (the simulator counts them), the wake's
Events (Waking, then Woke with its latency); it prints wake-to-answer, the load time and the
rest (the operator's and the control plane's overhead).

Environment: AGENTFLEET_ZERO_CYCLES (default 2; e2e/bench/scale_to_zero_bench.py runs 20) and
AGENTFLEET_ZERO_LOAD_S (default 20 s; the bench also runs a minutes-long one).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config as k8s_config
from kubernetes.client import CoordinationV1Api, CoreV1Api

from agentfleet_runtime.routing.client import RoutingModelClient
from agentfleet_runtime.routing.kube import EndpointSliceSource
from agentfleet_runtime.routing.settings import RoutingSettings, Tier
from e2e.harness import operator as fx
from e2e.harness.autoscale import QUEUEING_ENGINE
from e2e.harness.operator import eventually
from e2e.harness.prometheus import PrometheusServer
from e2e.harness.sleepwake import LoadingKubelet, MappedSource
from e2e.tests.test_agentfleet import helpers, redis_server  # noqa: F401 - redis_server is a fixture
from e2e.tests.test_keda import (  # noqa: F401 - keda is a fixture
    EXAMPLES,
    assert_ran_as_written,
    example_scaled_object,
    keda,
    scale_writers,
    scaled_object_ready,
)
from tests.builders import MRS

crds, operator, gpu_pool = fx.crds, fx.operator, fx.gpu_pool

CYCLES = int(os.environ.get("AGENTFLEET_ZERO_CYCLES", "2"))
LOAD_S = float(os.environ.get("AGENTFLEET_ZERO_LOAD_S", "20"))
IDLE_S = 4
MODEL, FLEET = "chat", "agents"
KEDA_SO = EXAMPLES / "keda" / "modelreplicaset-scale-to-zero.yaml"

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(int(180 + CYCLES * (LOAD_S + 60)))]


def sleeping_mrs(pool: Any, prom_url: str) -> dict[str, Any]:
    m = MRS(MODEL).model("meta-llama/Llama-3.1-8B-Instruct", served=MODEL).gpu(fx.H100).replicas(1)
    m.placement(**pool.selector, spreadAcross="None").lifecycle(1, 2, 8)
    return m.autoscaling(
        enabled=True,
        minReplicas=0,
        maxReplicas=2,
        sleepAfterIdleSeconds=IDLE_S,
        windowSeconds=10,
        evaluationPeriodSeconds=5,
        scaleUpStabilizationSeconds=0,
        scaleDownStabilizationSeconds=5,
        prometheusURL=prom_url,
    ).obj()


def fleet(redis_url: str) -> dict[str, Any]:
    return {
        "apiVersion": "agentfleet.io/v1alpha1",
        "kind": "AgentFleet",
        "metadata": {"name": FLEET},
        "spec": {
            "modelRef": {"name": MODEL},
            "redis": {"url": redis_url},
            "workers": {"autoscaling": True, "minReplicas": 0, "maxReplicas": 2, "sleepAfterIdleSeconds": IDLE_S},
        },
    }


def events(cluster: Any, ns: str, kind: str, name: str, reason: str) -> list[str]:
    sel = f"involvedObject.kind={kind},involvedObject.name={name},reason={reason}"
    return [e["message"] for e in cluster.json("-n", ns, "get", "events", "--field-selector", sel)["items"]]


def describe(cluster: Any, ns: str, k: LoadingKubelet, prom: PrometheusServer | None) -> str:
    """What a failed wait saw: the set's and the fleet's status, the pods, the harness's replicas
    and Prometheus's targets (a replica Ready but "not reporting fresh metrics" shows up there)."""
    keep = ("replicas", "desiredReplicas", "readyReplicas", "desiredWorkers", "readyWorkers", "sleep")
    lines = []
    for kind, name in (("mrs", MODEL), ("agentfleet", FLEET)):
        got = cluster.run("-n", ns, "get", kind, name, "-o", "json", check=False)
        if got.returncode:
            continue
        st = json.loads(got.stdout).get("status") or {}
        conds = [f"{c['type']}={c['status']} {c.get('reason')}: {c.get('message')}" for c in st.get("conditions") or []]
        lines.append(f"{kind}/{name}: {json.dumps({x: st.get(x) for x in keep if x in st})}")
        lines += [f"  {c}" for c in conds]
    for p in cluster.json("-n", ns, "get", "pods")["items"]:
        meta, status = p["metadata"], p.get("status") or {}
        ready = [c["status"] for c in status.get("conditions") or [] if c["type"] == "Ready"]
        gone = " deleting" if meta.get("deletionTimestamp") else ""
        lines.append(f"pod {meta['name']} on {p['spec'].get('nodeName')} {status.get('phase')} ready={ready}{gone}")
    lines.append(f"harness: backing {k.backing} ready {sorted(k.ready)} last error {k.last_error or 'none'}")
    if prom is not None:
        lines.append(prom.target_health())
    return "\n".join(lines)


@pytest.fixture
def kubelet(cluster: Any, namespace: str, gpu_pool: Any) -> Iterator[tuple[LoadingKubelet, PrometheusServer]]:
    (node,) = gpu_pool.add("zero", count=1, kwok=False)
    api = k8s_config.new_client_from_config(config_file=cluster.kubeconfig)
    sd = Path(tempfile.mkdtemp(prefix="agentfleet-zero-")) / f"{MODEL}.json"
    k = LoadingKubelet(CoreV1Api(api), CoordinationV1Api(api), namespace, MODEL, node, QUEUEING_ENGINE, sd, LOAD_S)
    prom = PrometheusServer([], scrape_interval="1s", file_sd=sd)
    try:
        gpu_pool.wait_ready([node])  # the harness's heartbeat, not kwok's
        prom.wait_ready()
        yield k, prom
    finally:
        prom.stop()
        k.stop()


class Worker:
    """The fleet's worker (kwok runs no containers): the runtime's Worker, its model calls routed
    by the runtime's router over the set's EndpointSlices (addresses mapped to the simulator)."""

    def __init__(
        self, cluster: Any, ns: str, kubelet: LoadingKubelet, redis_url: str, prom: PrometheusServer | None
    ) -> None:
        self.cluster, self.ns, self.kubelet, self.redis_url, self.prom = cluster, ns, kubelet, redis_url, prom

    def client(self) -> RoutingModelClient:
        api = k8s_config.new_client_from_config(config_file=self.cluster.kubeconfig)
        source = MappedSource(EndpointSliceSource.for_model_replica_set(self.ns, MODEL, api_client=api), self.kubelet)
        # A call's budget covers the cold start: it waits for the first replica (routing/client.py).
        tier = (Tier(MODEL, MODEL, RoutingSettings()), source)
        return RoutingModelClient(tier, timeout=LOAD_S + 60, max_retries=2, max_output_tokens=16)

    async def cycle(self, on_submitted: Any) -> tuple[str, float]:
        """Submit one task and wait for it: (its status, seconds from submit to its end). A task
        that did not end done fails here, with its error and what the cluster showed."""
        # No tools: the simulator's text is the answer, so a task is one model call and its end
        # is its first answer.
        retry = {"maxAttempts": 1, "visibilityTimeoutSeconds": int(LOAD_S + 120)}
        # The fleet's keys hold its namespace (af:<ns>/<fleet>:): the operator reads the queue there.
        config = helpers.make_config(
            self.redis_url, FLEET, namespace=self.ns, retry=retry, tools=[]
        )  # its keys: ns/name
        store = helpers.store_for(config)
        try:
            async with helpers.running_worker(config, model=self.client()):
                t0 = time.time()
                tid = await helpers.submit(store, config, "what is the answer?")
                on_submitted(t0)
                ended = await helpers.wait_ended(store, [tid], timeout=LOAD_S + 120)
                took = time.time() - t0
                if ended[tid]["status"] != "done":
                    seen = describe(self.cluster, self.ns, self.kubelet, self.prom)
                    pytest.fail(f"the task ended {ended[tid]} after {took:.1f}s\n{seen}", pytrace=False)
                return ended[tid]["status"], took
        finally:
            await store.r.aclose()


def test_sleeps_when_idle_wakes_for_a_queued_task_and_serves_it_once_a_replica_loaded(
    operator,
    gpu_pool,
    namespace,
    cluster,
    redis_server,  # noqa: F811
    kubelet,
) -> None:
    ns = namespace
    k, prom = kubelet
    cluster.apply(sleeping_mrs(gpu_pool, prom.url), ns)
    cluster.apply(fleet(redis_server.url), ns)
    worker = Worker(cluster, ns, k, redis_server.url, prom)

    def mrs() -> dict[str, Any]:
        return cluster.json("-n", ns, "get", "mrs", MODEL)

    def asleep() -> dict[str, Any] | None:
        """Both asleep: the set at zero with no pod left, and the fleet's workers at zero."""
        o = mrs()
        st = o.get("status") or {}
        pods = cluster.json("-n", ns, "get", "pods", "-l", f"agentfleet.io/modelreplicaset={MODEL}")["items"]
        af = cluster.json("-n", ns, "get", "agentfleet", FLEET).get("status") or {}
        both = (st.get("sleep") or {}).get("state") == (af.get("sleep") or {}).get("state") == "Sleeping"
        return o if both and st.get("desiredReplicas") == 0 and af.get("desiredWorkers") == 0 and not pods else None

    rows = []
    for cycle in range(CYCLES):
        try:
            slept = eventually(
                cluster,
                operator,
                asleep,
                timeout=IDLE_S + 90,
                desc=f"cycle {cycle}: {MODEL} asleep at zero",
                interval=0.5,
            )
        except pytest.fail.Exception as e:
            pytest.fail(f"{e}\n--- seen last\n{describe(cluster, ns, k, prom)}", pytrace=False)
        assert "Sleep" in cluster.run("-n", ns, "get", "mrs", MODEL, "-o", "wide").stdout  # the printer column
        before = set(k.started_at)
        marks: dict[str, float] = {}
        status, took = asyncio.run(worker.cycle(lambda t0, marks=marks: marks.__setitem__("t0", t0)))
        assert status == "done", f"cycle {cycle}: the task ended {status}"
        (pod,) = set(k.started_at) - before
        load = k.ready_at[pod] - k.started_at[pod]
        ordered = k.started_at[pod] - marks["t0"]
        rows.append(
            {"cycle": cycle, "wake_to_answer_s": took, "load_s": load, "overhead_s": took - load, "ordered_s": ordered}
        )
        woke = eventually(
            cluster,
            operator,
            lambda: (mrs()["status"].get("sleep") or {}).get("state") == "Awake" and mrs()["status"]["sleep"],
            timeout=30,
            desc=f"cycle {cycle}: {MODEL} Awake",
        )
        assert woke.get("lastWakeSeconds") is not None, woke
        assert slept["status"]["sleep"]["state"] == "Sleeping"
    # The baseline, in the same run: a task while the set is awake and its replica ready.
    warm = [asyncio.run(worker.cycle(lambda _: None)) for _ in range(3)]
    assert all(s == "done" for s, _ in warm)
    assert k.calls_while_loading() == 0, "a call reached a replica still loading"
    assert len(events(cluster, ns, "ModelReplicaSet", MODEL, "Woke")) >= 1
    assert events(cluster, ns, "ModelReplicaSet", MODEL, "Sleeping") and events(
        cluster, ns, "ModelReplicaSet", MODEL, "Waking"
    )
    assert events(cluster, ns, "AgentFleet", FLEET, "Waking"), "the fleet's workers did not wake for the task"
    over = [r["overhead_s"] for r in rows]
    summary = {
        "cycles": CYCLES,
        "tasks_lost": 0,
        "calls_while_loading": k.calls_while_loading(),
        "load_s": LOAD_S,
        "overhead_s": {"median": statistics.median(over), "max": max(over), "min": min(over)},
        "warm_answer_s": [round(t, 3) for _, t in warm],
        "rows": rows,
    }
    print("SCALE_TO_ZERO " + json.dumps(summary))
    out = os.environ.get("AGENTFLEET_ZERO_REPORT")
    if out:
        Path(out).write_text(json.dumps(summary, indent=1))


# --- KEDA's minReplicaCount: 0 path (examples/keda/modelreplicaset-scale-to-zero.yaml) --------------


def test_keda_min_replica_count_zero_wakes_the_set_on_the_fleets_queue(
    operator,
    gpu_pool,
    namespace,
    cluster,
    redis_server,  # noqa: F811
    kubelet,
    keda,  # noqa: F811
) -> None:
    """The built-in autoscaler off: KEDA's activation takes spec.replicas 0 -> 1 on the fleet's
    stream lag and back to 0 after its cooldown; the task is served once the replica loaded."""
    ns = namespace
    k, prom = kubelet
    m = MRS(MODEL).model("meta-llama/Llama-3.1-8B-Instruct", served=MODEL).gpu(fx.H100).replicas(0)
    cluster.apply(m.placement(**gpu_pool.selector, spreadAcross="None").lifecycle(1, 2, 8).obj(), ns)
    # The consumer group exists before KEDA reads its lag (the workers create it as they start).
    config = helpers.make_config(redis_server.url, FLEET, namespace=ns)

    async def group() -> None:
        store = helpers.store_for(config)
        await store.ensure_group()
        await store.r.aclose()

    asyncio.run(group())
    # Shorter timings than the example's; the cooldown still outlasts a load and a task.
    local = {
        "spec.scaleTargetRef.name": MODEL,
        "spec.triggers.0.metadata.address": f"127.0.0.1:{redis_server.port}",
        "spec.triggers.0.metadata.stream": f"af:{ns}/{FLEET}:tasks",  # keys hold the namespace
        "spec.triggers.1.metadata.address": f"127.0.0.1:{redis_server.port}",
        "spec.triggers.1.metadata.stream": f"af:{ns}/{FLEET}:tasks",
        "spec.pollingInterval": 1,
        "spec.cooldownPeriod": int(LOAD_S + 30),
    }
    so = example_scaled_object(KEDA_SO, local)
    cluster.apply(so, ns)
    name = so["metadata"]["name"]
    eventually(
        cluster,
        operator,
        lambda: scaled_object_ready(cluster, ns, name),
        timeout=90,
        desc=f"{name} Ready\n{keda.tails()}",
    )
    assert_ran_as_written(cluster, ns, KEDA_SO, local)

    def replicas() -> int:
        return int(cluster.json("-n", ns, "get", "mrs", MODEL)["spec"]["replicas"])

    assert replicas() == 0 and not k.backing
    status, took = asyncio.run(Worker(cluster, ns, k, redis_server.url, prom).cycle(lambda _: None))
    assert status == "done"
    (pod,) = k.started_at
    load = k.ready_at[pod] - k.started_at[pod]
    assert k.calls_while_loading() == 0, "a call reached a replica still loading"
    writers = scale_writers(cluster.json("-n", ns, "get", "mrs", MODEL, "--show-managed-fields"))
    assert writers and not any(w.startswith("agentfleet") for w in writers), writers
    eventually(
        cluster,
        operator,
        lambda: replicas() == 0 and not k.backing,
        timeout=LOAD_S + 120,
        desc=f"KEDA back to 0 after its cooldown\n{keda.tails()}",
        interval=1,
    )
    print("SCALE_TO_ZERO_KEDA " + json.dumps({"wake_to_answer_s": took, "load_s": load, "overhead_s": took - load}))
