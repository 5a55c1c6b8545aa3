"""A fleet's task statistics over the last hour, read from its Redis.

Every root task that ends (done, cancelled, dead) is recorded by the finish script (lua.py) in the
sorted set ``af:<fleet>:finished``, scored by its end time, as ``id|duration_s|cost_nanos|status``;
the script trims it to one hour and FINISHED_CAP entries. This module turns that record and the
stream's consumer group into the figures the AgentFleet's status shows. ``summarize`` is pure;
``read_fleet_stats`` takes a synchronous redis-py client (the operator's), ``TaskStore.fleet_stats``
the asynchronous one (the runtime's).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from agentfleet_contract.fleet_keys import CONSUMER_GROUP, Keys
from agentfleet_contract.percentiles import percentile

FINISHED_WINDOW_SECONDS = 3600  # the finish script keeps one hour of finished root tasks
FINISHED_CAP = 100_000  # ... and at most this many, so the set stays bounded at any rate


@dataclass(frozen=True, slots=True)
class FleetStats:
    queue_depth: int  # tasks waiting in the stream (consumer-group lag)
    in_flight: int  # delivered to a worker, not yet acknowledged
    tasks_per_hour: int  # root tasks finished within the window
    p95_seconds: float | None  # None: nothing finished within the window
    mean_cost: float | None  # in the pricing currency; None as above
    capped: bool = False  # the record hit FINISHED_CAP: tasks_per_hour is a lower bound
    awaiting_approval: int = 0  # tasks parked until a person decides a tool call (no worker holds them)


def parse_member(member: str) -> tuple[float, int] | None:
    """(duration seconds, cost nanos) of one record, or None for a malformed one."""
    parts = member.rsplit("|", 3)
    if len(parts) != 4:
        return None
    try:
        return float(parts[1]), int(float(parts[2]))
    except ValueError:
        return None


def summarize(members: Iterable[str], *, depth: int, in_flight: int) -> FleetStats:
    durations: list[float] = []
    costs: list[int] = []
    for m in members:
        got = parse_member(m)
        if got is not None:
            durations.append(got[0])
            costs.append(got[1])
    if not durations:
        return FleetStats(depth, in_flight, 0, None, None)
    return FleetStats(
        queue_depth=depth,
        in_flight=in_flight,
        tasks_per_hour=len(durations),
        p95_seconds=round(percentile(durations, 95), 3),
        mean_cost=sum(costs) / len(costs) / 1e9,
        capped=len(durations) >= FINISHED_CAP,
    )


def group_counts(groups: Sequence[Mapping[str, Any]], stream_length: int) -> tuple[int, int]:
    """(lag, pending) of the workers' consumer group from XINFO GROUPS; (length, 0) before it exists."""
    g = next((g for g in groups if g.get("name") == CONSUMER_GROUP), None)
    if g is None:
        return stream_length, 0
    pending = int(g.get("pending") or 0)
    lag = g.get("lag")
    if lag is None:  # an entry was deleted mid-stream: Redis cannot say; estimate from the length
        lag = max(0, stream_length - pending)
    return int(lag), pending


def read_fleet_stats(r: Any, fleet: str, now: float | None = None, namespace: str = "") -> FleetStats:
    """With a synchronous redis-py client (decode_responses=True). Raises redis errors as they come.
    ``namespace``: the AgentFleet's (its keys are af:<namespace>/<fleet>:...)."""
    keys = Keys(fleet, namespace)
    now = time.time() if now is None else now
    pipe = r.pipeline(transaction=False)
    pipe.exists(keys.stream)
    pipe.xlen(keys.stream)
    pipe.zrangebyscore(keys.finished, now - FINISHED_WINDOW_SECONDS, "+inf")
    pipe.zcard(keys.approvals)
    exists, length, members, waiting = pipe.execute()
    groups = r.xinfo_groups(keys.stream) if exists else []
    depth, pending = group_counts(groups, int(length or 0))
    return replace(summarize(members, depth=depth, in_flight=pending), awaiting_approval=int(waiting or 0))
