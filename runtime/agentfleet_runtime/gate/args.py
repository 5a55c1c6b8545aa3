"""The gate's command line, kept apart from its imports: ``python -m agentfleet_runtime`` builds
every subcommand's parser, and a worker's start should not load the scorer."""

from __future__ import annotations

import argparse

# In-cluster defaults: the API's Service and the pod's service account mount.
IN_CLUSTER_API = "https://kubernetes.default.svc"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--fleet", required=True, help="the AgentFleet's name")
    p.add_argument("--namespace", required=True, help="its namespace (where the results ConfigMap is)")
    p.add_argument("--results-configmap", required=True, help="the ConfigMap the results are written to")
    p.add_argument("--task-set", required=True, help="task set file (YAML or JSONL, agentfleet eval's format)")
    p.add_argument("--part", choices=("dev", "heldout", "all"), default="heldout", help="part of the task set to run")
    p.add_argument("--sample", type=int, default=0, help="tasks, stratified by (part, kind); 0: every task")
    p.add_argument("--seed", type=int, default=0, help="the sample's seed")
    p.add_argument("--concurrency", type=int, default=2, help="tasks answered at once (each on both versions)")
    p.add_argument("--timeout-seconds", type=float, required=True, help="the gate's wall time from its start")
    p.add_argument("--max-tokens", type=int, required=True, help="tokens both versions may spend together")
    p.add_argument(
        "--side-effects",
        choices=("Skip", "DryRunHeader"),
        default="Skip",
        help="side-effect tools in gate tasks: never called, or HTTP tools called marked as a dry run",
    )
    p.add_argument("--current-config", required=True, help="the current version's runtime.yaml (fleet FLEET~current)")
    p.add_argument("--candidate-config", required=True, help="the candidate's runtime.yaml (fleet FLEET~candidate)")
    p.add_argument("--kube-api", default=IN_CLUSTER_API, help="Kubernetes API URL (default: in-cluster)")
    p.add_argument("--kube-token-file", default=f"{SERVICE_ACCOUNT_DIR}/token", help="bearer token file")
    p.add_argument("--kube-ca", default=f"{SERVICE_ACCOUNT_DIR}/ca.crt", help="CA bundle of the API's certificate")
