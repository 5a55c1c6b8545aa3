"""Recording a run's summary in the AgentFleet's status (``status.evaluation``), and reading the
fleet's runtime configuration (its ConfigMap) for the baselines.

Written by server-side apply of the status subresource under its own field manager,
``agentfleet-eval``: the AgentFleet controller and the autoscaler apply their own status fields
under theirs, so none of them removes or fights over the others' fields.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import yaml
from agentfleet_contract.agentfleet import EvaluationSummary, FailureCauses

from agentfleet.render.agentfleet import CONFIG_KEY, config_map_name

FIELD_MANAGER = "agentfleet-eval"


def evaluation_summary(
    summary: dict[str, Any], task_set: str, configuration: str | None = None, now: dt.datetime | None = None
) -> EvaluationSummary:
    """The status block for a run's summary (scoring.summarize). Pure."""
    when = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    p95 = summary.get("latencyP95Seconds")
    return EvaluationSummary(
        task_set=task_set[:512],
        finished_at=when.isoformat().replace("+00:00", "Z"),
        tasks=summary["tasks"],
        success=round(summary.get("success") or 0.0, 4),
        grounded=None if summary.get("grounded") is None else round(summary["grounded"], 4),
        recall=None if summary.get("recall") is None else round(summary["recall"], 4),
        recall_k=summary.get("recallK"),
        p95_seconds=None if p95 is None else round(p95, 3),
        cost_per_task=summary.get("costPerTask"),
        configuration=configuration,
        failure_causes=FailureCauses.model_validate(summary["failureCauses"]) if "failureCauses" in summary else None,
    )


def status_patch(name: str, namespace: str, ev: EvaluationSummary) -> dict[str, Any]:
    """The apply body: only status.evaluation, so this manager owns nothing else. Pure."""
    return {
        "apiVersion": "agentfleet.io/v1alpha1",
        "kind": "AgentFleet",
        "metadata": {"name": name, "namespace": namespace},
        "status": {"evaluation": ev.model_dump(by_alias=True, exclude_none=True)},
    }


def _api_client(kubeconfig: str | None) -> Any:
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    try:
        k8s_config.load_kube_config(config_file=kubeconfig)
    except k8s_config.ConfigException:
        k8s_config.load_incluster_config()
    return k8s.ApiClient()


def record(name: str, namespace: str, ev: EvaluationSummary, kubeconfig: str | None = None) -> dict[str, Any]:
    """Apply the summary to the fleet's status; returns the object the API server answered."""
    from agentfleet.kube import Kube

    return Kube(_api_client(kubeconfig)).apply_status(status_patch(name, namespace, ev), manager=FIELD_MANAGER)


def runtime_config_in(fleet: str, configmap: dict[str, Any] | None) -> dict[str, Any]:
    """The runtime configuration document a fleet's ConfigMap holds; ValueError naming what is
    missing. Pure."""
    text = ((configmap or {}).get("data") or {}).get(CONFIG_KEY)
    if not text:
        raise ValueError(f"ConfigMap {config_map_name(fleet)} has no {CONFIG_KEY} (the operator writes it)")
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict):
        raise ValueError(f"ConfigMap {config_map_name(fleet)}: {CONFIG_KEY} is not a YAML mapping")
    return doc


def fleet_runtime_config(fleet: str, namespace: str, kubeconfig: str | None = None) -> dict[str, Any]:
    """The fleet's runtime configuration, read from its ConfigMap (what its workers run with)."""
    from kubernetes import client as k8s

    cm = k8s.CoreV1Api(_api_client(kubeconfig)).read_namespaced_config_map(config_map_name(fleet), namespace)
    return runtime_config_in(fleet, k8s.ApiClient().sanitize_for_serialization(cm))
