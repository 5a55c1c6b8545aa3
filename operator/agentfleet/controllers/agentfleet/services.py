"""What an AgentFleet pass uses of its controller and clients, as Protocols: the pass depends on
these, not on the classes (agentfleet.kube.Kube, reconcile.events.EventRecorder and
probe.probe_redis provide them; unit tests pass fakes of the same shape)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from agentfleet_contract.agentfleet import RedisIdentity
from agentfleet_contract.fleet_stats import FleetStats

# (url, password, fleet, timeout seconds, namespace) -> (reachable, error for the log, task figures
# [, the server's identity and the user's reach: probe.probe_fleet_redis])
Probe = Callable[
    [str, str | None, str, float, str],
    tuple[bool, str, FleetStats | None] | tuple[bool, str, FleetStats | None, RedisIdentity | None],
]
# The Redis identities the other fleets recorded (status.redis), by (namespace, name).
Neighbours = Callable[[], Mapping[tuple[str, str], RedisIdentity]]


def no_neighbours() -> Mapping[tuple[str, str], RedisIdentity]:
    """A pass alone (tests, tools): no other fleet is known."""
    return {}


class FleetKube(Protocol):
    """The API calls of a pass: agentfleet.kube.Kube's."""

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None: ...

    def create(self, obj: dict[str, Any]) -> dict[str, Any]: ...

    def apply(self, obj: dict[str, Any], *, force: bool = True) -> dict[str, Any]: ...

    def apply_status(self, obj: dict[str, Any], *, manager: str) -> dict[str, Any]: ...

    def delete(
        self, api_version: str, kind: str, name: str, namespace: str | None = None, *, force: bool = False
    ) -> bool: ...

    def merge_patch_metadata(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str,
        labels: dict[str, str | None],
        annotations: dict[str, str | None],
    ) -> None: ...


class Events(Protocol):
    """reconcile.events.EventRecorder."""

    def event(self, obj: Mapping[str, Any], type_: str, reason: str, message: str, *, once: bool = True) -> bool: ...


class PassServices(Protocol):
    """What a pass is given: the API, the Event recorder, the Redis probe, the other fleets' Redis."""

    kube: FleetKube
    events: Events
    probe: Probe
    neighbours: Neighbours


@dataclass(frozen=True)
class Services:
    """PassServices from its parts (the controller's, or a test's fakes)."""

    kube: FleetKube
    events: Events
    probe: Probe
    neighbours: Neighbours = no_neighbours
