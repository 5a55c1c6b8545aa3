"""Ingestion progress as the operator reads it back. Pure, stdlib only: the controller imports this.

Each worker reports the same record two ways, neither needing any RBAC in the Job's pod:
- a JSON line on stdout, ``{"agentfleetIngest": {...}}``, every few seconds and at the end: the
  operator reads live progress from the running pods' logs (``pods/log``);
- its final record as the container's termination message (``/dev/termination-log``): the kubelet
  copies it into ``status.containerStatuses[].state.terminated.message``, so the operator gets the
  outcome of every finished worker from the pod list it already watches, even after the logs rotate.
  Kubernetes keeps at most 4096 bytes there, so the failure list is trimmed to fit.

``merge`` sums the workers' latest records into the VectorIndex's ``status.ingestion`` fields.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

MARKER = "agentfleetIngest"
TERMINATION_LIMIT = 4096
STATUS_FAILURES = 100  # status.ingestion.failures holds at most this many (API maxItems)
WORKER_FAILURES = 100  # a worker keeps the first this many failure reasons it saw

State = Literal["Running", "Succeeded", "Failed"]


@dataclass(frozen=True)
class FailureRecord:
    document: str
    reason: str


@dataclass(frozen=True)
class WorkerProgress:
    worker: int
    workers: int
    revision: str = ""
    state: State = "Running"
    documents_total: int = 0  # documents this worker owns
    documents_done: int = 0
    documents_failed: int = 0
    chunks: int = 0
    failures: tuple[FailureRecord, ...] = ()
    failures_truncated: bool = False
    started_at: str | None = None
    updated_at: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The wire form: camelCase keys like the VectorIndex status, unset fields left out."""
        d = asdict(self)
        d["failures"] = [asdict(f) for f in self.failures]
        return {_camel(k): v for k, v in d.items() if v is not None and v != [] and v is not False}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.title() for w in rest)


def to_line(p: WorkerProgress) -> str:
    return json.dumps({MARKER: p.to_dict()}, separators=(",", ":"), ensure_ascii=False)


def from_dict(d: Mapping[str, Any]) -> WorkerProgress:
    failures = tuple(
        FailureRecord(str(f.get("document", "")), str(f.get("reason", "")))
        for f in d.get("failures") or ()
        if isinstance(f, Mapping)
    )
    state = d.get("state", "Running")
    return WorkerProgress(
        worker=int(d["worker"]),
        workers=int(d["workers"]),
        revision=str(d.get("revision", "")),
        state=state if state in ("Running", "Succeeded", "Failed") else "Running",
        documents_total=int(d.get("documentsTotal", 0)),
        documents_done=int(d.get("documentsDone", 0)),
        documents_failed=int(d.get("documentsFailed", 0)),
        chunks=int(d.get("chunks", 0)),
        failures=failures,
        failures_truncated=bool(d.get("failuresTruncated", False)),
        started_at=d.get("startedAt"),
        updated_at=d.get("updatedAt"),
        error=d.get("error"),
    )


def parse_line(line: str) -> WorkerProgress | None:
    """The record on one log line, or None for any other line (logs, tracebacks, partial lines)."""
    line = line.strip()
    if not line.startswith("{") or MARKER not in line:
        return None
    try:
        obj = json.loads(line)
        return from_dict(obj[MARKER])
    except (ValueError, KeyError, TypeError):
        return None


def latest(text: str) -> WorkerProgress | None:
    """The last record in a log or termination message."""
    for line in reversed(text.splitlines()):
        p = parse_line(line)
        if p is not None:
            return p
    return None


def _clip(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "\u2026"


def termination_message(p: WorkerProgress, limit: int = TERMINATION_LIMIT) -> str:
    """The record as one line that fits Kubernetes' termination-message limit (bytes)."""
    p = replace(
        p,
        error=_clip(p.error, 512) if p.error else None,
        failures=tuple(FailureRecord(_clip(f.document, 256), _clip(f.reason, 160)) for f in p.failures),
    )
    line = to_line(p)
    while len(line.encode()) > limit and p.failures:
        keep = max(0, len(p.failures) * 2 // 3 if len(p.failures) > 3 else len(p.failures) - 1)
        p = replace(p, failures=p.failures[:keep], failures_truncated=True)
        line = to_line(p)
    if len(line.encode()) > limit:  # only an absurd error string can get here
        line = to_line(replace(p, error=_clip(p.error or "", 64)))
    return line


@dataclass(frozen=True)
class IngestionSummary:
    """All workers together; ``status()`` gives the VectorIndex status.ingestion counters."""

    workers: int
    reported: int
    state: State
    documents_total: int
    documents_done: int
    documents_failed: int
    chunks: int
    failures: tuple[FailureRecord, ...] = field(default_factory=tuple)
    errors: tuple[str, ...] = field(default_factory=tuple)

    def status(self) -> dict[str, Any]:
        return {
            "documentsTotal": self.documents_total,
            "documentsDone": self.documents_done,
            "documentsFailed": self.documents_failed,
            "chunks": self.chunks,
            "failures": [asdict(f) for f in self.failures[:STATUS_FAILURES]],
        }


def merge(records: Iterable[WorkerProgress], workers: int, revision: str | None = None) -> IngestionSummary:
    """Latest record per worker summed. Records of another revision are ignored.

    State: Failed if any worker failed, Succeeded when every worker succeeded, else Running.
    ``documents_total`` counts only reported workers; until all have reported it is a lower bound.
    """
    by_worker: dict[int, WorkerProgress] = {}
    for r in records:
        if revision is not None and r.revision != revision:
            continue
        prev = by_worker.get(r.worker)
        # A finished record wins over a running one; among equals the later update wins.
        rank = (r.state != "Running", r.updated_at or "")
        if prev is None or rank >= (prev.state != "Running", prev.updated_at or ""):
            by_worker[r.worker] = r
    rs = [by_worker[k] for k in sorted(by_worker)]
    if any(r.state == "Failed" for r in rs):
        state: State = "Failed"
    elif len(rs) == workers and all(r.state == "Succeeded" for r in rs):
        state = "Succeeded"
    else:
        state = "Running"
    failures: list[FailureRecord] = []
    for r in rs:
        failures.extend(r.failures[: max(0, STATUS_FAILURES - len(failures))])
    return IngestionSummary(
        workers=workers,
        reported=len(rs),
        state=state,
        documents_total=sum(r.documents_total for r in rs),
        documents_done=sum(r.documents_done for r in rs),
        documents_failed=sum(r.documents_failed for r in rs),
        chunks=sum(r.chunks for r in rs),
        failures=tuple(failures),
        errors=tuple(f"worker {r.worker}: {r.error}" for r in rs if r.error),
    )
