"""spec.podTemplate checked before anything is placed: the merge's refusals (render/overlay.py) depend
on the rendered pod, so a one-node replica's pod is rendered with it; the same refusal holds for every
replica, and it is reported once instead of on each replica's creation."""

from __future__ import annotations

from agentfleet_contract.modelreplicaset import ModelReplicaSet

from agentfleet.placement import Assignment
from agentfleet.render.modelreplicaset import render_pod
from agentfleet.render.overlay import OverlayError


def pod_template_refusal(mrs: ModelReplicaSet) -> tuple[str, str] | None:
    """("InvalidSpec", why) when spec.podTemplate collides with what the operator renders (an env
    variable, mount path, volume, port or label of its own); None when it merges."""
    if mrs.spec.pod_template is None:
        return None
    gpus = mrs.spec.engine.gpus_per_replica
    name = mrs.metadata.get("name", "probe")
    probe = Assignment(key=f"{name}/probe", owner=name, nodes=("probe",), gpus_per_node=gpus)
    try:
        render_pod(mrs, probe, 0)
    except OverlayError as e:
        return "InvalidSpec", str(e)
    return None
