"""What the controller remembers about one ModelReplicaSet between reconciles.

Losing it (an operator restart) is safe: a failed replica's backoff counts from
status.placements[].failedAt, and children are re-applied once.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ModelReplicaSetState:
    failed_at: dict[str, float] = field(default_factory=dict)  # replica -> when it failed (fallback for old records)
    applied: dict[tuple[str, str, str], tuple[str, float]] = field(
        default_factory=dict
    )  # child -> (hash, when applied)
    surge_blocked: bool = False  # the last rolling-update surge could not be placed
    own_resource_versions: set[str] = field(default_factory=set)  # our status writes, echoed back by the watch
    unplaced: bool = False  # waiting for room: node changes wake it
    nodes: frozenset[str] = frozenset()  # nodes its replicas are on: their changes wake it
    quiet: bool = False  # its namespace is terminating: Events would be refused
    api_key_secret: bool = False  # the generated API key Secret is known to exist
    inference_pool_swept: bool = False  # an InferencePool no longer asked for was deleted since the operator started

    def remember_write(self, resource_version: str | None) -> None:
        if resource_version:
            # Our own write comes back as a watch event; it must not trigger another reconcile.
            self.own_resource_versions.add(resource_version)
            if len(self.own_resource_versions) > 32:
                self.own_resource_versions = {resource_version}
