"""The model cache step of a ModelReplicaSet pass (pure): is spec.engine.modelCache filled with
the model's weights, and may new replicas start?

A claim filled once per model revision by a Job (render.modelreplicaset.render_cache_job) lets every
replica load from it instead of downloading the weights again: N replicas, one download (what
KServe's LocalModelCache does per node group). New replicas wait for the fill, since starting them
beside it would download the same files N more times; replicas already running are left alone. A
fill that failed lets replicas start anyway: each then downloads into the claim itself, as without
a fill, and the Warning says why the Job failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentfleet_contract.modelreplicaset import ModelReplicaSetSpec

from agentfleet.render.modelreplicaset import cache_job_name, cache_model
from agentfleet.replica_rollout import parse_time

FILLING, FILLED, FAILED = "Filling", "Filled", "Failed"
# How often a pass looks at a fill that is still running (the Job's completion does not wake the set).
FILL_POLL_SECONDS = 10.0


@dataclass(frozen=True)
class CacheFill:
    """What the pass does about the cache and what status says of it."""

    status: dict[str, Any] | None  # status.modelCache; None: no fill applies
    create_job: bool = False  # the fill's Job does not exist yet
    replicas_may_start: bool = True
    event: tuple[str, str, str] | None = None  # (type, reason, message), once per change
    waiting: str = ""  # for Progressing while new replicas wait


def _condition(job: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_ and c.get("status") == "True":
            return c
    return None


def decide_fill(
    name: str, spec: ModelReplicaSetSpec, status_in: Mapping[str, Any], job: Mapping[str, Any] | None
) -> CacheFill:
    """``status_in``: status.modelCache as last written; ``job``: the fill's Job, None when absent."""
    model = cache_model(spec)
    if model is None:
        return CacheFill(status=None)
    job_name = cache_job_name(name, model)
    before = dict(status_in) if status_in.get("model") == model else {}
    if before.get("phase") in (FILLED, FAILED):
        # Decided for this revision: the Job may be gone since (deleted, or by a TTL controller).
        return CacheFill(status=before)
    claim = spec.engine.model_cache.claim_name
    if job is None:
        st = {"model": model, "phase": FILLING, "job": job_name}
        msg = f"filling the model cache {claim} with {model} (Job {job_name}); new replicas start once it is filled"
        return CacheFill(
            status=st,
            create_job=True,
            replicas_may_start=False,
            event=("Normal", "FillingModelCache", msg),
            waiting=msg,
        )
    failed = _condition(job, "Failed")
    if failed is not None:
        why = f"{failed.get('reason') or 'Failed'}: {failed.get('message') or 'the fill Job failed'}"
        st = {"model": model, "phase": FAILED, "job": job_name, "message": why[:1024]}
        msg = f"filling the model cache {claim} with {model} failed ({why}); replicas download the weights themselves"
        return CacheFill(status=st, event=("Warning", "ModelCacheFillFailed", msg))
    done = _condition(job, "Complete")
    if done is not None:
        jst = job.get("status") or {}
        started, finished = parse_time(jst.get("startTime")), parse_time(jst.get("completionTime"))
        seconds = int(finished - started) if started is not None and finished is not None else None
        st = {
            "model": model,
            "phase": FILLED,
            "job": job_name,
            "filledAt": jst.get("completionTime"),
            "fillSeconds": seconds,
        }
        took = f" in {seconds}s" if seconds is not None else ""
        return CacheFill(
            status=st,
            event=("Normal", "ModelCacheFilled", f"model cache {claim} holds {model}{took}; replicas load from it"),
        )
    msg = f"new replicas wait for the model cache {claim} to be filled with {model} (Job {job_name})"
    return CacheFill(status={"model": model, "phase": FILLING, "job": job_name}, replicas_may_start=False, waiting=msg)
