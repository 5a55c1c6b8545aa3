"""Wake on the task itself: while a ModelReplicaSet or an AgentFleet's workers sleep, one thread per
fleet blocks on the fleet's task stream (``XREAD BLOCK``) and asks for the sleeping objects'
evaluation the moment a task is added, instead of at the autoscaler's next poll.

The poll (``SLEEP_POLL_SECONDS``) was the largest share of the operator's wake overhead: a task
waited for it half a second on average, up to a whole one (docs/scale-to-zero.md). The poll stays
as the fallback: when the fleet's Redis cannot be read, or before the watch runs.

No task is missed between the evaluation that saw nothing and the watch's start: the watch reads
from the workers' consumer group's last-delivered id, so every entry added after the group's last
read is returned at once, and work already queued or in flight wakes without blocking at all.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

from agentfleet_contract.fleet_keys import CONSUMER_GROUP, Keys
from agentfleet_contract.fleet_stats import group_counts

log = logging.getLogger("agentfleet.wakewatch")

# How long one XREAD blocks: also how long a watch that is no longer wanted lingers.
WAKE_BLOCK_SECONDS = 5.0
EVERY_ENTRY = "0-0"

Fleet = tuple[str, str]  # (namespace, AgentFleet name)


def resume_id(length: int | None, groups: Sequence[Mapping[str, Any]]) -> str | None:
    """Where a watch of a fleet's task stream starts reading, from its XLEN (None: no stream yet)
    and XINFO GROUPS: the workers' group's last-delivered id, so that nothing added since is
    missed; every entry before the group exists (each is a queued task then, as in group_counts);
    None when tasks are already queued or in flight (wake now, without blocking)."""
    if length is None:
        return EVERY_ENTRY
    lag, pending = group_counts(groups, length)
    if lag or pending:
        return None
    g = next((g for g in groups if g.get("name") == CONSUMER_GROUP), None)
    return str(g.get("last-delivered-id") or EVERY_ENTRY) if g is not None else EVERY_ENTRY


def read_resume_id(r: Any, stream: str) -> str | None:
    """resume_id read with a synchronous redis-py client (decode_responses=True)."""
    if not r.exists(stream):
        return resume_id(None, [])
    return resume_id(int(r.xlen(stream)), r.xinfo_groups(stream))


class WakeWatch:
    """The watches: ``watch`` says which fleets' streams wake an object (none once it is not asleep);
    ``wake(key)`` is called from a watch's thread when a task arrives on one of them."""

    def __init__(
        self,
        connect: Callable[[str, str, float], Any | None],
        wake: Callable[[Hashable], None],
        block_seconds: float = WAKE_BLOCK_SECONDS,
    ) -> None:
        """``connect(namespace, fleet, socket_timeout)``: a redis-py client of the fleet's Redis, or
        None when it cannot be resolved (no URL, a Secret it may not use)."""
        self.connect, self.wake, self.block_seconds = connect, wake, block_seconds
        self._keys: dict[Fleet, set[Hashable]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def watch(self, key: Hashable, namespace: str, fleets: Iterable[str]) -> None:
        wanted = {(namespace, f) for f in fleets}
        start = []
        with self._lock:
            for fleet, keys in self._keys.items():
                if fleet not in wanted:
                    keys.discard(key)
            for fleet in wanted:
                if fleet not in self._keys:
                    self._keys[fleet] = set()
                    start.append(fleet)
                self._keys[fleet].add(key)
        for fleet in start:
            name = f"af-wake {fleet[0]}/{fleet[1]}"
            threading.Thread(target=self._run, args=(fleet,), daemon=True, name=name).start()

    def watched(self) -> dict[Fleet, set[Hashable]]:
        with self._lock:
            return {f: set(k) for f, k in self._keys.items() if k}

    def stop(self) -> None:
        self._stop.set()

    def _take(self, fleet: Fleet) -> set[Hashable]:
        """The keys a fleet's watch wakes now, ending the watch (the next evaluation of a key still
        asleep starts a new one)."""
        with self._lock:
            return self._keys.pop(fleet, set())

    def _wanted(self, fleet: Fleet) -> bool:
        with self._lock:
            if self._keys.get(fleet) or self._stop.is_set():
                return not self._stop.is_set()
            self._keys.pop(fleet, None)
            return False

    def _run(self, fleet: Fleet) -> None:
        namespace, name = fleet
        stream = Keys(name, namespace).stream
        r = None
        try:
            r = self.connect(namespace, name, self.block_seconds + 5.0)
            if r is None:
                self._stop.wait(self.block_seconds)  # as often as the reconnects of a fleet that cannot be read
                self._take(fleet)
                return
            while self._wanted(fleet):
                start = read_resume_id(r, stream)
                if start is None or r.xread({stream: start}, count=1, block=int(self.block_seconds * 1000)):
                    keys = self._take(fleet)
                    log.info("%s/%s: a task in the stream wakes %s", namespace, name, sorted(map(str, keys)))
                    for key in keys:
                        self.wake(key)
                    return
        except Exception as exc:  # noqa: BLE001 - the poll is the fallback; a watch never takes the operator down
            log.info("%s/%s: watching the task stream failed, polling instead: %.300s", namespace, name, exc)
            self._stop.wait(self.block_seconds)
            self._take(fleet)
        finally:
            if r is not None:
                r.close()
