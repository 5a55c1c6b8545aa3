"""What the controller reads of the cluster, reduced to what rolling and scaling decide on: replica
pods as PodViews (from the API's dicts), a replica as its pods plus its status record (its entry
in status.placements: where it was planned, its phase and how often it was restarted; its pods
carry the same placement, so a record lost to a crash is rebuilt from them), and the in-flight
request count a vLLM server reports on /metrics."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from agentfleet.placement import REPLICA_LABEL, pod_gpus
from agentfleet.render.modelreplicaset import (
    CANARY_SERVING,
    GANG_SIZE_LABEL,
    ROLE_LABEL,
    ROLE_SERVER,
    ROLE_WORKER,
    SERVING_LABEL,
    SPEC_HASH_LABEL,
)
from agentfleet.replica_rollout.phases import DRAINING

# Annotation on a draining replica's pods: when the drain began (RFC 3339). On the pods, not in
# memory, so a restarted operator still honours spec.lifecycle.drainTimeoutSeconds from the start.
DRAINING_SINCE_ANNOTATION = "agentfleet.io/draining-since"
_TERMINAL_POD = frozenset({"Succeeded", "Failed"})


def parse_time(value: Any) -> float | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def rfc3339(ts: float, *, precise: bool = False) -> str:
    """UTC timestamp as Kubernetes writes it; `precise` keeps milliseconds (for short timeouts)."""
    t = datetime.fromtimestamp(ts, UTC)
    return (
        t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
        if precise
        else t.strftime("%Y-%m-%dT%H:%M:%SZ")
    )


@dataclass(frozen=True)
class PodView:
    """What the controller needs to know about one replica pod."""

    name: str
    replica: str
    index: int  # 0 is the server or the gang's leader
    role: str
    node: str | None  # bound node, else the node its affinity pins it to
    bound: bool
    phase: str
    ready: bool
    deleting: bool
    serving: bool | None  # None for workers, which never serve
    spec_hash: str
    gang_size: int
    created: float
    ip: str | None = None
    unschedulable: str | None = None  # the scheduler's message while it refuses the pod
    unschedulable_since: float | None = None
    draining_since: float | None = None
    reason: str = ""  # why a terminal pod ended (Evicted, Error, ...)
    gpus: int = 0
    canary: bool = False  # its serving label says canary: only the canary Service selects it

    @property
    def terminal(self) -> bool:
        return self.phase in _TERMINAL_POD


def observe_pod(pod: Mapping[str, Any], pinned: str | None = None, resource: str = "nvidia.com/gpu") -> PodView | None:
    """A PodView of a replica pod as the API returns it (a dict); None if it is not one.
    `pinned`: the node its affinity pins it to (placement.pinned_node), for pods not bound yet."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    replica = labels.get(REPLICA_LABEL)
    if not replica:
        return None
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    role = labels.get(ROLE_LABEL, ROLE_SERVER)
    name = meta.get("name", "")
    index = 0
    if role == ROLE_WORKER:
        tail = name.rsplit("-", 1)[-1]
        index = int(tail) if tail.isdigit() else 1
    conds = {c.get("type"): c for c in status.get("conditions") or []}
    ready = (conds.get("Ready") or {}).get("status") == "True"
    sched = conds.get("PodScheduled") or {}
    unsched = (
        (sched.get("message") or "Unschedulable")
        if sched.get("status") == "False" and sched.get("reason") == "Unschedulable"
        else None
    )
    serving_label = labels.get(SERVING_LABEL)
    annotations = meta.get("annotations") or {}
    try:
        gang = int(labels.get(GANG_SIZE_LABEL, "1"))
    except ValueError:
        gang = 1
    return PodView(
        name=name,
        replica=replica,
        index=index,
        role=role,
        node=spec.get("nodeName") or pinned,
        bound=bool(spec.get("nodeName")),
        phase=status.get("phase") or "Pending",
        ready=ready,
        deleting=bool(meta.get("deletionTimestamp")),
        serving=None if role == ROLE_WORKER else serving_label != "false",
        spec_hash=labels.get(SPEC_HASH_LABEL, ""),
        gang_size=max(1, gang),
        created=parse_time(meta.get("creationTimestamp")) or 0.0,
        ip=status.get("podIP"),
        unschedulable=unsched,
        unschedulable_since=parse_time(sched.get("lastTransitionTime")) if unsched else None,
        draining_since=parse_time(annotations.get(DRAINING_SINCE_ANNOTATION)),
        reason=status.get("reason") or "",
        gpus=pod_gpus(pod, resource),
        canary=serving_label == CANARY_SERVING,
    )


@dataclass(frozen=True)
class ReplicaView:
    """A replica as observed: its pods (deleting ones too) and its status record, if any."""

    name: str
    pods: tuple[PodView, ...] = ()
    record: Mapping[str, Any] | None = None  # status.placements entry (wire form)

    @property
    def live(self) -> tuple[PodView, ...]:
        return tuple(p for p in self.pods if not p.deleting)

    @property
    def leader(self) -> PodView | None:
        return next((p for p in self.live if p.index == 0), None)

    @property
    def expected(self) -> int:
        """Pods the replica has when complete: its planned nodes, else what its pods say."""
        if self.record and self.record.get("nodes"):
            return len(self.record["nodes"])
        return max((p.gang_size for p in self.pods), default=1)

    @property
    def recorded_phase(self) -> str | None:
        return (self.record or {}).get("phase")

    @property
    def restarts(self) -> int:
        return int((self.record or {}).get("restarts") or 0)

    @property
    def nodes(self) -> tuple[str, ...]:
        if self.record and self.record.get("nodes"):
            return tuple(self.record["nodes"])
        return tuple(p.node for p in sorted(self.live, key=lambda p: p.index) if p.node)

    @property
    def spec_hash(self) -> str | None:
        lead = self.leader or next(iter(self.pods), None)
        return lead.spec_hash if lead else None

    @property
    def draining(self) -> bool:
        lead = self.leader
        return (lead is not None and lead.serving is False) or (not self.live and self.recorded_phase == DRAINING)

    @property
    def ready(self) -> bool:
        """The engine answers: its leader is Ready and every member runs."""
        lead = self.leader
        live = self.live
        return (
            lead is not None and lead.ready and len(live) >= self.expected and all(p.phase == "Running" for p in live)
        )

    @property
    def created(self) -> float:
        return min((p.created for p in self.pods), default=0.0)


# --- In-flight work from the engine's /metrics ------------------------------------------------

# Requests a replica holds: running and waiting (a waiting one was accepted too). vLLM's gauges, and
# llama-server's (`--metrics`), which exports none of vLLM's: without them a drain of a llama-server
# replica knew nothing and waited the whole drainTimeoutSeconds (600 s by default) on an idle replica.
IN_FLIGHT_METRICS = (
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
    "llamacpp:requests_processing",
    "llamacpp:requests_deferred",
)


def parse_in_flight(text: str) -> int | None:
    """Requests a server holds (IN_FLIGHT_METRICS), summed over engines, from its Prometheus text
    exposition; None if the gauges are absent. Each of their lines is read alone by
    prometheus_client's parser, so a malformed line elsewhere on the page costs nothing."""
    values = [
        sample.value
        for line in text.splitlines()
        if line.startswith(IN_FLIGHT_METRICS)
        for sample in _samples(line)
        if sample.name in IN_FLIGHT_METRICS and math.isfinite(sample.value)
    ]
    return int(round(sum(values))) if values else None


def _samples(line: str) -> list[Sample]:
    try:
        return [sample for family in text_string_to_metric_families(line + "\n") for sample in family.samples]
    except ValueError:
        return []
