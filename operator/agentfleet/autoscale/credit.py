"""When the credit for replicas still loading must be lifted (pure).

The policy credits an order in flight: while its replicas load, the windowed goodput still
describes the fleet before them, so re-reading it would order the same GPUs again. The last
round's collapse test (goodput under half of what the order was sized on, both floored at 0.2)
misses two cases the benchmark showed:

- the order was sized when goodput was already low: 0.1 and then 0.0 floor to the same 0.2, so a
  +1 ordered at a burst's first seconds stayed credited while goodput sat at zero for minutes;
- agent tasks keep arriving: the engine's requests in the system stay flat (closed loops, a full
  KV cache), so only the task layer shows the load the order was not sized for.

So the credit is also lifted when the agent tasks queued and in flight doubled (``TASK_RISE``)
and by at least one replica's worth since the order, and outgrew what the whole fleet, loading
replicas included, carries at that many tasks per replica (below that the order was big enough,
however the tasks rose: a rise from 1 task to 3 once ordered 9 replicas for 3 tasks); or when
goodput was zero over a whole window that began after the order (the order's replicas had their
chance to show it was enough).
"""

from __future__ import annotations

from dataclasses import dataclass

TASK_RISE = 2.0
ZERO_GOODPUT = 0.01  # at or below: no request met the SLO (bucket rounding leaves crumbs)


@dataclass(frozen=True)
class OrderInFlight:
    at: float | None  # when the order was placed
    tasks: float | None  # agent tasks it was sized on


def lift(
    order: OrderInFlight,
    now: float,
    window_seconds: float,
    tasks: float | None,
    per_replica: float | None,
    goodput: float | None,
    fleet: int | None = None,
) -> str | None:
    """Why the credit is lifted (a clause for the decision's reason), or None to keep it."""
    room = fleet * per_replica if fleet and per_replica else 0.0
    if (
        order.tasks is not None
        and tasks is not None
        and tasks >= TASK_RISE * order.tasks
        and tasks - order.tasks >= (per_replica or 1.0)
        and tasks > room
    ):
        return (
            f"{tasks:.0f} agent tasks, up from {order.tasks:.0f} when the replicas loading were ordered: credit lifted"
        )
    if order.at is not None and goodput is not None and goodput <= ZERO_GOODPUT and now - order.at >= window_seconds:
        return f"goodput {goodput:.2f} for the whole {window_seconds:.0f}s window since the last order: credit lifted"
    return None
