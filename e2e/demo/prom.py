"""The demo's Prometheus: what it scrapes, with the labels the operator's queries select on.

In a cluster, Prometheus discovers pods and labels each series with the pod's ``namespace`` and
``pod`` (the chart's PodMonitors); the operator's autoscaler then reads a ModelReplicaSet's vLLM
series by ``namespace="NS",model_name="MODEL"`` per ``pod`` (AGENTFLEET_PROMETHEUS_MATCHERS,
AGENTFLEET_PROMETHEUS_REPLICA_LABEL) and an AgentFleet's workers by
``namespace="NS",agentfleet="FLEET"`` (AGENTFLEET_WORKER_MATCHERS). The targets are listed in two
file_sd files carrying exactly those labels (Debian's Prometheus has no Kubernetes discovery): on
the real node, the namespace's pods (:func:`discover`, ``python -m e2e.demo.prom``); in the
autoscaling tier (e2e/harness/autoscale.py), its simulated replicas. Prometheus re-reads the files when
they change, so replicas that come and go (the autoscaler's) need no restart of Prometheus.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

REPLICAS_SD = "replicas.json"
WORKERS_SD = "workers.json"
# Often enough that a 15 s autoscaler evaluation sees fresh gauges; 1 s would cost CPU the demo needs.
SCRAPE_INTERVAL = "2s"


def scrape_config(directory: Path, interval: str = SCRAPE_INTERVAL) -> dict[str, Any]:
    """prometheus.yml (as a dict) scraping the replicas and the workers listed in ``directory``."""
    jobs = []
    for job, sd in (("replicas", REPLICAS_SD), ("workers", WORKERS_SD)):
        jobs.append(
            {
                "job_name": job,
                "scrape_interval": interval,
                "file_sd_configs": [{"files": [str(directory / sd)], "refresh_interval": "1s"}],
            }
        )
    return {"global": {"scrape_interval": interval, "evaluation_interval": interval}, "scrape_configs": jobs}


def replica_targets(namespace: str, mrs: str, pods: dict[str, str]) -> list[dict[str, Any]]:
    """file_sd groups for a ModelReplicaSet's replicas: pod name -> host:port of its /metrics."""
    return [
        {"targets": [address], "labels": {"namespace": namespace, "pod": pod, "modelreplicaset": mrs}}
        for pod, address in sorted(pods.items())
    ]


def worker_targets(namespace: str, fleet: str, workers: dict[str, str]) -> list[dict[str, Any]]:
    """file_sd groups for an AgentFleet's workers: worker name -> host:port of its /metrics."""
    return [
        {"targets": [address], "labels": {"namespace": namespace, "pod": name, "agentfleet": fleet}}
        for name, address in sorted(workers.items())
    ]


def write_sd(path: Path, groups: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(groups, indent=1))
    os.replace(tmp, path)  # atomic: Prometheus never reads half a file


def pod_targets(pods: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """file_sd groups (replicas, workers) for the Running pods of a namespace, as a cluster's
    Prometheus discovers them for the chart's PodMonitors: each ModelReplicaSet's replicas at their
    ``http`` port, each AgentFleet's workers at their ``metrics`` port. Pure."""
    replicas: list[dict[str, Any]] = []
    workers: list[dict[str, Any]] = []
    for p in pods:
        meta, status = p["metadata"], p.get("status") or {}
        labels = meta.get("labels") or {}
        if meta.get("deletionTimestamp") or status.get("phase") != "Running" or not status.get("podIP"):
            continue
        ports = {cp.get("name"): cp["containerPort"] for c in p["spec"]["containers"] for cp in c.get("ports") or []}
        mrs, fleet = labels.get("agentfleet.io/modelreplicaset"), labels.get("agentfleet.io/agentfleet")
        if mrs and "http" in ports and labels.get("agentfleet.io/role") != "worker":
            replicas += replica_targets(meta["namespace"], mrs, {meta["name"]: f"{status['podIP']}:{ports['http']}"})
        if fleet and labels.get("app.kubernetes.io/component") == "worker" and "metrics" in ports:
            address = f"{status['podIP']}:{ports['metrics']}"
            workers += worker_targets(meta["namespace"], fleet, {meta["name"]: address})
    return replicas, workers


def discover(namespace: str, kubectl: list[str], directory: Path, interval: float = 2.0) -> None:
    """Lists NAMESPACE's pods every INTERVAL and rewrites the two file_sd files when their targets
    change (Debian's Prometheus has no Kubernetes service discovery)."""
    import subprocess
    import time

    last = None
    while True:
        proc = subprocess.run([*kubectl, "-n", namespace, "get", "pods", "-o", "json"], capture_output=True, timeout=60)
        if proc.returncode == 0:
            groups = pod_targets(json.loads(proc.stdout)["items"])
            if groups != last:
                write_sd(directory / REPLICAS_SD, groups[0])
                write_sd(directory / WORKERS_SD, groups[1])
                last = groups
        time.sleep(interval)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m e2e.demo.prom", description=discover.__doc__)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--kubectl", required=True)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--dir", required=True, type=Path)
    a = parser.parse_args()
    discover(a.namespace, [a.kubectl, "--kubeconfig", a.kubeconfig], a.dir)
