"""What a VectorIndex pass uses of its controller and of the Kubernetes API, as Protocols: the pass
depends on these, not on the classes (VectorIndexController and agentfleet.kube.Kube provide them;
unit tests pass fakes of the same shape)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol


class PassKube(Protocol):
    """The API calls of a pass: agentfleet.kube.Kube's."""

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None: ...

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]: ...

    def apply(self, obj: dict[str, Any], *, force: bool = True) -> dict[str, Any]: ...

    def merge_patch_status(
        self, api_version: str, kind: str, name: str, namespace: str, status: dict[str, Any]
    ) -> dict[str, Any]: ...

    def delete(
        self, api_version: str, kind: str, name: str, namespace: str | None = None, *, force: bool = False
    ) -> bool: ...


class Events(Protocol):
    """reconcile.events.EventRecorder."""

    def event(self, obj: Mapping[str, Any], type_: str, reason: str, message: str, *, once: bool = True) -> bool: ...


class PassServices(Protocol):
    """What a pass uses of its controller (VectorIndexController provides it)."""

    kube: PassKube
    events: Events
    clock: Callable[[], float]  # time.monotonic: the ages of row counts and index checks
