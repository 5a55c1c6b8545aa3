"""The pod template overlay (``spec.podTemplate`` of ModelReplicaSet and AgentFleet): a fragment of a
pod the operator strategic-merges onto the pods it renders, the escape hatch for what the API does
not model (a sidecar, a CSI volume, a node label, an annotation a mesh reads).

It may add, never take away: the schema holds only the fields below, and what it cannot say in CEL
(a collision with a name, label, mount or port the operator set) the operator's merge refuses by
field (agentfleet.render.overlay). A container named like one of the operator's gets only env and
volumeMounts added; any other name is a sidecar, hardened like the operator's containers.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from agentfleet_contract.common import LocalObjectReference, Model, Toleration
from agentfleet_contract.rules import Rule

OPERATOR_PREFIX = "agentfleet.io/"  # the operator's labels and annotations
MAX_ITEMS = 32
# The operator's containers (render: modelreplicaset.CONTAINER; agentfleet's components).
MODELREPLICASET_CONTAINERS = ("vllm",)
AGENTFLEET_CONTAINERS = ("worker", "api")


def _no_operator_keys(attr: str) -> Rule:
    return Rule(
        cel=f"!has(self.{attr}) || self.{attr}.all(k, !k.startsWith('{OPERATOR_PREFIX}'))",
        message=f"spec.podTemplate.metadata.{attr}: keys under {OPERATOR_PREFIX} are the operator's: remove them",
        check=lambda m: not any(k.startswith(OPERATOR_PREFIX) for k in getattr(m, attr) or {}),
        field_path=f".{attr}",
    )


def _bounded(description: str) -> Any:
    return Field(default=None, description=description, json_schema_extra={"maxProperties": 64})


class OverlayMetadata(Model):
    rules = (_no_operator_keys("labels"), _no_operator_keys("annotations"))

    labels: dict[str, str] | None = _bounded("Labels added to the pods (never one the operator sets).")
    annotations: dict[str, str] | None = _bounded("Annotations added to the pods (never one the operator sets).")


class OverlayContainer(Model):
    name: str = Field(
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="An operator container's name (env and volumeMounts are added to it) or a sidecar's.",
    )
    image: str | None = Field(default=None, max_length=1024, description="The sidecar's image (sidecars only).")
    command: list[str] | None = Field(default=None, max_length=64, description="The sidecar's entrypoint.")
    args: list[str] | None = Field(default=None, max_length=256, description="The sidecar's arguments.")
    env: list[dict[str, Any]] | None = Field(
        default=None, max_length=64, description="Environment variables added (never one the operator sets)."
    )
    volume_mounts: list[dict[str, Any]] | None = Field(
        default=None, max_length=MAX_ITEMS, description="Volume mounts added (never on a path the operator mounts)."
    )
    ports: list[dict[str, Any]] | None = Field(
        default=None, max_length=MAX_ITEMS, description="The sidecar's ports (never one the operator's use)."
    )
    resources: dict[str, Any] | None = Field(default=None, description="The sidecar's requests and limits.")


class OverlayPodSpec(Model):
    containers: list[OverlayContainer] | None = Field(
        default=None,
        max_length=MAX_ITEMS,
        description="Per name: additions to an operator container, or a sidecar appended after them.",
    )
    init_containers: list[OverlayContainer] | None = Field(
        default=None, max_length=MAX_ITEMS, description="Init containers run before the pod's, hardened as they are."
    )
    volumes: list[dict[str, Any]] | None = Field(
        default=None, max_length=MAX_ITEMS, description="Volumes added (never one named like the operator's)."
    )
    node_selector: dict[str, str] | None = _bounded("Node labels required in addition to the operator's.")
    tolerations: list[Toleration] | None = Field(
        default=None, max_length=MAX_ITEMS, description="Tolerations added to the operator's."
    )
    affinity: dict[str, Any] | None = Field(
        default=None,
        description="Affinity added: preferred terms and pod (anti-)affinity; required node affinity only "
        "where the operator sets none.",
    )
    topology_spread_constraints: list[dict[str, Any]] | None = Field(
        default=None, max_length=MAX_ITEMS, description="Spread constraints added to the operator's."
    )
    image_pull_secrets: list[LocalObjectReference] | None = Field(
        default=None, max_length=MAX_ITEMS, description="Pull secrets for the sidecars' images."
    )


def _sidecar_rules(operator: tuple[str, ...]) -> tuple[Rule, ...]:
    names = "[" + ", ".join(f"'{n}'" for n in operator) + "]"
    return (
        Rule(
            cel=f"!has(self.containers) || self.containers.all(c, !(c.name in {names}) || "
            "(!has(c.image) && !has(c.command) && !has(c.args) && !has(c.ports) && !has(c.resources)))",
            message=f"spec.podTemplate.spec.containers: the operator's containers ({', '.join(operator)}) take only "
            "env and volumeMounts: remove image, command, args, ports and resources (set them on spec instead)",
            check=lambda s: all(
                c.name not in operator or not (c.image or c.command or c.args or c.ports or c.resources)
                for c in s.containers or []
            ),
            field_path=".containers",
        ),
        Rule(
            cel=f"!has(self.containers) || self.containers.all(c, c.name in {names} || has(c.image))",
            message="spec.podTemplate.spec.containers[].image: a sidecar needs an image",
            check=lambda s: all(c.name in operator or c.image for c in s.containers or []),
            field_path=".containers",
        ),
        Rule(
            cel="!has(self.initContainers) || self.initContainers.all(c, has(c.image))",
            message="spec.podTemplate.spec.initContainers[].image: an init container needs an image",
            check=lambda s: all(c.image for c in s.init_containers or []),
            field_path=".initContainers",
        ),
    )


class ModelReplicaSetPodSpec(OverlayPodSpec):
    rules = (
        *_sidecar_rules(MODELREPLICASET_CONTAINERS),
        Rule(
            cel="!has(self.nodeSelector) && !has(self.affinity) && !has(self.topologySpreadConstraints)",
            message="spec.podTemplate.spec.nodeSelector, affinity and topologySpreadConstraints: the operator's "
            "planner places each replica on its nodes; use spec.placement instead",
            check=lambda s: not (s.node_selector or s.affinity or s.topology_spread_constraints),
            field_path=".nodeSelector",
        ),
    )


class AgentFleetPodSpec(OverlayPodSpec):
    rules = _sidecar_rules(AGENTFLEET_CONTAINERS)


class ModelReplicaSetPodTemplate(Model):
    metadata: OverlayMetadata | None = Field(default=None, description="Labels and annotations added to the pods.")
    spec: ModelReplicaSetPodSpec | None = Field(default=None, description="Pod spec fields added to the pods.")


class AgentFleetPodTemplate(Model):
    metadata: OverlayMetadata | None = Field(default=None, description="Labels and annotations added to the pods.")
    spec: AgentFleetPodSpec | None = Field(default=None, description="Pod spec fields added to the pods.")


POD_TEMPLATE_DESCRIPTION = (
    "A pod fragment strategic-merged onto the pods the operator renders: volumes, env and volumeMounts of its "
    "containers, sidecars, node selection, labels and annotations; it may add, never replace what the operator sets."
)
