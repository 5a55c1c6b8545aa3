"""The scaling policy's terms, each a pure function of a few numbers: how many replicas one
signal asks for (queue depth, KV cache, goodput, concurrency, agent tasks in flight), the credit
for replicas still loading, and how few replicas still keep headroom when nothing presses.
The reasoning behind each and the measurements that chose them: docs/autoscaling.md."""

from __future__ import annotations

import math
from collections.abc import Sequence

DOWN_HEADROOM = 0.8  # scale down only to where KV usage / concurrency stay under 80 % of the limit
OK_RUNNING_DECAY = 0.995  # per evaluation: the learned per-replica concurrency fades slowly
# Per evaluation, the fewest agent tasks per replica seen to fail the SLO is forgotten upward by
# 1 / this: doubling in about 6 h at 15 s periods. At 0.995 it doubled in 35 min, so the capacity
# the standing term sizes on depended on how long ago the fleet last failed (docs/autoscaling.md).
FAILURE_LEVEL_DECAY = 0.9995
GOODPUT_FLOOR = 0.2  # goodput is floored here, so a total collapse does not ask for infinity
# Goodput below this share of what the order in flight was sized for lifts its credit.
COLLAPSE_RATIO = 0.5


def queue_term(mean_waiting: float, waiting: float, target: int) -> int | None:
    """Mean waiting requests per replica above target: enough replicas that each has at most the
    target waiting. None when the queue is within target."""
    return math.ceil(waiting / target) if mean_waiting > target else None


def kv_term(mean_kv: float | None, serving: int, threshold: float) -> int | None:
    """KV cache usage above threshold (agents' histories must stay resident): enough replicas to
    bring the mean under it. None when within threshold or unknown."""
    if mean_kv is None or mean_kv <= threshold:
        return None
    return math.ceil(mean_kv * serving / threshold)


def goodput_term(serving: int, fraction: float, target_fraction: float) -> int:
    """Proportional, like HPA's ratio: attainment 0.5 of a 0.95 target wants ~1.9x the replicas,
    at least one more."""
    return max(serving + 1, math.ceil(serving * target_fraction / max(fraction, GOODPUT_FLOOR)))


def goodput_collapsed(fraction: float, ordered_fraction: float, target_fraction: float) -> bool:
    """Goodput has fallen under COLLAPSE_RATIO of what the order in flight was sized on: that
    order was too small, not merely still loading (the window lags, but a fleet under pressure
    never shrinks, so a fall this deep is new load). Both sides are floored, so a collapse
    already sized at the floor does not re-fire on no new evidence."""
    return fraction < target_fraction and max(fraction, GOODPUT_FLOOR) < COLLAPSE_RATIO * max(
        ordered_fraction, GOODPUT_FLOOR
    )


def collapse_term(
    measured: int,
    serving: int,
    fraction: float,
    target_fraction: float,
    *,
    tasks: float | None = None,
    ordered_tasks: float | None = None,
    ordered_for: int | None = None,
) -> int:
    """The want once a collapse lifts the credit: sized on the replicas the window measured and,
    with the task layer, the last order scaled by the rise in agent tasks since (closed loops:
    each task has its calls in the system, while the goodput floor alone caps the step at 5x)."""
    want = max(serving + 1, math.ceil(measured * target_fraction / max(fraction, GOODPUT_FLOOR)))
    if tasks is not None and ordered_tasks and ordered_for and tasks > ordered_tasks:
        want = max(want, math.ceil(ordered_for * tasks / ordered_tasks))
    return want


def concurrency_term(running: float, ok_running: float) -> int:
    """Running requests per replica past the highest level at which the SLO held: enough
    replicas to carry them at that level."""
    return math.ceil(running / ok_running)


def tasks_in_flight_term(tasks: float, tight: float) -> int:
    """Agent tasks queued and in flight, at DOWN_HEADROOM of the fewest tasks per replica at which
    the SLO was seen to fail: the replicas they will need (a task makes 10-30 calls over the next
    minutes, so the count leads the engine's queue)."""
    return math.ceil(tasks / (tight * DOWN_HEADROOM))


def burst_over(current: int, tasks: float, tight: float) -> bool:
    """The tasks queued and in flight fit at most half the current replicas: the burst they
    were ordered for has ended (a margin this wide is no steady-load fluctuation)."""
    return 2 * tasks_in_flight_term(tasks, tight) <= current


def loading_credit(
    want: int,
    *,
    base: int,
    in_flight: int,
    ordered_for: int | None,
    growth: float | None,
    per_replica_rate: float | None,
    serving: int,
) -> int:
    """Cap a queue/goodput/concurrency want while replicas load (or have only just started
    serving): the windowed signals still measure the fleet before the last order arrived, and
    re-reading them would order the same GPUs again. Only the measured growth of the requests in
    the system beyond what the loading replicas cover (`growth / per_replica_rate` replicas)
    orders more. `base` is the replicas serving and loading; an order cut by maxScaleUpStep or
    capacity (`ordered_for`) is finished even while its first replicas load."""
    base = max(base, min(want, ordered_for or 0))
    if not in_flight or want <= base:
        return want
    if growth is not None and per_replica_rate and growth > 0:
        extra = math.ceil(growth / per_replica_rate)
        if extra > in_flight:
            return min(want, max(base, serving + extra))
    return base


def is_idle(waiting: float, running: float, completion_rate: float | None) -> bool:
    """No traffic: idle gauges alone are not enough (agents spend much of a task in tool waits
    with nothing at the engine), so nothing may have finished over the window either."""
    return waiting == 0 and running == 0 and not completion_rate


def headroom_keep(
    waiting: float,
    target_queue: int,
    *,
    serving: int,
    mean_kv: float | None,
    kv_threshold: float,
    ok_running: float | None,
    peak_in_system: float,
) -> int:
    """With no pressure, the fewest replicas that keep the queue under target, the KV cache under
    DOWN_HEADROOM of its threshold and the peak requests in the system over the window (not one
    sample, which can catch a lull between calls) under DOWN_HEADROOM of the concurrency at which
    the SLO held."""
    keep = [1, math.ceil(waiting / target_queue)]
    if mean_kv is not None:
        keep.append(math.ceil(mean_kv * serving / (kv_threshold * DOWN_HEADROOM)))
    if ok_running:
        keep.append(math.ceil(peak_in_system / (ok_running * DOWN_HEADROOM)))
    return max(keep)


def slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope (per second) of (t, value) points; None with fewer than two instants."""
    if len(points) < 2:
        return None
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    if den <= 0:
        return None
    return sum((t - mt) * (v - mv) for t, v in points) / den


def capacity_clamp(
    target: int, current: int, existing: int, placeable_extra: int, why: str = ""
) -> tuple[int, str | None]:
    """Never more replicas than the placement planner can place: the existing ones plus
    `placeable_extra`. What is already asked for (`current`) is kept; only growth beyond what fits
    is refused. Returns the target and, when it was cut, the ScalingLimited message."""
    cap = existing + placeable_extra
    if target <= cap or target <= current:
        return target, None
    return min(target, max(cap, current)), f"wanted {target}, only {placeable_extra} more can be placed: {why}".rstrip(
        ": "
    )
