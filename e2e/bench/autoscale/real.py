"""The bench's KEDA/HPA baseline checked against the real controllers, on one burst.

autoscale_bench scores agentfleet against re-implementations of HPA and KEDA (``KedaQueue`` and
``_hpa_behaviour`` in policies.py). Here the same burst runs on the e2e control plane three times,
each with a different controller writing the ModelReplicaSet's count, all else equal:

- ``agentfleet``: the operator's autoscaler (``spec.autoscaling``), on waiting requests per replica
  and its goodput objectives, writing ``status.desiredReplicas``;
- ``keda-hpa``: KEDA's Prometheus trigger on ``sum(vllm:num_requests_waiting)`` (AverageValue
  target), the HPA KEDA makes from it, and kube-controller-manager's HPA controller writing
  ``spec.replicas`` through the scale subresource, with HPA's default scale-up behaviour;
- ``bench-keda``: the bench's own ``KedaQueue`` fed the same Prometheus query every HPA period and
  writing its count through the scale subresource: the re-implementation replayed on the burst.

Every arm evaluates every ``PERIOD`` (the HPA controller's sync period), aims at ``TARGET`` waiting
requests per replica, may add ``UP_STEP`` replicas per period up to ``MAX_REPLICAS`` and holds a
scale-down for ``DOWN_WINDOW`` seconds. Replicas are simulated vLLM engines behind the pods
(e2e/harness/autoscale.py: 2 sequences at a time, ~0.4 s a request, no model load time), scraped
every second by a private Prometheus; the burst is ``clients`` closed-loop agents for ``seconds``.

Figures per arm: requests answered in the burst and the share within ``SLO_S`` (SLO attainment),
goodput (answered within the SLO per second of burst), GPU-seconds of the replicas from the burst's
start to ``tail`` seconds after it, the scale-up delay (burst start to the first count above 1, and
to a second replica serving), the peak, and when the count was back at 1 after the load stopped.

    .venv/bin/python -m e2e.bench.autoscale.real [--repeats 3] [--clients 16] [--seconds 90]
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import config as k8s_config
from kubernetes.client import CoreV1Api, CustomObjectsApi

from e2e.bench.autoscale.policies import KedaQueue
from e2e.harness.autoscale import QUEUEING_ENGINE, ClosedLoopLoad, PodBackedFleets
from e2e.harness.keda import Keda
from e2e.harness.poll import poll

ARMS = ("agentfleet", "keda-hpa", "bench-keda")
PERIOD = 15  # kube-controller-manager's --horizontal-pod-autoscaler-sync-period default
TARGET = 2  # waiting requests per replica
MAX_REPLICAS = 6
UP_STEP = 4  # HPA's default scale-up: max(4 pods, 100 %) per 15 s, which is 4 below 4 replicas
DOWN_WINDOW = 30
SLO_S = 1.0  # a request alone takes ~0.4 s; behind 2 others on its replica, ~0.8 s
ONE_REPLICA_PER_S = 5.0  # requests a second one replica answers: 2 sequences of 20 tokens at 20 ms
GROUP, VERSION, PLURAL = "agentfleet.io", "v1alpha1", "modelreplicasets"
REPLAY_MANAGER = "agentfleet-bench-replay"
H100 = "NVIDIA-H100-80GB-HBM3"


@dataclass(frozen=True)
class Burst:
    clients: int = 16
    seconds: float = 90.0
    tail: float = DOWN_WINDOW + 4 * PERIOD  # watched after the load stops: the window and the periods that act on it
    # Stop watching once the count is back at 1 after the load stopped. For a test of the mechanics
    # only: GPU-seconds then cover unequal horizons, which the bench's figures never compare.
    until_back: bool = False


@dataclass
class ArmResult:
    arm: str
    requests: int
    within_slo: int
    errors: int
    p95_s: float
    gpu_seconds: float
    decided_s: float | None  # burst start -> first count above 1
    serving_s: float | None  # burst start -> a second replica serving
    peak: int
    back_s: float | None  # load stopped -> count back at 1
    writers: set[str]  # who wrote the count: field managers of spec.replicas via /scale, or of status
    seconds: float
    timeline: list[tuple[float, int, int]] = field(default_factory=list)  # (s from burst start, count, serving)

    @property
    def attainment(self) -> float:
        return self.within_slo / self.requests if self.requests else float("nan")

    @property
    def goodput(self) -> float:
        return self.within_slo / self.seconds

    @property
    def starved(self) -> bool:
        """Fewer answers than half of what one replica serves alone (2 at a time, ~0.4 s each): the
        harness itself (simulator, Prometheus) did not get the CPU, so the run measured nothing."""
        return self.requests < 0.5 * ONE_REPLICA_PER_S * self.seconds


def mrs_manifest(name: str, selector: dict[str, Any], arm: str, prom_url: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "servedName": name},
        "gpu": {"product": H100},
        "replicas": 1,
        "placement": {**selector, "spreadAcross": "None"},
        # The simulated pods' in-flight count cannot be read at their IPs: a replica waits out the drain.
        "lifecycle": {"drainTimeoutSeconds": 3, "restartBackoffSeconds": 2, "maxRestartBackoffSeconds": 8},
    }
    if arm == "agentfleet":
        spec["autoscaling"] = {
            "enabled": True,
            "minReplicas": 1,
            "maxReplicas": MAX_REPLICAS,
            "targetQueueDepthPerReplica": TARGET,
            "windowSeconds": PERIOD,
            "evaluationPeriodSeconds": PERIOD,
            "scaleUpStabilizationSeconds": 0,
            "scaleDownStabilizationSeconds": DOWN_WINDOW,
            "maxScaleUpStep": UP_STEP,
            "maxScaleDownStep": MAX_REPLICAS,
            "goodput": {"ttftMilliseconds": 2500, "timePerOutputTokenMilliseconds": 100, "targetFraction": 0.9},
            "prometheusURL": prom_url,
        }
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelReplicaSet", "metadata": {"name": name}, "spec": spec}


def waiting_query(ns: str, name: str) -> str:
    return f'sum(vllm:num_requests_waiting{{namespace="{ns}",model_name="{name}"}})'


def scaled_object(name: str, ns: str, prom_url: str) -> dict[str, Any]:
    """KEDA on the same query and target, with HPA's default scale-up and the arms' down window."""
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelReplicaSet", "name": name},
            "minReplicaCount": 1,
            "maxReplicaCount": MAX_REPLICAS,
            "pollingInterval": PERIOD,
            "cooldownPeriod": DOWN_WINDOW,
            "advanced": {
                "horizontalPodAutoscalerConfig": {
                    "behavior": {
                        "scaleUp": {
                            "stabilizationWindowSeconds": 0,
                            "selectPolicy": "Max",
                            "policies": [
                                {"type": "Pods", "value": UP_STEP, "periodSeconds": PERIOD},
                                {"type": "Percent", "value": 100, "periodSeconds": PERIOD},
                            ],
                        },
                        "scaleDown": {
                            "stabilizationWindowSeconds": DOWN_WINDOW,
                            "policies": [{"type": "Percent", "value": 100, "periodSeconds": PERIOD}],
                        },
                    }
                }
            },
            "triggers": [
                {
                    "type": "prometheus",
                    "metadata": {
                        "serverAddress": prom_url,
                        "query": waiting_query(ns, name),
                        "threshold": str(TARGET),
                        "activationThreshold": "1",
                    },
                }
            ],
        },
    }


class Replay(threading.Thread):
    """The bench's KedaQueue as a controller: every PERIOD the query KEDA runs, the bench's count,
    written through the scale subresource as the HPA controller writes it."""

    def __init__(self, api: CustomObjectsApi, prom: Any, ns: str, name: str) -> None:
        super().__init__(name="bench-replay", daemon=True)
        self.api, self.prom, self.ns, self.name = api, prom, ns, name
        self.policy = KedaQueue(TARGET, min_replicas=1)
        self.halt = threading.Event()
        self.writes: list[tuple[float, int, int]] = []  # (monotonic, from, to)

    def run(self) -> None:
        while not self.halt.wait(PERIOD):
            rows = self.prom.query(waiting_query(self.ns, self.name))
            waiting = float(rows[0]["value"][1]) if rows else 0.0
            # The API client, not kubectl: a kubectl process takes seconds to start on a busy machine.
            current = int(
                self.api.get_namespaced_custom_object_scale(GROUP, VERSION, self.ns, PLURAL, self.name)["spec"][
                    "replicas"
                ]
            )
            want = self.policy.desired(waiting, current, time.monotonic(), DOWN_WINDOW, MAX_REPLICAS)
            if want != current:
                body = {"spec": {"replicas": want}}
                self.api.patch_namespaced_custom_object_scale(
                    GROUP, VERSION, self.ns, PLURAL, self.name, body, field_manager=REPLAY_MANAGER
                )
                self.writes.append((time.monotonic(), current, want))

    def stop(self) -> None:
        self.halt.set()
        self.join(PERIOD + 30)


class Sampler(threading.Thread):
    """Every 0.5 s: the count the arm's controller set, and the replicas serving and backed."""

    def __init__(self, api: CustomObjectsApi, sim: Any, ns: str, name: str, from_status: bool) -> None:
        super().__init__(name="sampler", daemon=True)
        self.api, self.sim, self.ns, self.name, self.from_status = api, sim, ns, name, from_status
        self.samples: list[tuple[float, int, int, int]] = []  # (monotonic, count, serving, backed)
        self.halt = threading.Event()

    def count(self) -> int:
        obj = self.api.get_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, self.name)
        if self.from_status:
            return int((obj.get("status") or {}).get("desiredReplicas") or obj["spec"]["replicas"])
        return int(obj["spec"]["replicas"])

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                n = self.count()
            except Exception:  # noqa: BLE001 - an API hiccup: the sample is skipped, and counted
                n = -1
            self.samples.append((time.monotonic(), n, len(self.sim.endpoints()), len(self.sim.backing)))
            self.halt.wait(0.5)

    def watch_tail(self, stopped: float, seconds: float, until_back: bool) -> None:
        """Wait out the tail: ``seconds``, or with ``until_back`` until a sample after ``stopped`` reads 1."""
        deadline = time.monotonic() + max(0.0, seconds)
        while time.monotonic() < deadline:
            if until_back and any(t >= stopped and n == 1 for t, n, _, _ in self.samples[-4:]):
                return
            time.sleep(0.5)

    def stop(self) -> None:
        self.halt.set()
        self.join(10)


def wait(predicate: Any, timeout: float, desc: str) -> Any:
    return poll(predicate, timeout, desc)


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


def gpus_per_pod(core: CoreV1Api, ns: str, name: str) -> int:
    pods = core.list_namespaced_pod(ns, label_selector=f"agentfleet.io/modelreplicaset={name}").items
    return sum(int((c.resources.limits or {}).get("nvidia.com/gpu", 0)) for c in pods[0].spec.containers)


def writers(api: CustomObjectsApi, ns: str, name: str) -> set[str]:
    obj = api.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name)
    out = set()
    for m in obj["metadata"].get("managedFields", []):
        if m.get("subresource") == "scale":
            out.add(m["manager"])
        elif m.get("subresource") == "status" and "f:desiredReplicas" in json.dumps(m.get("fieldsV1", {})):
            out.add(m["manager"])
    return out


def run_arm(cluster: Any, ns: str, selector: dict[str, Any], arm: str, burst: Burst, name: str) -> ArmResult:
    kube = k8s_config.new_client_from_config(config_file=cluster.kubeconfig)
    core, api = CoreV1Api(kube), CustomObjectsApi(kube)
    fleets = PodBackedFleets(core, ns, QUEUEING_ENGINE)
    replay: Replay | None = None
    try:
        sim, prom = fleets.start(name)
        cluster.apply(mrs_manifest(name, selector, arm, prom.url), ns)
        wait(lambda: len(sim.endpoints()) == 1, 90, "one pod backed by a simulated replica")
        wait(lambda: prom.query(waiting_query(ns, name)), 60, "the replica's metrics in Prometheus")
        gpus = gpus_per_pod(core, ns, name)
        if arm == "agentfleet":
            wait(
                lambda: (
                    condition(cluster.json("-n", ns, "get", "mrs", name), "MetricsAvailable").get("status") == "True"
                ),
                60,
                "MetricsAvailable=True",
            )
        elif arm == "keda-hpa":
            cluster.apply(scaled_object(name, ns, prom.url), ns)
            wait(
                lambda: condition(cluster.json("-n", ns, "get", "scaledobject", name), "Ready").get("status") == "True",
                90,
                f"ScaledObject {name} Ready",
            )
            wait(
                lambda: cluster.run("-n", ns, "get", "hpa", f"keda-hpa-{name}", check=False).returncode == 0,
                60,
                "KEDA's HPA",
            )
        else:
            replay = Replay(api, prom, ns, name)
            replay.start()
        sampler = Sampler(api, sim, ns, name, from_status=arm == "agentfleet")
        sampler.start()
        t0 = time.monotonic()
        load = ClosedLoopLoad(sim, clients=burst.clients)
        time.sleep(burst.seconds)
        load.stop()
        stopped = time.monotonic()
        sampler.watch_tail(stopped, burst.tail - (stopped - t0 - burst.seconds), burst.until_back)
        sampler.stop()
        wrote = writers(api, ns, name)
    finally:
        if replay is not None:
            replay.stop()
        cluster.run(
            "-n", ns, "delete", "scaledobject", name, "--ignore-not-found", "--timeout=60s", check=False, timeout=90
        )
        cluster.run("-n", ns, "delete", "mrs", name, "--ignore-not-found", "--timeout=60s", check=False, timeout=90)
        fleets.stop()
    return summarize(arm, burst, load, sampler.samples, t0, stopped, gpus, wrote)


def summarize(
    arm: str,
    burst: Burst,
    load: ClosedLoopLoad,
    samples: list[tuple[float, int, int, int]],
    t0: float,
    stopped: float,
    gpus: int,
    wrote: set[str],
) -> ArmResult:
    lat = sorted(x for sent, x in load.latencies if t0 <= sent < t0 + burst.seconds)
    ok = [s for s in samples if s[1] >= 0]
    gpu_s = sum((b[0] - a[0]) * a[3] * gpus for a, b in zip(samples, samples[1:], strict=False))
    return ArmResult(
        arm=arm,
        requests=len(lat),
        within_slo=sum(1 for x in lat if x <= SLO_S),
        errors=load.errors,
        p95_s=lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else float("nan"),
        gpu_seconds=gpu_s,
        decided_s=next((t - t0 for t, n, _, _ in ok if n > 1), None),
        serving_s=next((t - t0 for t, _, s, _ in ok if s > 1), None),
        peak=max((n for _, n, _, _ in ok), default=0),
        back_s=next((t - stopped for t, n, _, _ in ok if t >= stopped and n == 1), None),
        writers=wrote,
        seconds=burst.seconds,
        timeline=[(t - t0, n, s) for t, n, s, _ in samples],
    )


def compare(
    cluster: Any,
    ns: str,
    selector: dict[str, Any],
    burst: Burst,
    arms: tuple[str, ...] = ARMS,
    repeats: int = 1,
    keda_bin: Path | None = None,
) -> list[ArmResult]:
    """Each arm ``repeats`` times, interleaved (the machine's load drifts), in namespace ``ns``."""
    keda = Keda(cluster, ns, keda_bin).start() if "keda-hpa" in arms and keda_bin else None
    out = []
    try:
        for r in range(repeats):
            for arm in arms:
                res = run_arm(cluster, ns, selector, arm, burst, f"{arm}-{r}")
                print(row(res), flush=True)
                out.append(res)
    finally:
        if keda is not None:
            keda.stop()
    return out


def fmt(x: float | None, spec: str = ".0f") -> str:
    return "-" if x is None else format(x, spec)


def md_row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


COLUMNS = ["within SLO", "goodput (req/s)", "GPU-s", "count > 1 after (s)", "2nd replica serving after (s)", "peak"]
COLUMNS.append("back to 1 after stop (s)")


def row(r: ArmResult) -> str:
    cells = [r.arm, r.requests, f"{r.attainment:.1%}", f"{r.goodput:.2f}", f"{r.p95_s:.2f}", f"{r.gpu_seconds:.0f}"]
    cells += [fmt(r.decided_s, ".1f"), fmt(r.serving_s, ".1f"), r.peak, fmt(r.back_s, ".1f")]
    return md_row(cells) + (" starved" if r.starved else "")


HEADER = md_row(["arm", "requests", *COLUMNS[:2], "p95 (s)", *COLUMNS[2:]]) + "\n" + "|---" * 10 + "|"


def spread(xs: list[float]) -> str:
    return f"{statistics.fmean(xs):.1f} [{min(xs):.1f}..{max(xs):.1f}]" if xs else "-"


def table(results: list[ArmResult]) -> str:
    """Per arm: mean [min..max] over the repeats, starved runs left out (and counted)."""
    lines = [md_row(["arm", "runs (starved)", *COLUMNS]), "|---" * 9 + "|"]
    for arm in dict.fromkeys(r.arm for r in results):
        every = [r for r in results if r.arm == arm]
        rs = [r for r in every if not r.starved]

        def of(get: Any, rs: list[ArmResult] = rs) -> str:
            return spread([float(x) for r in rs if (x := get(r)) is not None])

        lines.append(
            md_row(
                [
                    arm,
                    f"{len(rs)} ({len(every) - len(rs)})",
                    of(lambda r: 100 * r.attainment) + " %",
                    of(lambda r: r.goodput),
                    of(lambda r: r.gpu_seconds),
                    of(lambda r: r.decided_s),
                    of(lambda r: r.serving_s),
                    of(lambda r: r.peak),
                    of(lambda r: r.back_s),
                ]
            )
        )
    return "\n".join(lines)


def main() -> None:
    from e2e.harness import operator as fx
    from e2e.harness.cluster import bench_namespace, cluster_up
    from e2e.harness.neighbours import install_thirdparty_crds, keda_bin_dir

    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--clients", type=int, default=Burst.clients)
    ap.add_argument("--seconds", type=float, default=Burst.seconds)
    ap.add_argument("--arms", default=",".join(ARMS))
    args = ap.parse_args()
    burst = Burst(args.clients, args.seconds)
    with (
        cluster_up() as cluster,
        fx.running_operator(cluster, "--resync-seconds", "20", "--quiet", name="bench-real-hpa"),
    ):
        install_thirdparty_crds(cluster)
        with bench_namespace(cluster, "bench-hpa") as (ns, pool):
            pool.add("h100", count=2, gpus=8)
            began = time.monotonic()
            print(f"burst: {burst.clients} closed-loop clients for {burst.seconds:.0f} s", end="")
            print(f", watched {burst.tail:.0f} s after; SLO {SLO_S} s a request")
            print(HEADER)
            results = compare(
                cluster, ns, pool.selector, burst, tuple(args.arms.split(",")), args.repeats, keda_bin_dir()
            )
            print("\n" + table(results))
            print(f"\n({time.monotonic() - began:.0f} s wall)")


if __name__ == "__main__":
    main()
