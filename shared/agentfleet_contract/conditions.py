"""Kubernetes-style status conditions, computed without I/O.

lastTransitionTime moves only when status flips; reason and message may change freely. Ready is
the summary every kind carries; the others say why it is what it is.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

READY = "Ready"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"
# The autoscaler's types (its own field manager writes them while autoscaling is on).
SCALING_ACTIVE = "ScalingActive"
SCALING_LIMITED = "ScalingLimited"
METRICS_AVAILABLE = "MetricsAvailable"
# An AgentFleet's evaluation gate of its latest change (spec.rollout.evaluation, docs/evaluation-gate.md).
EVALUATION_GATE = "EvaluationGate"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def timestamp(ts: float) -> str:
    """Seconds since the epoch as the API writes a time (RFC 3339, UTC, whole seconds)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: list[dict[str, Any]],
    type_: str,
    status: bool | str,
    reason: str,
    message: str = "",
    generation: int = 0,
    at: str | None = None,
) -> list[dict[str, Any]]:
    """A new list with the condition of type_ set; the input is not changed."""
    status_s = status if isinstance(status, str) else ("True" if status else "False")
    old = next((c for c in conditions if c.get("type") == type_), None)
    moved = old is None or old.get("status") != status_s
    cond = {
        "type": type_,
        "status": status_s,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": (at or now()) if moved else old["lastTransitionTime"],
    }
    out = [c for c in conditions if c.get("type") != type_]
    out.append(cond)
    return sorted(out, key=lambda c: (c["type"] != READY, c["type"]))


def get_condition(conditions: list[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)


def is_true(conditions: list[dict[str, Any]], type_: str) -> bool:
    c = get_condition(conditions, type_)
    return c is not None and c.get("status") == "True"
