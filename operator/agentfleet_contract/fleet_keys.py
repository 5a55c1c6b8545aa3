"""Redis key layout of one fleet. Every key starts with ``af:<fleet>:`` so fleets can share a Redis."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

CONSUMER_GROUP = "workers"  # the consumer group every worker of a fleet reads the task stream with


_TASK_KEYS_CACHED = 8192  # tasks whose key names are kept (a worker's in flight, with room)


@dataclass(frozen=True, slots=True)
class Keys:
    fleet: str
    # Derived once: every checkpoint names four keys of its task, and building them per call was
    # a visible share of a step's CPU at a thousand tasks.
    prefix: str = field(init=False, repr=False, compare=False)
    _task_keys: dict[str, tuple[str, str, str, str]] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", f"af:{self.fleet}:")
        object.__setattr__(self, "_task_keys", {})

    def task_keys(self, task_id: str) -> tuple[str, str, str, str]:
        """(task, steps, events, children) of one task: ``task()``, ``steps()``, ... in one call."""
        keys = self._task_keys.get(task_id)
        if keys is None:
            if len(self._task_keys) >= _TASK_KEYS_CACHED:
                self._task_keys.clear()
            base = f"{self.prefix}t:{task_id}"
            keys = self._task_keys[task_id] = (base, base + ":steps", base + ":events", base + ":children")
        return keys

    @property
    def stream(self) -> str:
        """Stream of runnable tasks (entries carry the task id); read through consumer group CONSUMER_GROUP."""
        return self.prefix + "tasks"

    @property
    def dead(self) -> str:
        """Dead-letter stream: tasks that failed max attempts, with their last error."""
        return self.prefix + "dead"

    @property
    def delayed(self) -> str:
        """Sorted set of task ids waiting out a retry backoff, scored by the time they may run."""
        return self.prefix + "delayed"

    @property
    def finished(self) -> str:
        """Sorted set of root tasks finished in the last hour, scored by end time (agentfleet_contract.fleet_stats).

        lua.py derives this name from the stream's (prefix + "finished"): keep the two in step."""
        return self.prefix + "finished"

    @property
    def cancel_channel(self) -> str:
        return self.prefix + "cancel"

    @property
    def done_channel(self) -> str:
        return self.prefix + "done"

    def task(self, task_id: str) -> str:
        return f"{self.prefix}t:{task_id}"

    def steps(self, task_id: str) -> str:
        return f"{self.prefix}t:{task_id}:steps"

    def events(self, task_id: str) -> str:
        return f"{self.prefix}t:{task_id}:events"

    def children(self, task_id: str) -> str:
        return f"{self.prefix}t:{task_id}:children"

    def tool_result(self, task_id: str, step: int, call: int) -> str:
        """Recorded result of call ``call`` of step ``step``: a resumed step reuses it."""
        return f"{self.prefix}t:{task_id}:r:{step}:{call}"

    def submission(self, idempotency_key: str) -> str:
        # Hashed: callers choose keys, and their length or characters must not shape ours.
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]
        return f"{self.prefix}submit:{digest}"

    def session(self, session_id: str) -> str:
        digest = hashlib.sha256(session_id.encode()).hexdigest()[:40]
        return f"{self.prefix}session:{digest}"

    def retrieval_cache(self, tool: str, digest: str) -> str:
        return f"{self.prefix}rcache:{tool}:{digest}"
