"""The placements this process has made, until each ModelReplicaSet's status shows them.

Plans are made one at a time, against every other ModelReplicaSet's latest placements (this
process's, else their status), so two replicas planned in parallel never get the same GPUs.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from agentfleet.controllers.modelreplicaset.caches import Key, Snapshot
from agentfleet.placement import Assignment, ReplicaRequest, assignment_from_status, plan


class PlacementLedger:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._placed: dict[Key, list[Assignment]] = {}

    def plan(
        self, key: Key, snap: Snapshot, nodes: Sequence[Any], requests: Sequence[ReplicaRequest], own: list[Assignment]
    ) -> Any:
        """Plan under the process-wide lock and remember ours at once."""
        with self._lock:
            existing = list(own)
            for other, records in snap.placements.items():
                if other == key or other in self._placed:
                    continue
                existing += [a for rec in records if (a := assignment_from_status(other[0], other[1], rec)) is not None]
            for other, assignments in self._placed.items():
                if other != key:
                    existing += assignments
            result = plan(list(nodes), list(requests), existing)
            self._placed[key] = [a for a in (*result.kept, *result.placed) if a.owner == f"{key[0]}/{key[1]}"]
            return result

    def record(self, key: Key, assignments: list[Assignment]) -> None:
        with self._lock:
            self._placed[key] = assignments

    def forget(self, key: Key) -> None:
        with self._lock:
            self._placed.pop(key, None)
