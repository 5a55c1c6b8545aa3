#!/usr/bin/env python3
"""Reconcile latency of the ModelReplicaSet controller on the local control plane (prints figures;
not a test).

For 100 ModelReplicaSets (1-2 replicas of TP 1, 2 or 4 each) on a pool of kwok nodes: the time
from the create request to every replica pod of that object being bound to a node (goal: p50 under
1 s, p99 under 3 s), and to status Ready=True (kwok makes bound pods Ready at once, so that adds
only the status round trip). Three arrival patterns:
  kubectl  `kubectl apply -f` of one file holding all 100 (what a user or a CI job runs): kubectl
           applies them one after another; each object's clock starts when kubectl sends its
           first request for it (read from kubectl -v=6's request log)
  paced    one create every 1/rate s (a steady stream of changes)
  burst    all 100 created at once from 8 threads (a stress case: harder than any one client
           does; Argo CD applies a sync's objects in waves with a bounded number of kubectl runs)

Baseline from the same run, for each pattern: the control plane's floor. The operator is stopped
and the bench itself creates each object's pods the moment the object's create returns (kubectl
mode: the moment its watch sees the object, since kubectl gives no hook): the same
pods (the operator's own planner and renderer, planned before the clock starts), created by as many
threads as the operator has reconcile workers, so the figure is what an operator with zero cost and
zero latency would reach on this machine. The ratio operator /
floor is the operator's share; what is left is the API server, etcd and the scheduler on these
cores.

The operator runs as a real subprocess (python -m agentfleet.manager), as in the e2e tests; the
cluster is the one e2e/cluster/cluster.sh manages under the AGENTFLEET_* environment (started if down).

    .venv/bin/python -m e2e.bench.reconcile_bench [--count 100] [--rate 4] [--nodes 48] [--workers 16]
                                                  [--modes kubectl,paced,burst]
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import re
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from agentfleet_contract.percentiles import interpolated_percentile as pct
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch

from e2e.harness import operator as fx
from e2e.harness.cluster import bench_namespace, cluster_up

MRS_LABEL = "agentfleet.io/modelreplicaset"


class Recorder:
    """Watches the namespace's replica pods and ModelReplicaSets; records first-seen times."""

    def __init__(self, api: k8s.ApiClient, ns: str, on_added=None) -> None:
        self.on_added = on_added  # called with each ModelReplicaSet when first seen
        self.core = k8s.CoreV1Api(api)
        self.custom = k8s.CustomObjectsApi(api)
        self.ns = ns
        self.created: dict[str, tuple[str, float]] = {}  # pod -> (mrs, time first seen)
        self.bound: dict[str, tuple[str, float]] = {}  # pod -> (mrs, time)
        self.ready: dict[str, float] = {}  # mrs -> time Ready=True first seen
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._pods, daemon=True),
            threading.Thread(target=self._mrs, daemon=True),
        ]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()

    def _pods(self) -> None:
        while not self._stop.is_set():
            w = k8s_watch.Watch()
            for ev in w.stream(
                self.core.list_namespaced_pod,
                self.ns,
                label_selector=MRS_LABEL,
                timeout_seconds=30,
                _request_timeout=40,
            ):
                if self._stop.is_set():
                    w.stop()
                    return
                pod = ev["object"]
                mrs = (pod.metadata.labels or {}).get(MRS_LABEL, "")
                now = time.monotonic()
                self.created.setdefault(pod.metadata.name, (mrs, now))
                if pod.spec.node_name and pod.metadata.name not in self.bound:
                    self.bound[pod.metadata.name] = (mrs, now)

    def _mrs(self) -> None:
        while not self._stop.is_set():
            w = k8s_watch.Watch()
            for ev in w.stream(
                self.custom.list_namespaced_custom_object,
                "agentfleet.io",
                "v1alpha1",
                self.ns,
                "modelreplicasets",
                timeout_seconds=30,
                _request_timeout=40,
            ):
                if self._stop.is_set():
                    w.stop()
                    return
                obj = ev["object"]
                name = obj["metadata"]["name"]
                if ev["type"] == "ADDED" and self.on_added is not None:
                    self.on_added(obj)
                conds = (obj.get("status") or {}).get("conditions") or []
                if name not in self.ready and any(c["type"] == "Ready" and c["status"] == "True" for c in conds):
                    self.ready[name] = time.monotonic()


def fleet(count: int, seed: int, gpus: int) -> list[tuple[str, int, int]]:
    rnd = random.Random(seed)
    out = []
    for i in range(count):
        out.append((f"m{i:03d}", rnd.choice([1, 1, 2]), rnd.choice([1, 2, 4])))
    while sum(r * tp for _, r, tp in out) > gpus:  # keep everything placeable: latency, not capacity
        i = max(range(count), key=lambda k: out[k][1] * out[k][2])
        n, r, tp = out[i]
        out[i] = (n, r, max(1, tp // 2)) if tp > 1 else (n, max(1, r - 1), tp)
    return out


def body(name: str, replicas: int, tp: int, pool) -> dict:
    return {
        "apiVersion": "agentfleet.io/v1alpha1",
        "kind": "ModelReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "servedName": name},
            "engine": {"tensorParallelSize": tp, "maxModelLen": 8192},
            "gpu": {"product": fx.H100},
            "placement": {**pool.selector, "spreadAcross": "Node"},
            "replicas": replicas,
        },
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def control_plane_cpu(cluster) -> dict[str, float]:
    """CPU seconds so far of the cluster's processes (those whose command line names its state
    directory), by program: where a pattern's cost lands besides the operator."""
    marker = str(Path(cluster.kubeconfig).parent)
    out: dict[str, float] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if marker.encode() not in b" ".join(argv):
                continue
            prog = os.path.basename(argv[0].decode())
            out[prog] = out.get(prog, 0.0) + cpu_seconds(int(pid))
        except (OSError, ValueError, IndexError):
            continue
    return out


def floor_pods(cluster, ns: str, pool, specs) -> dict[str, Any]:
    """For the floor: every object's replicas planned at once by the operator's planner over the
    pool's live nodes, as a function from the created object to its rendered pods."""
    from agentfleet_contract.modelreplicaset import ModelReplicaSet, ModelReplicaSetSpec

    from agentfleet.placement import inventory_from_k8s, plan, requests_for
    from agentfleet.render.modelreplicaset import render_pod, spec_hash
    from agentfleet.replica_rollout import new_replica_names

    models = {name: ModelReplicaSetSpec.model_validate(body(name, r, tp, pool)["spec"]) for name, r, tp in specs}
    nodes = inventory_from_k8s(cluster.json("get", "nodes")["items"], [], "nvidia.com/gpu")
    requests = [
        req
        for name, r, _ in specs
        for req in requests_for(ns, name, models[name], new_replica_names(name, spec_hash(models[name]), (), r))
    ]
    result = plan(nodes, requests)
    assert not result.unplaced, f"the floor's plan left {len(result.unplaced)} replicas unplaced"
    by_owner: dict[str, list] = {}
    for a in result.placed:
        by_owner.setdefault(a.owner.split("/", 1)[1], []).append(a)

    def pods_of(created: dict[str, Any]) -> list[dict[str, Any]]:
        name = created["metadata"]["name"]
        mrs = ModelReplicaSet(metadata=created["metadata"], spec=models[name])
        return [render_pod(mrs, a, i) for a in by_owner[name] for i in range(len(a.nodes))]

    return {"pods_of": pods_of}


# kubectl -v=6: I1122 02:48:34.741001   27955 round_trippers.go:632] "Response" verb="GET"
# url=".../modelreplicasets/NAME" ... milliseconds=2
_KLOG = re.compile(
    r'^I(\d\d)(\d\d) (\d\d:\d\d:\d\d\.\d+)\s.*"Response" verb="GET" url="[^"]*/modelreplicasets/([^"?/]+)[^"]*".* '
    r"milliseconds=(\d+)"
)


def kubectl_apply(cluster, ns: str, bodies: list[dict]) -> dict[str, float]:
    """`kubectl apply -f` one file with every object; returns, per object, when kubectl sent its
    first request for it (its GET before the create), on time.monotonic()'s clock."""
    docs = [{**b, "metadata": {**b["metadata"], "namespace": ns}} for b in bodies]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump_all(docs, f)
        f.flush()
        wall_minus_mono = time.time() - time.monotonic()
        proc = cluster.run("apply", "-f", f.name, "-v=6", timeout=300)
    year = datetime.datetime.now().year
    starts: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        m = _KLOG.match(line)
        if not m:
            continue
        month, day, clock, name, ms = m.groups()
        # klog writes local time
        wall = datetime.datetime.strptime(f"{year}-{month}-{day} {clock}", "%Y-%m-%d %H:%M:%S.%f").timestamp()
        starts.setdefault(name, wall - int(ms) / 1e3 - wall_minus_mono)
    missing = [b["metadata"]["name"] for b in bodies if b["metadata"]["name"] not in starts]
    assert not missing, f"no request of kubectl's found for {missing[:3]}..."
    return starts


def run_mode(
    mode: str,
    cluster,
    api,
    ns: str,
    pool,
    op,
    specs,
    rate: float,
    floor: dict[str, Any] | None = None,
    workers: int = 16,
) -> dict:
    custom = k8s.CustomObjectsApi(api)
    core = k8s.CoreV1Api(api)
    pod_pool = ThreadPoolExecutor(workers)

    floored: set[str] = set()

    def floor_on_added(obj: dict) -> None:
        if obj["metadata"]["name"] in floored:  # a re-listed watch sees it again
            return
        floored.add(obj["metadata"]["name"])
        for pod in floor["pods_of"](obj):
            pod_pool.submit(core.create_namespaced_pod, ns, pod)

    rec = Recorder(api, ns, on_added=floor_on_added if floor is not None and mode == "kubectl" else None)
    rec.start()
    time.sleep(1.0)  # watches established
    t0: dict[str, float] = {}
    cpu0 = cpu_seconds(op.proc.pid) if op else 0.0
    cp0 = control_plane_cpu(cluster)

    def create(s) -> None:
        name, replicas, tp = s
        t0[name] = time.monotonic()
        created = custom.create_namespaced_custom_object(
            "agentfleet.io", "v1alpha1", ns, "modelreplicasets", body(name, replicas, tp, pool)
        )
        if floor is not None:
            # On threads of their own, as an operator's would be: the objects arrive as fast as
            # they would with the operator running.
            for pod in floor["pods_of"](created):
                pod_pool.submit(core.create_namespaced_pod, ns, pod)

    start = time.monotonic()
    if mode == "kubectl":
        t0.update(kubectl_apply(cluster, ns, [body(name, replicas, tp, pool) for name, replicas, tp in specs]))
    elif mode == "paced":
        for i, s in enumerate(specs):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            create(s)
    else:
        with ThreadPoolExecutor(8) as ex:
            list(ex.map(create, specs))
    if mode != "kubectl":
        pod_pool.shutdown(wait=True)
    want = {name: replicas for name, replicas, _ in specs}
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        per = {}
        for mrs, _ in rec.bound.values():
            per[mrs] = per.get(mrs, 0) + 1
        if all(per.get(n, 0) >= r for n, r in want.items()) and (floor is not None or len(rec.ready) >= len(want)):
            break
        time.sleep(0.2)
    elapsed = time.monotonic() - start
    pod_pool.shutdown(wait=True)
    cpu = cpu_seconds(op.proc.pid) - cpu0 if op else 0.0
    cp1 = control_plane_cpu(cluster)
    control_plane = {k: v - cp0.get(k, 0.0) for k, v in cp1.items()}
    rec.stop()

    bound_at: dict[str, float] = {}
    for mrs, t in rec.bound.values():
        bound_at[mrs] = max(bound_at.get(mrs, 0.0), t)
    lat_bound = [
        bound_at[n] - t0[n]
        for n in want
        if n in bound_at and sum(1 for m, _ in rec.bound.values() if m == n) >= want[n]
    ]
    lat_ready = [rec.ready[n] - t0[n] for n in want if n in rec.ready]
    # Where the time goes: the operator (apply -> its last pod created) vs the scheduler (pod
    # created -> bound), per pod.
    created_at: dict[str, float] = {}
    for mrs, t in rec.created.values():
        created_at[mrs] = max(created_at.get(mrs, 0.0), t)
    lat_created = [created_at[n] - t0[n] for n in want if n in created_at]
    sched = [rec.bound[p][1] - rec.created[p][1] for p in rec.bound if p in rec.created]
    return {
        "bound": lat_bound,
        "ready": lat_ready,
        "created": lat_created,
        "sched": sched,
        "missing": len(want) - len(lat_bound),
        "elapsed": elapsed,
        "cpu": cpu,
        "control_plane": control_plane,
    }


def clear(cluster, ns: str) -> None:
    cluster.run("-n", ns, "delete", "mrs", "--all", "--wait=true", timeout=300)
    cluster.wait_for(
        lambda: not cluster.json("-n", ns, "get", "pods")["items"], timeout=180, interval=1, desc="bench pods gone"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--rate", type=float, default=4.0, help="creates per second in the paced mode")
    ap.add_argument("--nodes", type=int, default=48, help="kwok nodes x 8 GPUs in the bench pool")
    ap.add_argument(
        "--workers", type=int, default=16, help="operator reconcile workers, and the floor's pod-creating threads"
    )
    ap.add_argument("--modes", default="kubectl,paced,burst")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    with cluster_up() as cluster:
        # An earlier run's namespace still being deleted would load the API server under this one.
        cluster.wait_for(
            lambda: (
                not [
                    n
                    for n in cluster.json("get", "namespaces")["items"]
                    if n["metadata"]["name"].startswith("bench-rec-")
                ]
            ),
            timeout=300,
            interval=2,
            desc="earlier bench namespaces gone",
        )
        run_all(cluster, args)


def run_all(cluster, args) -> None:
    with bench_namespace(cluster, "bench-rec") as (ns, pool):
        pool.add("gpu", count=args.nodes)
        specs = fleet(args.count, args.seed, args.nodes * 8)
        api = k8s_config.new_client_from_config(config_file=cluster.kubeconfig)
        replicas = sum(r for _, r, _ in specs)
        gpus = sum(r * tp for _, r, tp in specs)
        print(
            f"== reconcile latency: {args.count} ModelReplicaSets ({replicas} replicas, {gpus} GPUs) on "
            f"{args.nodes} kwok nodes x 8 GPUs"
        )
        print(
            f"   operator: python -m agentfleet.manager --workers {args.workers}; {os.cpu_count()} CPUs shared "
            f"with the control plane; load {os.getloadavg()[0]:.1f}"
        )
        print(
            "   mode                  apply -> all replica pods bound (s)         apply -> status Ready=True (s)  "
            "  wall    operator CPU"
        )
        print(
            "                         p50     p90     p99     max                  p50     p99     max            "
            "  s       s"
        )
        modes = args.modes.split(",")
        floors = {}
        for mode in modes:  # the baseline first, with no operator running
            floors[mode] = r = run_mode(
                mode,
                cluster,
                api,
                ns,
                pool,
                None,
                specs,
                args.rate,
                floor=floor_pods(cluster, ns, pool, specs),
                workers=args.workers,
            )
            report(mode_label(mode, args.rate) + " floor", r, None)
            clear(cluster, ns)
        with fx.running_operator(
            cluster,
            "--workers",
            str(args.workers),
            "--quiet",
            *(["--log-level", "DEBUG"] if os.environ.get("BENCH_DEBUG") else []),
        ) as op:
            for mode in modes:
                r = run_mode(mode, cluster, api, ns, pool, op, specs, args.rate)
                report(mode_label(mode, args.rate) + " operator", r, floors[mode])
                clear(cluster, ns)


def mode_label(mode: str, rate: float) -> str:
    return {"paced": f"paced {rate:g}/s", "kubectl": "kubectl apply -f"}.get(mode, mode)


def report(label: str, r: dict, floor: dict | None) -> None:
    b, rd = r["bound"], r["ready"]
    ready = (
        f"{pct(rd, 50):6.2f}  {pct(rd, 99):6.2f}  {max(rd, default=float('nan')):6.2f}"
        if rd
        else f"{'-':>6}  {'-':>6}  {'-':>6}"
    )
    cpu = f"{r['cpu']:6.1f}" if floor is not None else f"{'-':>6}"
    print(
        f"   {label:<20} {pct(b, 50):6.2f}  {pct(b, 90):6.2f}  {pct(b, 99):6.2f}  {max(b, default=float('nan')):6.2f}"
        f"               {ready}          {r['elapsed']:6.1f}  {cpu}"
        + (f"   ({r['missing']} never bound)" if r["missing"] else ""),
        flush=True,
    )
    c, sc = r["created"], r["sched"]
    who = "operator" if floor is not None else "bench"
    print(
        f"   {'':<20} of which apply -> last pod created ({who}): p50 {pct(c, 50):.2f}  p99 {pct(c, 99):.2f};"
        f" pod created -> bound (kube-scheduler): p50 {pct(sc, 50):.2f}  p99 {pct(sc, 99):.2f}"
    )
    n = len(r["bound"]) or 1
    cp = r["control_plane"]
    print(
        f"   {'':<20} CPU ms per object: "
        + "  ".join(f"{k} {1e3 * v / n:.0f}" for k, v in sorted(cp.items(), key=lambda kv: -kv[1]) if v > 0.05)
    )
    if floor is not None:
        fb = floor["bound"]
        print(
            f"   {'':<20} operator / floor: p50 {pct(b, 50) / pct(fb, 50):.2f}x  p99 {pct(b, 99) / pct(fb, 99):.2f}x;"
            " goal p50 < 1 s, p99 < 3 s: "
            f"{'met' if pct(b, 50) < 1 and pct(b, 99) < 3 and not r['missing'] else 'NOT met'}"
            f" (floor: {'met' if pct(fb, 50) < 1 and pct(fb, 99) < 3 and not floor['missing'] else 'NOT met'})",
            flush=True,
        )


if __name__ == "__main__":
    main()
