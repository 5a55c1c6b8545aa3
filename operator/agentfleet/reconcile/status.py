"""The one status writer: each writer of a kind's status (its controller, the autoscaler, an
evaluation run) owns some fields and condition types and writes only those, under its own field
manager, and never when nothing it owns changed (a write is a watch event that would bring the
object back for another pass).

Two ways to send, one rule for what changed:
- ``apply``: server-side apply of the writer's whole intent (conditions are a list-map keyed by
  type, so the API server merges per type and writers never drop each other's types);
- ``patch``: a merge patch of the fields that changed, for a writer whose status is large and
  changes a field at a time (the ModelReplicaSet's placements and figures).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from agentfleet.kube import Kube


def normalize(value: Any) -> Any:
    """A status value as compared for change: None-valued keys, the order of list items and
    conditions' lastTransitionTime do not count (the time moves only with a status flip)."""
    if isinstance(value, Mapping):
        return {k: normalize(v) for k, v in sorted(value.items()) if v is not None and k != "lastTransitionTime"}
    if isinstance(value, list | tuple):
        return sorted((normalize(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    return value


def changed_fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of ``after`` whose value differs from ``before``'s."""
    return {k: v for k, v in after.items() if normalize(before.get(k)) != normalize(v)}


def own_part(status: Mapping[str, Any], fields: Iterable[str], condition_types: Iterable[str]) -> dict[str, Any]:
    """What one writer owns of a status: its fields and its condition types."""
    types = set(condition_types)
    out = {k: status[k] for k in fields if k in status and k != "conditions"}
    out["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") in types]
    return out


class StatusWriter:
    """Writes one kind's status for one field manager."""

    def __init__(self, kube: Kube, api_version: str, kind: str, manager: str) -> None:
        self.kube = kube
        self.api_version = api_version
        self.kind = kind
        self.manager = manager

    def apply(
        self, namespace: str, name: str, status: dict[str, Any], *, before: Mapping[str, Any] | None = None
    ) -> dict[str, Any] | None:
        """Server-side apply of ``status`` (all this manager owns; what it leaves out is released).
        Skipped, returning None, when ``before`` (this manager's part of the live status) equals it."""
        if before is not None and normalize(before) == normalize(status):
            return None
        body = {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "metadata": {"name": name, "namespace": namespace},
            "status": status,
        }
        return self.kube.apply_status(body, manager=self.manager)

    def patch(self, namespace: str, name: str, changed: dict[str, Any]) -> dict[str, Any] | None:
        """Merge patch of the changed fields (None removes a field); skipped when there are none."""
        if not changed:
            return None
        return self.kube.merge_patch_status(self.api_version, self.kind, name, namespace, changed)
