"""What the scaling policy reads in one evaluation: the replicas' gauges, the fleet's shape, the
windowed goodput and task counts, and how many more replicas the planner could place."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from agentfleet.autoscale.goodput import Goodput


@dataclass(frozen=True)
class ReplicaSample:
    """One ready replica's gauges as last scraped; ``age_seconds`` is the sample's staleness."""

    name: str
    waiting: float
    running: float
    kv_usage: float | None
    age_seconds: float = 0.0


@dataclass(frozen=True)
class Starting:
    name: str
    age_seconds: float  # since the replica was created


@dataclass(frozen=True)
class FleetView:
    current: int  # the count in force: status.desiredReplicas, or the replicas that exist
    ready: tuple[str, ...]
    starting: tuple[Starting, ...] = ()
    # Seconds since each ready replica became Ready (where known). One that became ready within
    # the window is not yet in the windowed goodput: the window still describes the smaller fleet.
    ready_ages: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Observation:
    at: float
    samples: tuple[ReplicaSample, ...] = ()
    goodput: Goodput | None = None
    completion_rate: float | None = None  # finished requests/s over the window, whole fleet
    # Agent tasks queued + in flight at the AgentFleets that call this model (None: no task layer
    # known, e.g. clients outside agentfleet); a leading indicator of model demand.
    tasks: float | None = None
    error: str | None = None  # Prometheus unreachable or refused the query
    error_reason: str = "PrometheusUnavailable"
    schema_problem: str | None = None  # the engine speaks other metric names


@dataclass(frozen=True)
class Capacity:
    """How many replicas beyond the existing ones the placement planner could place now."""

    placeable_extra: int | None  # None: unknown (no planner input), no limit applied
    message: str = ""
