"""Redis key layout of one fleet. Every key starts with ``af:<namespace>/<fleet>:`` so fleets can
share a Redis, two AgentFleets of one name in two namespaces included. Fleets from before the
namespace was part of the key (``af:<fleet>:``, ``Keys(fleet)`` without a namespace) are moved on
by ``agentfleet_runtime.store.migrate``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

CONSUMER_GROUP = "workers"  # the consumer group every worker of a fleet reads the task stream with


_TASK_KEYS_CACHED = 8192  # tasks whose key names are kept (a worker's in flight, with room)


def _scoped_digest(tenant: str, name: str) -> str:
    # The tenant is part of what is hashed, so two tenants' equal names never meet in one key; the
    # separator cannot occur in a tenant name (tenants.TENANT_NAME).
    return hashlib.sha256(f"{tenant}\n{name}".encode() if tenant else name.encode()).hexdigest()[:40]


@dataclass(frozen=True, slots=True)
class Keys:
    fleet: str
    namespace: str = ""  # the AgentFleet's namespace: "" is the layout from before it was in the key
    # Derived once: every checkpoint names four keys of its task, and building them per call was
    # a visible share of a step's CPU at a thousand tasks.
    prefix: str = field(init=False, repr=False, compare=False)
    _task_keys: dict[str, tuple[str, str, str, str]] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "prefix", f"af:{self.namespace}/{self.fleet}:" if self.namespace else f"af:{self.fleet}:"
        )
        object.__setattr__(self, "_task_keys", {})

    @property
    def legacy_prefix(self) -> str:
        """Where this fleet's keys were before the namespace was part of them (``af:<fleet>:``)."""
        return f"af:{self.fleet}:"

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
    def approvals(self) -> str:
        """Sorted set of tasks waiting for a person's approval, scored by when it times out (approvals.py).

        lua.CANCEL derives this name from the stream's (prefix + "approvals"): keep the two in step."""
        return self.prefix + "approvals"

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

    def submission(self, idempotency_key: str, tenant: str = "") -> str:
        """The task an Idempotency-Key named, per tenant: one tenant's key never finds another's task."""
        # Hashed: callers choose keys, and their length or characters must not shape ours.
        return f"{self.prefix}submit:{_scoped_digest(tenant, idempotency_key)}"

    def session(self, session_id: str, tenant: str = "") -> str:
        """A session's task ids, per tenant: naming another tenant's session reaches none of its history."""
        return f"{self.prefix}session:{_scoped_digest(tenant, session_id)}"

    def tenant_live(self, tenant: str) -> str:
        """Set of a tenant's root tasks that may still be queued or running (pruned at admission)."""
        return f"{self.prefix}tenant:{_scoped_digest(tenant, '')}:live"

    def tenant_approvals(self, tenant: str) -> str:
        """Sorted set of one tenant's tasks waiting for an approval, scored as ``approvals``: the
        tenant's listing reads only these, so no other tenant's can crowd them out."""
        return f"{self.prefix}tenant:{_scoped_digest(tenant, '')}:approvals"

    def tenant_tasks(self, tenant: str) -> str:
        """Sorted set of a tenant's root tasks, scored by submission time in ms (SUBMIT adds them,
        pruned to the result TTL): what A2A's ListTasks reads, so a listing touches only the tenant's."""
        return f"{self.prefix}tenant:{_scoped_digest(tenant, '')}:tasks"

    def tenant_reserved(self, tenant: str) -> str:
        """Hash of the spend a tenant's live tasks reserved at admission (task id -> 1e-9 units,
        ``_total`` their sum): SUBMIT adds, a task's end releases (lua.PRELUDE's finish)."""
        return f"{self.prefix}tenant:{_scoped_digest(tenant, '')}:reserved"

    def tenant_calls(self, tenant: str) -> str:
        """Sorted set of a tenant's model calls in flight, each ``call|nanos`` (its worst case) scored
        by when the hold lapses: a call's hold against maxSpendPerDay (runtime model/spend.py)."""
        return f"{self.prefix}tenant:{_scoped_digest(tenant, '')}:calls"

    def tenant_spend(self, tenant: str, day: int) -> str:
        """What a tenant's model calls cost on one UTC day (days since the epoch), in 1e-9 currency units."""
        return f"{self.prefix}tenant:{_scoped_digest(tenant, '')}:spend:{day}"

    def retrieval_cache(self, tool: str, digest: str) -> str:
        return f"{self.prefix}rcache:{tool}:{digest}"
