"""The typed records a ModelReplicaSet pass's steps hand on, frozen: what observe read
(``Observed``), the replica records of status.placements (``ReplicaRecord``), the judgment and
plan decide returns (``Judged`` in judging.py, ``Plan``), and what act did for write (``Acted``).
One is not frozen: ``Acting``, act's working copy of the replicas, which act's parts (rolling.py,
adapters.py, placing.py) change in turn and act freezes into ``Acted``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from agentfleet_contract.modelreplicaset import ModelReplicaSet, ModelReplicaSetSpec

from agentfleet.capacity import Assessment
from agentfleet.placement import Assignment, Node, ReplicaNeeds, Unplaced
from agentfleet.reconcile.shape import Wants
from agentfleet.replica_rollout import Desired, ReplicaView, Timing

if TYPE_CHECKING:
    from agentfleet.controllers.modelreplicaset.canary import CanaryObserved
    from agentfleet.controllers.modelreplicaset.canarying import CanaryActed
    from agentfleet.controllers.modelreplicaset.judging import Judged

# Field name -> its key in status.placements (the CRD's camelCase).
_WIRE = {
    "name": "name",
    "nodes": "nodes",
    "gpus": "gpus",
    "gpus_per_node": "gpusPerNode",
    "block": "block",
    "zone": "zone",
    "phase": "phase",
    "endpoint": "endpoint",
    "restarts": "restarts",
    "adapters": "adapters",
    "failed_at": "failedAt",
}
_FIELD = {v: k for k, v in _WIRE.items()}


@dataclass(frozen=True)
class ReplicaRecord:
    """One replica's status.placements record as the pass carries it (ReplicaPlacement's fields).

    None is "not recorded": it is left out of status, as a record read from status may lack any
    field (so a record passes through a pass unchanged, byte for byte, unless a step changes it)."""

    name: str | None = None
    nodes: tuple[str, ...] | None = None
    gpus: int | None = None
    gpus_per_node: int | None = None
    block: str | None = None
    zone: str | None = None
    phase: str | None = None
    endpoint: str | None = None  # host:port while it serves
    restarts: int | None = None
    adapters: tuple[str, ...] | None = None
    failed_at: str | None = None  # RFC 3339
    unknown: Mapping[str, Any] = field(default_factory=dict)  # keys of a newer operator, kept as read

    @classmethod
    def from_wire(cls, rec: Mapping[str, Any]) -> ReplicaRecord:
        known: dict[str, Any] = {_FIELD[k]: v for k, v in rec.items() if k in _FIELD}
        for k in ("nodes", "adapters"):
            if isinstance(known.get(k), list):
                known[k] = tuple(known[k])
        return cls(**known, unknown={k: v for k, v in rec.items() if k not in _FIELD})

    def wire(self) -> dict[str, Any]:
        """The record for status (a merge patch of placements: None is left out)."""
        out = {k: v for k, v in self.unknown.items() if v is not None}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name != "unknown" and v is not None:
                out[_WIRE[f.name]] = list(v) if isinstance(v, tuple) else v
        return out


@dataclass(frozen=True)
class Post:
    """One Event of the pass."""

    type: str
    reason: str
    message: str
    once: bool = True  # a problem (de-duplicated while it lasts) rather than an action


@dataclass(frozen=True)
class Observed:
    """What one pass observed, with the spec's derived values: read by every later step."""

    ns: str
    name: str
    now: float
    generation: int
    mrs: ModelReplicaSet  # the object as the models read it
    spec: ModelReplicaSetSpec
    shash: str  # the spec's hash: a replica running another is outdated
    timing: Timing
    needs: ReplicaNeeds  # of one replica
    nodes: list[Node]  # the node inventory
    node_by_name: Mapping[str, Node]
    assessment: Assessment  # capacity.assess of the spec on the eligible GPUs
    capacity_error: str | None  # the model does not fit: nothing new starts
    desired: Desired  # the count and where it comes from
    views: Mapping[str, ReplicaView]  # replica -> its pods and status record
    gone: frozenset[str]  # nodes the replicas reference that no longer exist
    unusable: frozenset[str]  # nodes that exist but a replica may no longer use
    status_in: Mapping[str, Any]  # status as read
    cache_job: Mapping[str, Any] | None  # the model cache's fill Job, when one may run
    failed_at: Mapping[str, float]  # remembered failure times (records older than failedAt)
    surge_blocked: bool  # the last rolling-update surge could not be placed
    in_flight_read: bool = False
    in_flight: Mapping[str, int | None] = field(default_factory=dict)  # replica -> requests it holds
    canary: CanaryObserved | None = None  # with a gated fleet: the canary's decision and replica (canarying.py)

    @property
    def owner(self) -> str:
        return f"{self.ns}/{self.name}"


@dataclass(frozen=True)
class NeedsInFlight(Wants):
    """Replicas draining, or candidates when one must go: their in-flight requests, from /metrics."""

    targets: Mapping[str, tuple[str, int]]


@dataclass
class Acting:
    """The replicas while act works through a plan (frozen into ``Acted`` for write)."""

    records: dict[str, ReplicaRecord]
    to_create: dict[str, Assignment]
    current: dict[str, bool]
    terminating: set[str]
    wakes: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, judged: Judged) -> Acting:
        return cls(dict(judged.records), dict(judged.to_create), dict(judged.current), set(judged.terminating))


@dataclass(frozen=True)
class Acted:
    """The replicas after act: their records, what write creates, what status counts."""

    records: Mapping[str, ReplicaRecord]
    to_create: Mapping[str, Assignment]  # replicas whose missing pods write applies
    current: Mapping[str, bool]  # replica -> runs the current spec
    terminating: frozenset[str]
    unplaced: tuple[Unplaced, ...]
    placements: tuple[Assignment, ...]  # this object's, placed before and now
    wakes: tuple[float, ...]  # seconds until something is due
    canary: CanaryActed | None = None  # the canary replica's pods, record and placement
