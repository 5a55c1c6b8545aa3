"""What a ModelReplicaSet pass uses of its controller and of each of its clients, as Protocols:
the pass depends on these, not on the classes (ModelReplicaSetController and agentfleet.kube.Kube
provide them; unit tests pass fakes of the same shape)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from agentfleet.controllers.modelreplicaset.caches import Key, Snapshot
from agentfleet.placement import Assignment, Node, Plan, ReplicaRequest

T = TypeVar("T")


class PassKube(Protocol):
    """The API calls of a pass (reconcile.py, children.py, status.py): agentfleet.kube.Kube's."""

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None: ...

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]: ...

    def exists(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool: ...

    def serves(self, api_version: str, kind: str) -> bool: ...

    def create(self, obj: dict[str, Any]) -> dict[str, Any]: ...

    def apply(self, obj: dict[str, Any], *, force: bool = True) -> dict[str, Any]: ...

    def apply_status(self, obj: dict[str, Any], *, manager: str) -> dict[str, Any]: ...

    def merge_patch_status(
        self, api_version: str, kind: str, name: str, namespace: str, status: dict[str, Any]
    ) -> dict[str, Any]: ...

    def merge_patch_metadata(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str,
        labels: dict[str, str | None],
        annotations: dict[str, str | None],
    ) -> None: ...

    def delete(
        self, api_version: str, kind: str, name: str, namespace: str | None = None, *, force: bool = False
    ) -> bool: ...


class Events(Protocol):
    """reconcile.events.EventRecorder."""

    def event(self, obj: Mapping[str, Any], type_: str, reason: str, message: str, *, once: bool = True) -> bool: ...


class Ledger(Protocol):
    """ledger.PlacementLedger: the placements of every ModelReplicaSet, for the planner."""

    def plan(
        self, key: Key, snap: Snapshot, nodes: Sequence[Node], requests: Sequence[ReplicaRequest], own: list[Assignment]
    ) -> Plan: ...

    def record(self, key: Key, assignments: list[Assignment]) -> None: ...


class InFlight(Protocol):
    """inflight.InFlightReader: requests each replica holds."""

    def fetch(self, targets: dict[str, tuple[str, int]]) -> dict[str, int | None]: ...


class AdapterApi(Protocol):
    """adapters.AdapterClient: one replica's LoRA adapter API."""

    def loaded(self) -> dict[str, str]: ...

    def load(self, name: str, source: str) -> None: ...

    def unload(self, name: str) -> None: ...


class PassServices(Protocol):
    """What a pass uses of its controller (ModelReplicaSetController provides it)."""

    kube: PassKube
    events: Events
    ledger: Ledger
    in_flight: InFlight
    clock: Callable[[], float]
    adapter_client: Callable[[str, str | None], AdapterApi]  # (endpoint, API key) -> the replica's adapter API

    def fan_out(self, fn: Callable[[T], object], items: Sequence[T]) -> None: ...
