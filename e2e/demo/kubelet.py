"""The kubelet's part for a Job pod whose container the demo ran on this machine. Pure.

kwok starts no containers: a Job pod it schedules is made Running then Succeeded at once by its
stock stages (pod-ready, pod-complete), and a pod nothing can schedule (the manual's
PersistentVolumeClaim does not exist here) stays Pending. Either way the ingestion the demo runs
locally would never be seen by the cluster, and the VectorIndex would stay Ingesting. So the demo
does what a kubelet does when a container ends: it writes the pod's status (phase, the container's
terminated state with exit code, reason, times and the termination message). kwok's pod-complete
stage writes the same fields; here they carry the real outcome. From there the cluster's own job
controller counts the pod, applies backoffLimit and the podFailurePolicy, and sets the Job's
succeeded/failed counts, completedIndexes and its Complete or Failed condition, and the operator
reads the Job and the pods' termination messages as it would in a cluster.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
TERMINAL = ("Succeeded", "Failed")
# Kubernetes keeps at most this much of a termination message; with FallbackToLogsOnError a failed
# container with an empty one gets its log's last 80 lines, at most 2048 bytes.
MESSAGE_LIMIT = 4096
FALLBACK_LINES, FALLBACK_BYTES = 80, 2048


@dataclass(frozen=True)
class Outcome:
    """How one local run of a pod's container ended."""

    exit_code: int
    message: str  # the termination message, as the kubelet would take it
    started_at: str  # RFC 3339
    finished_at: str

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0


def termination_message(written: str, log: str, exit_code: int, policy: str | None) -> str:
    """What the kubelet puts in ``state.terminated.message``: the termination-log file, or with
    FallbackToLogsOnError and a failed container that wrote none, the tail of its log."""
    if written.strip():
        return _clip_bytes(written, MESSAGE_LIMIT, keep="head")
    if exit_code != 0 and policy == "FallbackToLogsOnError":
        return _clip_bytes("\n".join(log.splitlines()[-FALLBACK_LINES:]), FALLBACK_BYTES, keep="tail")
    return ""


def _clip_bytes(text: str, limit: int, *, keep: Literal["head", "tail"]) -> str:
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return (raw[:limit] if keep == "head" else raw[-limit:]).decode(errors="ignore")


def completion_index(pod: dict[str, Any]) -> int:
    meta = pod["metadata"]
    value = (meta.get("labels") or {}).get(COMPLETION_INDEX) or (meta.get("annotations") or {}).get(COMPLETION_INDEX)
    return int(value)


def to_run(pod: dict[str, Any], handled: set[str]) -> bool:
    """Whether the demo still runs this pod's container: one it has not run, not being deleted,
    either not finished or finished by kwok's stock stage (no termination message: nothing ran)."""
    meta = pod["metadata"]
    if meta["uid"] in handled or meta.get("deletionTimestamp"):
        return False
    status = pod.get("status") or {}
    if status.get("phase") not in TERMINAL:
        return True
    return not any(
        ((cs.get("state") or {}).get("terminated") or {}).get("message") for cs in status.get("containerStatuses") or []
    )


def terminated_status(pod: dict[str, Any], container: str, outcome: Outcome) -> dict[str, Any] | None:
    """The status patch (strategic merge) a kubelet sends when the pod's only container ends.

    A pod kwok already finished keeps its phase and exit code (a terminal phase never changes):
    only the termination message is added, and None is returned when the local run failed, which
    the cluster can no longer be told."""
    status = pod.get("status") or {}
    if status.get("phase") in TERMINAL:
        if not outcome.succeeded and status.get("phase") == "Succeeded":
            return None
        statuses = copy.deepcopy(status.get("containerStatuses") or [])
        for cs in statuses:
            terminated = (cs.get("state") or {}).get("terminated")
            if cs.get("name") == container and terminated is not None:
                terminated["message"] = outcome.message
        return {"status": {"containerStatuses": statuses}}
    image = next((c.get("image", "") for c in pod["spec"]["containers"] if c["name"] == container), "")
    terminated: dict[str, Any] = {
        "exitCode": outcome.exit_code,
        "reason": "Completed" if outcome.succeeded else "Error",
        "startedAt": outcome.started_at,
        "finishedAt": outcome.finished_at,
    }
    if outcome.message:
        terminated["message"] = outcome.message
    not_ready = {"status": "False", "reason": "PodCompleted", "lastTransitionTime": outcome.finished_at}
    return {
        "status": {
            "phase": "Succeeded" if outcome.succeeded else "Failed",
            "conditions": [{"type": "Ready", **not_ready}, {"type": "ContainersReady", **not_ready}],
            "containerStatuses": [
                {
                    "name": container,
                    "image": image,
                    "imageID": "",
                    "ready": False,
                    "started": False,
                    "restartCount": 0,
                    "state": {"terminated": terminated},
                }
            ],
        }
    }


def finished(job: dict[str, Any]) -> str | None:
    """ "Complete" or "Failed" once the job controller has said so, else None."""
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return str(c["type"])
    return None
