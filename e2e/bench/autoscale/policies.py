"""The autoscale benchmark's policies: agentfleet's own and the baselines it is scored against (a
fixed fleet, HPA on utilization, KEDA on queue depth, the oracles)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from agentfleet.autoscale import (
    Capacity,
    FleetView,
    Observation,
    PolicyConfig,
    PolicyState,
    ReplicaSample,
    Starting,
    decide,
    goodput,
    merge_buckets,
    objectives_from_slo,
)
from agentfleet.autoscale.forecast import ForecastConfig, Profile, look_ahead, within_slo
from agentfleet.autoscale.goodput import E2E_METRIC, TPOT_METRIC, TTFT_METRIC
from agentfleet.autoscale.policy import LoadTime
from agentfleet.autoscale.terms import DOWN_HEADROOM
from agentfleet.autoscale.witness import QUEUE_METRIC, goodput_with_witnesses, queue_witness
from agentfleet.promql import UNSERVED_REASONS
from e2e.bench.autoscale.fleet import Fleet, Slot
from e2e.bench.autoscale.workload import (
    BURST_WINDOWS,
    GPUS_PER_REPLICA,
    LOAD_RANGE_S,
    MAX_REPLICAS,
    MIN_REPLICAS,
    PERIOD_S,
    TASK_SLO_S,
    TPOT_SLO_S,
    TTFT_SLO_S,
    Workload,
)

Policy = Callable[[Fleet, float], int]


def _hist_buckets(h: Any) -> list[tuple[float, float]]:
    return [(le, float(c)) for le, c in h.cumulative()]


READ_METRICS = (TTFT_METRIC, TPOT_METRIC, E2E_METRIC, QUEUE_METRIC)


def _snapshot(s: Slot, pre_fix: bool = False) -> tuple[dict[str, list[tuple[float, float]]], float]:
    """Histogram buckets and finished requests, as PromReader reads them (promql.py); ``pre_fix``:
    only ``stop`` and ``length`` count as finished, as the query before issue 46 did."""
    st = s.replica.stats()
    hists = (st.h_ttft, st.h_tpot, st.h_e2e, st.h_queue)
    buckets = {m: _hist_buckets(h) for m, h in zip(READ_METRICS, hists, strict=True)}
    served = ("stop", "length") if pre_fix else [k for k in st.request_success if k not in UNSERVED_REASONS]
    done = float(sum(st.request_success.get(k, 0) for k in served))
    return buckets, done


def _pre_fix_goodput(objectives: Any, buckets: dict[str, list[tuple[float, float]]]) -> Any:
    """goodput_with_witnesses as it was before issue 46: the witness over the queue count alone."""
    base = goodput(objectives, buckets)
    ttft = next((o for o in objectives if o.name == "ttft"), None)
    share = queue_witness(ttft, buckets[QUEUE_METRIC]) if ttft is not None and buckets.get(QUEUE_METRIC) else None
    if share is None or share.fraction is None or base.fraction is None or share.fraction >= base.fraction:
        return base
    return replace(base, fraction=share.fraction)


class HpaUtil:
    """HPA on a utilization metric (the engine's busy fraction, like DCGM's GPU utilization)."""

    def __init__(self, target: float, min_replicas: int = MIN_REPLICAS) -> None:
        self.target = target
        self.min_replicas = min_replicas
        self.recs: list[tuple[float, int]] = []

    def __call__(self, fleet: Fleet, now: float) -> int:
        active = fleet.active()
        current = len(active)
        utils = []
        for s in active:
            busy = s.replica.stats().busy_time_s
            if s.ready(now):
                utils.append(min(1.0, (busy - s.busy_mark) / PERIOD_S))
            s.busy_mark = busy
        if not utils:
            return current
        ready_mean = sum(utils) / len(utils)
        ratio = ready_mean / self.target
        if abs(ratio - 1.0) <= 0.1:
            raw = current
        elif ratio > 1.0:
            # Unready pods count as 0 % when scaling up (HPA's conservative assumption).
            raw = math.ceil(sum(utils) / self.target)
            raw = max(raw, current) if len(utils) < current else raw
        else:
            raw = math.ceil(current * ratio)
        return _hpa_behaviour(self.recs, now, current, raw, self.min_replicas)


class KedaQueue:
    """KEDA Prometheus scaler on sum(vllm:num_requests_waiting), AverageValue threshold."""

    def __init__(self, threshold: float, min_replicas: int = MIN_REPLICAS) -> None:
        self.threshold = threshold
        self.min_replicas = min_replicas
        self.recs: list[tuple[float, int]] = []

    def __call__(self, fleet: Fleet, now: float) -> int:
        active = fleet.active()
        waiting = sum(s.replica.engine.num_waiting for s in active if s.ready(now))
        return self.desired(waiting, len(active), now)

    def desired(
        self, waiting: float, current: int, now: float, down_window: float = 300.0, max_replicas: int = MAX_REPLICAS
    ) -> int:
        """The count for ``waiting`` requests over ``current`` replicas; the real-controller
        comparison (autoscale/real.py) calls this with the same metric it gives KEDA."""
        raw = math.ceil(waiting / self.threshold)
        return _hpa_behaviour(self.recs, now, current, raw, self.min_replicas, down_window, max_replicas)


def _hpa_behaviour(
    recs: list[tuple[float, int]],
    now: float,
    current: int,
    raw: int,
    min_replicas: int,
    down_window: float = 300.0,
    max_replicas: int = MAX_REPLICAS,
) -> int:
    """HPA defaults: up no window, max(4 pods, 100 %) per 15 s; down 300 s window, 100 % per 15 s."""
    recs.append((now, raw))
    recs[:] = [(t, r) for t, r in recs if t > now - down_window]
    if raw > current:
        desired = min(raw, current + max(4, current))
    else:
        desired = max(r for _, r in recs)
        desired = min(desired, current)
    return max(min_replicas, min(max_replicas, desired))


# What agentfleet was tuned on (AF_TUNING: seeds 1-3; burstCoveragePercent, targetFraction and the
# floor: 201-215, since a 5-seed mean moves by about 1.5 points, as much as the coverages to be told
# apart): never scored.
TUNING_SEEDS = (1, 2, 3, *range(201, 216))


AF_TUNING = {
    # A task is ~20 sequential calls, so it feels the calls' tail: the per-call goodput target
    # sits above the API's default 0.95. Swept on seed 1 (task goodput @ GPU-hours): 0.95 ->
    # 0.607 @ 15.1, 0.98 -> 0.642 @ 15.7, 0.985 -> 0.655 @ 15.9, 0.99 -> 0.662 @ 18.1.
    "target_fraction": float(os.environ.get("AF_TARGET_FRACTION", "0.985")),
    "concurrency_term": os.environ.get("AF_CONCURRENCY", "0") == "1",
    "down_window": float(os.environ.get("AF_DOWN_WINDOW", "300")),
    "max_up_step": int(os.environ.get("AF_MAX_UP", "8")),
    "max_down_step": int(os.environ.get("AF_MAX_DOWN", "1")),
    "window": float(os.environ.get("AF_WINDOW", "60")),
    # Seeds 1/2/3 (task goodput @ GPU-hours), without the task layer: 0.651 @ 17.65, 0.627 @ 20.22,
    # 0.687 @ 20.40; releasing a burst's replicas once the tasks fit half the fleet (the default):
    # 0.618 @ 14.17, 0.657 @ 16.80, 0.650 @ 16.51; adding the task scale-up term: 0.620 @ 19.93,
    # 0.586 @ 22.25, 0.643 @ 23.83 (it orders earlier in a burst, but the replicas still arrive
    # after the burst's arrivals end); with target 0.99: 0.638 @ 18.32, 0.537 @ 15.52, 0.690 @ 18.56.
    "task_term": os.environ.get("AF_TASKS", "0") == "1",
    "task_fast_down": os.environ.get("AF_TASK_DOWN", "1") == "1",
}


class Fixed:
    """No autoscaler: the same replica count throughout (a capacity-planned static fleet)."""

    def __init__(self, replicas: float) -> None:
        self.replicas = int(replicas)

    def __call__(self, fleet: Fleet, now: float) -> int:
        return self.replicas


class Oracle:
    """Not a baseline but a ceiling for capacity held before bursts: ``high`` replicas over each
    span, ``low`` elsewhere, ordered a longest load time plus a period ahead of it. The spans are
    what the oracle knows (oracle_spans): the windows the bursts start in, the most a policy could
    learn from history, or each burst's start itself, which no policy can know."""

    def __init__(self, spans: list[tuple[float, float]], high: int, low: int) -> None:
        self.spans, self.high, self.low = spans, high, low

    def __call__(self, fleet: Fleet, now: float) -> int:
        return self.high if any(a <= now < b for a, b in self.spans) else self.low


def oracle_spans(workload: Workload, mode: str) -> list[tuple[float, float]]:
    """``window``: from a load time before each window opens until its burst ends (it sees the
    burst begin and end, as the standby release does); ``onset``: from a load time before each
    burst. Both hold a task SLO past the burst's end, for the tasks it started."""
    day = workload.minutes * 60.0
    lead = LOAD_RANGE_S[1] + PERIOD_S
    spans = []
    for (lo, _), (start, dur) in zip(BURST_WINDOWS, workload.bursts, strict=True):
        opens = lo * day if mode == "window" else start * day
        spans.append((opens - lead, start * day + dur + TASK_SLO_S))
    return spans


def forecast_config(minutes: float, coverage: float) -> ForecastConfig:
    """The product's defaults with the day compressed to the run: one run is one day, so the
    period and the burst season (an hour of a day) shrink with it; the trailing level that tells
    an onset stays in real seconds (bursts are as long in both)."""
    period = minutes * 60.0
    d = ForecastConfig()
    return replace(
        d,
        coverage=coverage,
        period_seconds=period,
        season_seconds=d.season_seconds * period / d.period_seconds,
        gpus_per_replica=GPUS_PER_REPLICA,
    )


@dataclass(frozen=True)
class Memory:
    """What an operator keeps from earlier days: the profile (its ConfigMap), the learned load
    time (status.learnedModelLoadSeconds); the day index offsets the clock so days follow on."""

    profile: dict[str, Any] | None = None
    load_s: float | None = None
    day: int = 0


class AgentfleetPolicy:
    def __init__(
        self,
        window: float = AF_TUNING["window"],
        initial_load_s: float = 300.0,
        min_replicas: int = MIN_REPLICAS,
        forecast: ForecastConfig | None = None,
        memory: Memory | None = None,
        target_fraction: float | None = None,
        pre_fix: bool = False,
    ) -> None:
        self.pre_fix = pre_fix  # read as the code before issue 46 did (_snapshot, _pre_fix_goodput)
        self.config = PolicyConfig(
            min_replicas=min_replicas,
            max_replicas=MAX_REPLICAS,
            target_queue_depth=4,
            kv_threshold=0.9,
            # AF_CONCURRENCY=1 (0.581 @ 18.9 GPU-h with 0.99), AF_DOWN_WINDOW=600 (0.610 @ 29.0:
            # holds GPUs ordered too late for a burst) and AF_WINDOW=30 (0.627 @ 18.8) were worse.
            target_fraction=AF_TUNING["target_fraction"] if target_fraction is None else target_fraction,
            concurrency_term=AF_TUNING["concurrency_term"],
            task_term=AF_TUNING["task_term"],
            task_fast_down=AF_TUNING["task_fast_down"],
            window_seconds=window,
            period_seconds=PERIOD_S,
            up_window_seconds=15.0,
            down_window_seconds=AF_TUNING["down_window"],
            # As HPA's default allows (max(4 pods, 100 %) per 15 s): a burst is met in one order.
            max_up_step=AF_TUNING["max_up_step"],
            max_down_step=AF_TUNING["max_down_step"],
            initial_load_seconds=initial_load_s,
        )
        self.state = PolicyState.initial(self.config)
        self.objectives = objectives_from_slo(int(TTFT_SLO_S * 1000), int(TPOT_SLO_S * 1000), 0)
        self.reasons: list[str] = []
        self.forecast = forecast
        memory = memory or Memory()
        self.offset = memory.day * (forecast.period_seconds if forecast else 0.0)
        self.profile = Profile.from_json(memory.profile, forecast) if memory.profile and forecast else Profile()
        if memory.load_s:
            self.state = replace(self.state, load_time=LoadTime(memory.load_s, samples=1))
        if self.profile.capacity:
            # As the controller does after a restart: the failure level comes back with the profile.
            self.state = replace(self.state, tight_tasks_per_replica=self.profile.capacity / DOWN_HEADROOM)
        self.terms: list[tuple[float, str]] = []

    def memory(self, day: int) -> Memory:
        return Memory(
            self.profile.to_json(), self.state.load_time.seconds if self.state.load_time.samples else None, day
        )

    def __call__(self, fleet: Fleet, now: float) -> int:
        active = fleet.active()
        ready = [s for s in active if s.ready(now)]
        self.state = replace(
            self.state, load_time=self.state.load_time.observe({s.replica.name: s.load_s for s in ready})
        )
        samples = []
        per_pod: dict[str, list[list[tuple[float, float]]]] = {m: [] for m in READ_METRICS}
        completed = 0.0
        for s in ready:
            st = s.replica.stats()
            samples.append(ReplicaSample(s.replica.name, st.num_waiting, st.num_running, st.kv_usage))
            buckets, done = _snapshot(s, self.pre_fix)
            s.hist_marks.append((now, buckets, done))
            # increase(...[window]) per pod: now minus the oldest mark inside the window.
            while len(s.hist_marks) > 1 and s.hist_marks[0][0] < now - self.config.window_seconds:
                s.hist_marks.pop(0)
            t0, old, done0 = s.hist_marks[0]
            if t0 < now:
                for m, b in buckets.items():
                    per_pod[m].append([(le, c - oc) for (le, c), (_, oc) in zip(b, old[m], strict=True)])
                completed += (done - done0) / (now - t0)
        merged = {m: merge_buckets(v) for m, v in per_pod.items() if v}
        read = _pre_fix_goodput if self.pre_fix else goodput_with_witnesses
        gp = read(self.objectives, merged)
        fleet_view = FleetView(
            current=len(active),
            ready=tuple(s.replica.name for s in ready),
            starting=tuple(Starting(s.replica.name, now - s.created) for s in active if not s.ready(now)),
            ready_ages={s.replica.name: now - s.created - s.load_s for s in ready},
        )
        # The controller reads the same figure from the AgentFleets whose modelRef is this model.
        at = now + self.offset
        obs = Observation(
            at=at,
            samples=tuple(samples),
            goodput=gp,
            completion_rate=completed or None,
            tasks=float(fleet.tasks_in_flight),
        )
        floors: tuple[Any, ...] = ()
        hold = None
        if self.forecast is not None:
            tight = self.state.tight_tasks_per_replica
            ok = within_slo(
                obs.tasks,
                len(ready),
                gp.fraction if gp else None,
                bool(gp and gp.significant),
                self.config.target_fraction,
            )
            planned = look_ahead(
                self.forecast,
                self.profile,
                (),
                at,
                obs.tasks,
                tight * DOWN_HEADROOM if tight else None,
                self.state.load_time.seconds,
                PERIOD_S,
                ok,
                self.config.window_seconds,
            )
            self.profile, floors, hold = planned.profile, planned.floors, planned.hold
        out = decide(
            self.config, self.state, fleet_view, obs, Capacity(placeable_extra=MAX_REPLICAS - len(active)), floors, hold
        )
        self.state = out.state
        self.terms.append((now, out.decision.term))
        if out.decision.changed:
            self.reasons.append(f"t={now:6.0f}s {out.decision.reason}")
        return out.decision.desired
