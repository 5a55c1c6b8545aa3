"""The API server's refusal of one object, raised by the client (agentfleet.kube) and reported by
the reconcile framework (agentfleet.reconcile.shape) on the object being reconciled. Its own module:
the pure modules import the framework's vocabulary, and the client is I/O."""

from __future__ import annotations


class Rejected(Exception):  # noqa: N818 - the API server's verdict on one object, not our failure
    """The API server refused to apply KIND/NAME; ``message`` is its own (it names the field)."""

    def __init__(self, kind: str, name: str, status: int, message: str) -> None:
        super().__init__(f"the API server refused {kind}/{name} ({status}): {message}")
        self.kind, self.name, self.status, self.message = kind, name, status, message
