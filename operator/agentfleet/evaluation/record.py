"""Recording a run's summary in the AgentFleet's status (``status.evaluation``).

Written by server-side apply of the status subresource under its own field manager,
``agentfleet-eval``: the AgentFleet controller and the autoscaler apply their own status fields
under theirs, so none of them removes or fights over the others' fields.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from agentfleet_contract.agentfleet import EvaluationSummary

FIELD_MANAGER = "agentfleet-eval"


def evaluation_summary(summary: dict[str, Any], task_set: str, configuration: str | None = None, now: dt.datetime | None = None) -> EvaluationSummary:
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
    )


def status_patch(name: str, namespace: str, ev: EvaluationSummary) -> dict[str, Any]:
    """The apply body: only status.evaluation, so this manager owns nothing else. Pure."""
    return {
        "apiVersion": "agentfleet.io/v1alpha1",
        "kind": "AgentFleet",
        "metadata": {"name": name, "namespace": namespace},
        "status": {"evaluation": ev.model_dump(by_alias=True, exclude_none=True)},
    }


def record(name: str, namespace: str, ev: EvaluationSummary, kubeconfig: str | None = None) -> dict[str, Any]:
    """Apply the summary to the fleet's status; returns the object the API server answered."""
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    from agentfleet.kube import Kube

    try:
        k8s_config.load_kube_config(config_file=kubeconfig)
    except k8s_config.ConfigException:
        k8s_config.load_incluster_config()
    return Kube(k8s.ApiClient()).apply_status(status_patch(name, namespace, ev), manager=FIELD_MANAGER)
