"""The pod template overlay (spec.podTemplate) merged onto a rendered pod: pure, additions only.

A strategic merge restricted to what cannot take away what the operator relies on: named lists
(containers, volumes, env, mounts) merge by name and refuse a name the operator uses; maps add keys
and refuse a changed one; the operator's containers get only env and volumeMounts; a sidecar gets
the operator's container hardening (it cannot ask for another: the schema has no securityContext).
Required node affinity, which the placement writes, cannot be widened (its terms are ORed).
Each refusal names the field (spec.podTemplate.<path>) and what to do instead.
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from typing import Any

from agentfleet_contract.pod_template import (
    AGENTFLEET_CONTAINERS,
    MODELREPLICASET_CONTAINERS,
    OPERATOR_PREFIX,
    AgentFleetPodTemplate,
    ModelReplicaSetPodTemplate,
)

from agentfleet.render.common import RenderError, restricted_container

OPERATOR_CONTAINER_FIELDS = ("name", "env", "volumeMounts")
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
AFFINITY_LISTS = {
    "nodeAffinity": ("preferredDuringSchedulingIgnoredDuringExecution",),
    "podAffinity": (
        "requiredDuringSchedulingIgnoredDuringExecution",
        "preferredDuringSchedulingIgnoredDuringExecution",
    ),
    "podAntiAffinity": (
        "requiredDuringSchedulingIgnoredDuringExecution",
        "preferredDuringSchedulingIgnoredDuringExecution",
    ),
}


class OverlayError(RenderError):
    """spec.podTemplate asks for what the operator does not allow; ``field`` is its path."""

    def __init__(self, field: str, why: str) -> None:
        self.field = f"spec.podTemplate.{field}"
        super().__init__(f"{self.field}: {why}")


def merge_pod_template(pod: dict[str, Any], overlay: dict[str, Any] | None, owned: Collection[str]) -> dict[str, Any]:
    """``pod`` (a Pod or a pod template: metadata and spec) with ``overlay`` (spec.podTemplate on the
    wire) merged in; ``owned``: the names of every container the operator renders for this kind (one
    absent from this pod is another component's: its additions are skipped here). Raises OverlayError."""
    if not overlay:
        return pod
    out = copy.deepcopy(pod)
    _merge_metadata(out.setdefault("metadata", {}), overlay.get("metadata") or {})
    add = overlay.get("spec") or {}
    ps = out["spec"]
    _add_named(ps, "volumes", add.get("volumes") or [], "spec.volumes")
    volumes = {v["name"] for v in ps.get("volumes", [])}
    hardening = next((c["securityContext"] for c in ps["containers"] if "securityContext" in c), None)
    taken_ports = _ports(ps)
    for c in add.get("containers") or []:
        name = c["name"]
        field = f"spec.containers[{name}]"
        if name in owned:
            target = next((t for t in ps["containers"] if t["name"] == name), None)
            if target is not None:
                _into_operator_container(target, c, field, volumes)
            continue
        ps["containers"].append(_sidecar(ps, c, field, volumes, hardening, taken_ports))
    for c in add.get("initContainers") or []:
        sidecar = _sidecar(ps, c, f"spec.initContainers[{c['name']}]", volumes, hardening, taken_ports)
        ps.setdefault("initContainers", []).append(sidecar)
    _add_keys(ps, "nodeSelector", add.get("nodeSelector") or {}, "spec.nodeSelector")
    for key in ("tolerations", "topologySpreadConstraints", "imagePullSecrets"):
        for item in add.get(key) or []:
            if item not in ps.get(key, []):
                ps.setdefault(key, []).append(copy.deepcopy(item))
    _merge_affinity(ps, add.get("affinity") or {})
    return out


def with_pod_template(
    pod: dict[str, Any], overlay: ModelReplicaSetPodTemplate | AgentFleetPodTemplate | None
) -> dict[str, Any]:
    """A renderer's pod with its object's spec.podTemplate merged in (unchanged without one)."""
    if overlay is None:
        return pod
    owned = MODELREPLICASET_CONTAINERS if isinstance(overlay, ModelReplicaSetPodTemplate) else AGENTFLEET_CONTAINERS
    return merge_pod_template(pod, overlay.wire(), owned)


def _merge_metadata(meta: dict[str, Any], add: dict[str, Any]) -> None:
    for kind in ("labels", "annotations"):
        for key in add.get(kind) or {}:
            if key.startswith(OPERATOR_PREFIX):
                raise OverlayError(f"metadata.{kind}[{key}]", f"keys under {OPERATOR_PREFIX} are the operator's")
        _add_keys(meta, kind, add.get(kind) or {}, f"metadata.{kind}")


def _add_keys(parent: dict[str, Any], key: str, add: dict[str, str], field: str) -> None:
    have = parent.get(key) or {}
    for k, v in add.items():
        if k in have and have[k] != v:
            raise OverlayError(f"{field}[{k}]", f"the operator sets it to {have[k]!r}: remove it from the overlay")
    if add:
        parent[key] = {**have, **add}


def _add_named(parent: dict[str, Any], key: str, items: list[dict[str, Any]], field: str) -> None:
    names = {i["name"] for i in parent.get(key, [])}
    for item in items:
        name = item.get("name")
        if not name:
            raise OverlayError(f"{field}", "every entry needs a name")
        if name in names:
            raise OverlayError(f"{field}[{name}]", "the name is taken by the operator's or an earlier entry: rename it")
        names.add(name)
        parent.setdefault(key, []).append(copy.deepcopy(item))


def _into_operator_container(target: dict[str, Any], c: dict[str, Any], field: str, volumes: set[str]) -> None:
    for key in c:
        if key not in OPERATOR_CONTAINER_FIELDS:
            raise OverlayError(f"{field}.{key}", "the operator's containers take only env and volumeMounts")
    _add_named(target, "env", c.get("env") or [], f"{field}.env")
    _add_mounts(target, c.get("volumeMounts") or [], field, volumes)


def _add_mounts(target: dict[str, Any], mounts: list[dict[str, Any]], field: str, volumes: set[str]) -> None:
    paths = {m.get("mountPath") for m in target.get("volumeMounts", [])}
    for m in mounts:
        path = m.get("mountPath")
        if m.get("name") not in volumes:
            raise OverlayError(
                f"{field}.volumeMounts[{path}]", f"no volume {m.get('name')!r}: add it to spec.podTemplate.spec.volumes"
            )
        if not path or path in paths:
            raise OverlayError(f"{field}.volumeMounts[{path}]", "the path is empty or already mounted: choose another")
        paths.add(path)
        target.setdefault("volumeMounts", []).append(copy.deepcopy(m))


def _ports(ps: dict[str, Any]) -> set[Any]:
    return {
        v for c in ps.get("containers", []) for p in c.get("ports", []) for v in (p.get("containerPort"), p.get("name"))
    } - {None}


def _sidecar(
    ps: dict[str, Any],
    c: dict[str, Any],
    field: str,
    volumes: set[str],
    hardening: dict[str, Any] | None,
    taken_ports: set[Any],
) -> dict[str, Any]:
    names = {x["name"] for x in ps.get("containers", []) + ps.get("initContainers", [])}
    if c["name"] in names:
        raise OverlayError(field, "a container of this pod has the name: rename it")
    if not c.get("image"):
        raise OverlayError(f"{field}.image", "a sidecar needs an image")
    for p in c.get("ports") or []:
        for v in (p.get("containerPort"), p.get("name")):
            if v is not None and v in taken_ports:
                raise OverlayError(f"{field}.ports[{v}]", "another container of the pod uses it: choose another")
            taken_ports.add(v)
    out = {k: copy.deepcopy(v) for k, v in c.items() if k != "volumeMounts"}
    _add_mounts(out, c.get("volumeMounts") or [], field, volumes)
    out["securityContext"] = copy.deepcopy(hardening) if hardening else restricted_container()
    return out


def _merge_affinity(ps: dict[str, Any], add: dict[str, Any]) -> None:
    for kind, terms in add.items():
        if kind not in AFFINITY_LISTS:
            raise OverlayError(f"spec.affinity.{kind}", "only nodeAffinity, podAffinity and podAntiAffinity")
        for key in terms:
            node = ps.setdefault("affinity", {}).setdefault(kind, {})
            if kind == "nodeAffinity" and key == REQUIRED and REQUIRED not in node:
                node[REQUIRED] = copy.deepcopy(terms[key])  # nothing of the operator's to widen
                continue
            if key not in AFFINITY_LISTS[kind]:
                why = (
                    "the operator places these pods and its terms would be widened (terms are ORed): "
                    "narrow them with spec.podTemplate.spec.nodeSelector"
                    if key == REQUIRED
                    else "not a list the overlay can add to"
                )
                raise OverlayError(f"spec.affinity.{kind}.{key}", why)
            have = node.setdefault(key, [])
            have.extend(copy.deepcopy(t) for t in terms[key] if t not in have)
