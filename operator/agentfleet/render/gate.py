"""The evaluation gate's candidate: the changed spec's workers beside the serving ones, on a
private queue (docs/evaluation-gate.md). Pure.

The candidate is derived from what render_runtime renders for the changed spec, so it runs exactly
what would roll out: the same pod template, image, environment, keys and egress policy, with
three differences. Its runtime document names the fleet ``FLEET~candidate``, so every Redis key it
reads or writes (the task stream among them) is its own and no task API writes there: a tenant's
task never reaches an unpromoted version. Its pods carry the component ``candidate``, so the
serving Deployment's selector, the scale subresource and the PodDisruptionBudget never count them.
It has no task API: only the evaluation Job submits to it.
"""

from __future__ import annotations

import copy
from typing import Any

from agentfleet.render.agentfleet import (
    COMPONENT_LABEL,
    CONFIG_HASH_ANNOTATION,
    CONFIG_KEY,
    config_hash,
    config_map_name,
    config_text,
    worker_egress_name,
    worker_name,
)

CANDIDATE = "candidate"
# A fleet name never holds "~" (a DNS label), so no fleet's keys meet the candidate's.
PRIVATE_SUFFIX = "~candidate"


def candidate_name(fleet: str) -> str:
    return f"{fleet}-candidate"


def candidate_config_name(fleet: str) -> str:
    return f"{config_map_name(fleet)}-candidate"


def candidate_egress_name(fleet: str) -> str:
    return f"{worker_egress_name(fleet)}-candidate"


def results_name(fleet: str, candidate: str) -> str:
    """The ConfigMap the evaluation Job appends each (version, task) result to."""
    return f"{fleet}-gate-{candidate[:10]}"


def private_fleet(fleet: str) -> str:
    """The fleet name in the candidate's runtime document: the prefix of all its Redis keys."""
    return fleet + PRIVATE_SUFFIX


def _relabel(meta: dict[str, Any]) -> None:
    meta.setdefault("labels", {})[COMPONENT_LABEL] = CANDIDATE


def render_candidate(
    fleet: str, doc: dict[str, Any], runtime: list[dict[str, Any]], *, replicas: int = 1
) -> list[dict[str, Any]]:
    """The candidate's ConfigMap, egress policy and worker Deployment, from render_runtime's
    children of the changed spec (``runtime``) and its runtime document (``doc``)."""
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in runtime}
    private = {**doc, "fleet": private_fleet(fleet)}
    text = config_text(private)
    cm = copy.deepcopy(by_name[("ConfigMap", config_map_name(fleet))])
    cm["metadata"]["name"] = candidate_config_name(fleet)
    _relabel(cm["metadata"])
    cm["data"] = {CONFIG_KEY: text}  # no token hashes: the candidate serves no task API
    out = [cm]
    policy = by_name.get(("NetworkPolicy", worker_egress_name(fleet)))
    if policy is not None:
        policy = copy.deepcopy(policy)
        policy["metadata"]["name"] = candidate_egress_name(fleet)
        _relabel(policy["metadata"])
        policy["spec"]["podSelector"]["matchLabels"][COMPONENT_LABEL] = CANDIDATE
        out.append(policy)
    dep = copy.deepcopy(by_name[("Deployment", worker_name(fleet))])
    dep["metadata"]["name"] = candidate_name(fleet)
    _relabel(dep["metadata"])
    spec = dep["spec"]
    spec["replicas"] = replicas
    spec["selector"]["matchLabels"][COMPONENT_LABEL] = CANDIDATE
    template = spec["template"]
    template["metadata"]["labels"][COMPONENT_LABEL] = CANDIDATE
    template["metadata"]["annotations"][CONFIG_HASH_ANNOTATION] = config_hash(text)
    for volume in template["spec"]["volumes"]:
        if volume.get("configMap", {}).get("name") == config_map_name(fleet):
            volume["configMap"]["name"] = candidate_config_name(fleet)
    out.append(dep)
    return out
