"""The fleet as the autoscaler sees it, from the Pod list (plain dicts as the API returns them).

A replica is represented by its server pod (single-node) or leader pod (multi-node): the one that
serves HTTP and exposes /metrics, so Prometheus' ``pod`` label names it. Such a pod is
- ready: Ready condition True and still serving (not draining, not terminating);
- starting: not ready yet, not draining; its age counts toward the load-time credit;
- ignored: draining (``agentfleet.io/serving=false``) or terminating - on its way out - or a
  canary (``agentfleet.io/serving=canary``): only a gate's candidate calls it, so its load is no
  user's demand and its capacity serves no user (docs/evaluation-gate.md).
Model load time = Ready's lastTransitionTime - creationTimestamp, learned once per pod.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agentfleet.autoscale.policy import Starting
from agentfleet.render.modelreplicaset import CANARY_SERVING, ROLE_LABEL, ROLE_WORKER, SERVING_LABEL


@dataclass(frozen=True)
class PodFleet:
    ready: tuple[str, ...]
    starting: tuple[Starting, ...]
    load_seconds: dict[str, float]  # pod -> create->ready duration, for pods that became ready
    ready_ages: dict[str, float] = field(default_factory=dict)  # ready pod -> seconds since Ready


def _ts(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    text = str(value).replace("Z", "+00:00")
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def fleet_from_pods(pods: Iterable[Mapping[str, Any]], now: float) -> PodFleet:
    ready: list[str] = []
    starting: list[Starting] = []
    loads: dict[str, float] = {}
    ages: dict[str, float] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        if labels.get(ROLE_LABEL) == ROLE_WORKER:
            continue  # a multi-node replica's non-leader pods expose no serving metrics
        if meta.get("deletionTimestamp") or labels.get(SERVING_LABEL) in ("false", CANARY_SERVING):
            continue
        status = pod.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed"):
            continue
        name = meta.get("name", "")
        created = _ts(meta.get("creationTimestamp"))
        cond = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
        if cond is not None and cond.get("status") == "True":
            ready.append(name)
            became = _ts(cond.get("lastTransitionTime"))
            if became is not None:
                ages[name] = max(0.0, now - became)
            if created is not None and became is not None and became >= created:
                # Timestamps have one-second resolution: Ready within the second of creation
                # (an engine already warm, or a simulated node) counts as one second.
                loads[name] = max(1.0, became - created)
        else:
            starting.append(Starting(name, max(0.0, now - created) if created is not None else 0.0))
    return PodFleet(tuple(sorted(ready)), tuple(sorted(starting, key=lambda s: s.name)), loads, ages)
