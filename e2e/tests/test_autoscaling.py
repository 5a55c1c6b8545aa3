"""The autoscaler on the real control plane, reading a real Prometheus that scrapes simulated vLLM.

A ModelReplicaSet with autoscaling on gets its pods on kwok GPU nodes; e2e/harness/autoscale.py
serves one simulated vLLM replica per running pod and lists them in a file_sd file labelled as
Kubernetes pod discovery would (namespace, pod), which a private Prometheus (Debian package,
installed by tests/integration/sim's helper) scrapes every second. Closed-loop clients are the
agents. The operator runs as a subprocess; only the spec's autoscaling settings are shortened
(5 s evaluations, 10 s window, 20 s scale-down stabilization) so the scenarios run in minutes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import config as k8s_config
from kubernetes.client import CoreV1Api

from e2e.harness import operator as fx
from e2e.harness.autoscale import QUEUEING_ENGINE, ClosedLoopLoad, PodBackedFleets
from e2e.harness.operator import eventually
from e2e.harness.prometheus import PrometheusServer
from tests.builders import MRS

crds, operator, gpu_pool = fx.crds, fx.operator, fx.gpu_pool

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

PERIOD = 5
DOWN_WINDOW = 20
ENGINE = QUEUEING_ENGINE


def autoscaled_mrs(name: str, pool: Any, prom_url: str, *, replicas: int = 1, **autoscaling: Any) -> dict[str, Any]:
    m = (
        MRS(name)
        .model("meta-llama/Llama-3.1-8B-Instruct", served=name)
        .gpu(fx.H100)
        .replicas(replicas)
        .placement(**pool.selector, spreadAcross="None")
    )
    m.lifecycle(3, 2, 8).autoscaling(
        enabled=True,
        minReplicas=1,
        maxReplicas=6,
        targetQueueDepthPerReplica=2,
        windowSeconds=10,
        evaluationPeriodSeconds=PERIOD,
        scaleUpStabilizationSeconds=0,
        scaleDownStabilizationSeconds=DOWN_WINDOW,
        maxScaleUpStep=4,
        maxScaleDownStep=6,
        goodput={"ttftMilliseconds": 2500, "timePerOutputTokenMilliseconds": 100, "targetFraction": 0.9},
        prometheusURL=prom_url,
    )
    return m.autoscaling(**autoscaling).obj()


def cond(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions", []) if c["type"] == type_), {})


def events(cluster: Any, ns: str, name: str) -> list[dict[str, Any]]:
    items = cluster.json(
        "-n", ns, "get", "events", "--field-selector", f"involvedObject.kind=ModelReplicaSet,involvedObject.name={name}"
    )["items"]
    return sorted(items, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")


class Recorder:
    """desiredReplicas over time, sampled by the test (every ~0.5 s)."""

    def __init__(self, cluster: Any, ns: str, name: str) -> None:
        self.cluster, self.ns, self.name = cluster, ns, name
        self.samples: list[tuple[float, int | None]] = []

    def get(self) -> dict[str, Any]:
        obj = self.cluster.json("-n", self.ns, "get", "mrs", self.name)
        self.samples.append((time.monotonic(), (obj.get("status") or {}).get("desiredReplicas")))
        return obj

    def desired(self) -> int | None:
        return self.get().get("status", {}).get("desiredReplicas")

    def changes(self, since: float) -> list[tuple[float, int | None, int | None]]:
        out = []
        prev = None
        for t, d in self.samples:
            if prev is not None and d != prev[1] and t >= since:
                out.append((t, prev[1], d))
            prev = (t, d)
        return out

    def watch(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.get()
            time.sleep(0.5)


@pytest.fixture
def backed(cluster: Any, namespace: str) -> Iterator[Any]:
    """Factory: ``sim, prom = backed("name")`` - simulated replicas for the MRS's pods and a
    Prometheus discovering them; both stopped at teardown."""
    fleets = PodBackedFleets(
        CoreV1Api(k8s_config.new_client_from_config(config_file=cluster.kubeconfig)), namespace, ENGINE
    )
    yield fleets.start
    fleets.stop()


def waiting_in_prometheus(prom: PrometheusServer, ns: str, name: str) -> float:
    rows = prom.query(f'sum(vllm:num_requests_waiting{{namespace="{ns}",model_name="{name}"}})')
    return float(rows[0]["value"][1]) if rows else 0.0


def test_burst_scales_up_within_two_periods_holds_steady_and_scales_down_after_the_window(
    operator, gpu_pool, namespace, cluster, backed
) -> None:
    ns, name = namespace, "burst"
    gpu_pool.add("h100", count=2, gpus=8)
    sim, prom = backed(name)
    cluster.apply(autoscaled_mrs(name, gpu_pool, prom.url), ns)
    rec = Recorder(cluster, ns, name)

    # Idle at one replica, metrics flowing: the autoscaler reads them and keeps minReplicas.
    eventually(
        cluster, operator, lambda: len(sim.endpoints()) == 1, timeout=60, desc="one pod backed by a simulated replica"
    )
    eventually(
        cluster,
        operator,
        lambda: cond(rec.get(), "MetricsAvailable").get("status") == "True",
        timeout=60,
        desc="MetricsAvailable=True",
    )
    assert rec.desired() == 1

    # Burst: 16 agents on one replica that runs 2 at a time -> ~14 waiting, 2 per replica wanted.
    load = ClosedLoopLoad(sim, clients=16)
    try:
        deadline = time.monotonic() + 30
        while waiting_in_prometheus(prom, ns, name) <= 2:
            assert time.monotonic() < deadline, "the burst never showed as a waiting queue in Prometheus"
            time.sleep(0.2)
        queue_rose = time.monotonic()

        def scaled_up() -> int | None:
            d = rec.desired()
            return d if d is not None and d > 1 else None

        eventually(cluster, operator, scaled_up, timeout=4 * PERIOD, desc="desiredReplicas raised", interval=0.2)
        reacted = time.monotonic() - queue_rose
        assert reacted <= 2 * PERIOD, (
            f"scale-up came {reacted:.1f}s after the queue rose, more than two {PERIOD}s periods"
        )
        obj = rec.get()
        st = obj["status"]
        assert (
            st["lastScaleReason"].startswith(f"1 -> {st['desiredReplicas']} (reactive):")
            and "waiting" in st["lastScaleReason"]
        ), st["lastScaleReason"]
        assert any(
            e["reason"] == "ScaledUp" and e["message"] == st["lastScaleReason"] for e in events(cluster, ns, name)
        )

        # The MRS controller follows: new pods, each soon backed by a replica the router uses.
        def grown() -> bool:
            return len(sim.endpoints()) == rec.desired()

        eventually(cluster, operator, grown, timeout=60, desc="the new replicas serving")
        obj = rec.get()
        st = obj["status"]
        # Both status writers' conditions are there, each under its own field manager.
        assert cond(obj, "Ready") and cond(obj, "ScalingActive").get("status") == "True"
        full = cluster.json("-n", ns, "get", "mrs", name, "--show-managed-fields")
        managers = {
            (m["manager"], m.get("operation"), m.get("subresource")) for m in full["metadata"].get("managedFields", [])
        }
        assert ("agentfleet-autoscaler", "Apply", "status") in managers, managers
        assert st.get("learnedModelLoadSeconds") is not None and st["learnedModelLoadSeconds"] < 120

        # Steady load: once settled, the count holds - no scale-up/scale-down alternation.
        settle_from = time.monotonic()
        rec.watch(3 * PERIOD)
        steady_from = time.monotonic()
        rec.watch(35)
        steady = rec.changes(steady_from)
        assert not steady, f"desiredReplicas changed under steady load: {steady}"
        during = [d for _, _, d in rec.changes(settle_from)]
        assert all(a is not None and b is not None and a <= b for a, b in zip(during, during[1:], strict=False)), (
            f"flapped: {rec.changes(settle_from)}"
        )
        high = rec.desired()
        assert high is not None and high > 1
    finally:
        load.stop()
    stopped = time.monotonic()

    # No traffic: down to minReplicas, but only after the scale-down stabilization window.
    def scaled_down() -> bool:
        return rec.desired() == 1

    eventually(
        cluster, operator, scaled_down, timeout=DOWN_WINDOW + 6 * PERIOD, desc="scale down to minReplicas", interval=0.5
    )
    first_down = next(t for t, a, b in rec.changes(stopped) if a is not None and b is not None and b < a)
    # The last evaluation that still saw the load may lie up to one period before it stopped.
    assert first_down - stopped >= DOWN_WINDOW - PERIOD - 1, (
        f"scaled down {first_down - stopped:.1f}s after the load stopped, inside the {DOWN_WINDOW}s window"
    )
    assert "no traffic" in rec.get()["status"]["lastScaleReason"]
    eventually(
        cluster, operator, lambda: len(sim.endpoints()) == 1, timeout=60, desc="the extra replicas drained and gone"
    )


def test_prometheus_down_holds_the_count_and_says_so(operator, gpu_pool, namespace, cluster, backed) -> None:
    ns, name = namespace, "blind"
    gpu_pool.add("h100", count=1, gpus=8)
    sim, prom = backed(name)
    # minReplicas 0 and no traffic: metrics read as zeros would scale this set to nothing.
    cluster.apply(autoscaled_mrs(name, gpu_pool, prom.url, replicas=2, minReplicas=0), ns)
    rec = Recorder(cluster, ns, name)
    eventually(
        cluster, operator, lambda: len(sim.endpoints()) == 2, timeout=60, desc="two pods backed by simulated replicas"
    )
    eventually(
        cluster,
        operator,
        lambda: cond(rec.get(), "MetricsAvailable").get("status") == "True",
        timeout=60,
        desc="MetricsAvailable=True",
    )
    assert rec.desired() == 2

    prom.stop()
    down_at = time.monotonic()

    def reported() -> dict[str, Any] | None:
        obj = rec.get()
        return obj if cond(obj, "MetricsAvailable").get("reason") == "PrometheusUnavailable" else None

    obj = eventually(
        cluster, operator, reported, timeout=3 * PERIOD + 10, desc="MetricsAvailable=False/PrometheusUnavailable"
    )
    assert cond(obj, "MetricsAvailable")["status"] == "False"
    assert (
        cond(obj, "ScalingActive")["status"] == "False" and cond(obj, "ScalingActive")["reason"] == "MetricsUnavailable"
    )
    assert "holding 2" in cond(obj, "ScalingActive")["message"]
    # Well past the scale-down window: still 2, and the MRS controller's own conditions intact.
    rec.watch(max(0.0, DOWN_WINDOW + 2 * PERIOD - (time.monotonic() - down_at)))
    assert {d for _, d in rec.samples if _ >= down_at} == {2}
    obj = rec.get()
    assert cond(obj, "Ready").get("status") == "True"
    warnings = [
        e for e in events(cluster, ns, name) if e["type"] == "Warning" and e["reason"] == "PrometheusUnavailable"
    ]
    assert len(warnings) == 1 and warnings[0].get("count", 1) == 1, warnings  # once per cause, not per period

    # Autoscaling off (KEDA/HPA take over): the autoscaler's conditions go, spec.replicas rules.
    cluster.run("-n", ns, "patch", "mrs", name, "--type=merge", "-p", '{"spec":{"autoscaling":{"enabled":false}}}')

    last: list[dict[str, Any]] = [{}]

    def released() -> dict[str, Any] | None:
        o = last[0] = rec.get()
        gone = not cond(o, "ScalingActive") and not cond(o, "MetricsAvailable")
        return (
            o if gone and o["status"].get("desiredReplicas") == 2 and cond(o, "Ready").get("status") == "True" else None
        )

    try:
        eventually(
            cluster, None, released, timeout=30, desc="the autoscaler's conditions released, desiredReplicas from spec"
        )
    except pytest.fail.Exception as e:
        raise pytest.fail.Exception(f"{e}\nlast status: {last[0].get('status')}", pytrace=False) from None
