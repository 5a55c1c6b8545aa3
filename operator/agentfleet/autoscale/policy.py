"""The ModelReplicaSet scaling policy: queue depth and goodput, with credit for loading replicas.

Pure: ``decide(config, state, fleet, observation, capacity)`` returns a ``Decision`` and the next
``PolicyState``; the controller (controllers/autoscaler.py) reads Prometheus and the pods, and
writes status. The same function drives the simulated-clock benchmark.

How one evaluation sizes the fleet (``serving`` = ready replicas, ``pending`` = replicas still
loading the model and not yet overdue):

1. Pressure terms, each a total replica count:
   - queue: when the mean waiting requests per replica exceed ``targetQueueDepthPerReplica``,
     ``ceil(waiting / target)`` replicas (each then has at most the target waiting);
   - KV cache: ``ceil(sum of usage / threshold)``: agents' histories must stay resident;
   - goodput: below ``targetFraction`` (with enough requests to mean something),
     ``ceil(serving x target / goodput)`` (goodput floored at 0.2), at least one more.
2. Credit for loading replicas. A waiting queue is a stock: while new replicas load (minutes) it
   keeps growing, and re-reading it every period orders the same GPUs again and again. So while
   replicas are pending, the queue and goodput terms may only order *beyond* them what the
   measured deficit rate needs: ``ceil(d(waiting + running)/dt / completions per replica per second)``
   replicas; if the pending ones cover that, the decision holds. A replica pending longer than
   twice the learned load time gets no credit (it is probably stuck). Replicas that became
   ready less than one window ago are credited the same way: the windowed goodput still
   describes the fleet before they arrived, and re-reading it would order the burst again.
   The load time is learned per ModelReplicaSet (EWMA of create->ready durations) and shown in
   ``status.learnedModelLoadSeconds``. The credit is lifted when goodput falls below half of
   what the order in flight was sized on: the order was too small (a +1 placed at a burst's
   first seconds). The new want is sized on the replicas the window measured and, with the
   task layer, the last order scaled by the rise in agent tasks since.
   - concurrency (optional, ``concurrency_term``, off by default): running requests per replica
     above 1.25 x the highest level at which the SLO was last seen to hold:
     ``ceil(running / that level)`` (reacts one period into a burst, but over-orders at light load).
   - tasks (optional, ``task_term``; needs ``Observation.tasks``, the tasks queued and in flight at
     the AgentFleets whose modelRef is this ModelReplicaSet): a task admitted now makes 10-30
     calls over the next minutes, so the task count leads the engine's queue. Tasks per replica
     (ready + loading) above the fewest at which the SLO was seen to fail on a settled fleet:
     ``ceil(tasks / (0.8 x that level))``. Loading replicas are already in the comparison, so
     this term is not credited again.
3. No pressure: the smallest count that keeps the KV residency under 80 % of the threshold, the
   running requests at most at the concurrency per replica at which the SLO last held, and the
   queue under target; zero traffic gives ``minReplicas``.
4. Stabilization (common.stabilize), max step and min/max (common.bound), then capacity: never
   more than the placement planner can place (ScalingLimited/InsufficientCapacity otherwise).
   With the task layer (``task_fast_down``, on by default), the replicas a scale-up added are
   released after one window instead of the down window once the tasks queued and in flight fit
   half the fleet (at 0.8 x the failure level above): every task that will call the model is
   already known, so the burst is over. Never below the count before that scale-up. Once the
   tasks fit half the replicas already serving, replicas still loading for a burst-sized order
   are cancelled at once, and for one window the lagging goodput/queue pressure is not acted on.
   That cancel is a Warning Event (``BurstShorterThanModelLoad``): a burst that ends before the
   replicas ordered for it load is served only by what was already running, so the remedy is
   standing capacity (``minReplicas``), not a faster policy. On the benchmark's 150 s bursts a
   fixed fleet of 4 beats every autoscaler for this reason (e2e/bench/autoscale_bench.py).

Missing data: Prometheus unreachable, or no ready replica reporting fresh samples -> hold the
current count, MetricsAvailable False, and no recommendation is recorded (so stale numbers never
act later). Some replicas silent -> the others' means stand in for them, with a note.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from agentfleet.autoscale.common import (
    METRICS_AVAILABLE,
    SCALING_ACTIVE,
    SCALING_LIMITED,
    Bounds,
    ConditionUpdate,
    Decision,
    Recommendation,
    bound,
    prune,
    stabilize,
)
from agentfleet.autoscale.goodput import Goodput

DOWN_HEADROOM = 0.8  # scale down only to where KV usage / concurrency stay under 80 % of the limit
STUCK_FACTOR = 2.0  # a replica loading longer than this x the learned load time gets no credit
OK_RUNNING_DECAY = 0.995  # per evaluation: the learned per-replica concurrency fades slowly
LOAD_TIME_ALPHA = 0.3
GOODPUT_FLOOR = 0.2
# Goodput below this share of what the order in flight was sized for lifts its credit (see decide).
COLLAPSE_RATIO = 0.5
MAX_SEEN = 512


@dataclass(frozen=True)
class PolicyConfig:
    min_replicas: int = 1
    max_replicas: int = 4
    target_queue_depth: int = 8
    kv_threshold: float = 0.9  # 0-1
    target_fraction: float = 0.95
    window_seconds: float = 60.0
    period_seconds: float = 15.0
    up_window_seconds: float = 30.0
    down_window_seconds: float = 300.0
    max_up_step: int = 4
    max_down_step: int = 1
    stale_after_seconds: float = 60.0  # a sample older than this counts as missing
    initial_load_seconds: float = 300.0  # prior for the model load time before any replica loaded
    # Scale up on running requests past the level seen within SLO. Off by default: at light load
    # the learned level is low and the term over-orders (benchmark: +2.4 GPU-h, no goodput gain).
    concurrency_term: bool = False
    # Scale up on tasks queued/in flight at the AgentFleets using this model (the task layer).
    # Off by default: it orders one to two periods earlier in a burst, but when bursts are
    # shorter than the model load time the replicas still arrive after them (benchmark, seeds
    # 1-3: +5.5 to +7.3 GPU-h, task goodput -7.1 to +0.2 points).
    task_term: bool = False
    # Once the tasks fit half the fleet, scale down after one window instead of the down window.
    task_fast_down: bool = True

    @classmethod
    def from_spec(cls, a: object, initial_load_seconds: float = 300.0) -> PolicyConfig:
        """From an ``api.modelreplicaset.Autoscaling`` (typed loosely: this module imports no API)."""
        g = a.goodput  # type: ignore[attr-defined]
        period = float(a.evaluation_period_seconds)  # type: ignore[attr-defined]
        return cls(
            min_replicas=a.min_replicas,  # type: ignore[attr-defined]
            max_replicas=a.max_replicas,  # type: ignore[attr-defined]
            target_queue_depth=a.target_queue_depth_per_replica,  # type: ignore[attr-defined]
            kv_threshold=a.kv_cache_usage_threshold_percent / 100.0,  # type: ignore[attr-defined]
            target_fraction=g.target_fraction,
            window_seconds=float(a.window_seconds),  # type: ignore[attr-defined]
            period_seconds=period,
            up_window_seconds=float(a.scale_up_stabilization_seconds),  # type: ignore[attr-defined]
            down_window_seconds=float(a.scale_down_stabilization_seconds),  # type: ignore[attr-defined]
            max_up_step=a.max_scale_up_step,  # type: ignore[attr-defined]
            max_down_step=a.max_scale_down_step,  # type: ignore[attr-defined]
            # Prometheus scrapes every few seconds; four periods without a sample means it is gone.
            stale_after_seconds=max(30.0, 4 * period),
            initial_load_seconds=initial_load_seconds,
        )

    @property
    def bounds(self) -> Bounds:
        return Bounds(self.min_replicas, self.max_replicas, self.max_up_step, self.max_down_step)


@dataclass(frozen=True)
class LoadTime:
    """EWMA of observed model load (create -> ready) durations for one ModelReplicaSet."""

    seconds: float
    samples: int = 0
    seen: frozenset[str] = frozenset()  # replicas already counted, so a pod is learned once

    def observe(self, durations: Mapping[str, float]) -> LoadTime:
        seconds, samples, seen = self.seconds, self.samples, set(self.seen)
        for name, d in sorted(durations.items(), key=lambda kv: kv[1]):
            if name in seen or d <= 0:
                continue
            # The first sample replaces the prior outright; later ones move it by alpha.
            seconds = d if samples == 0 else (1 - LOAD_TIME_ALPHA) * seconds + LOAD_TIME_ALPHA * d
            samples += 1
            seen.add(name)
        if len(seen) > MAX_SEEN:
            seen = set(sorted(seen)[-MAX_SEEN:])
        return LoadTime(seconds, samples, frozenset(seen))


@dataclass(frozen=True)
class PolicyState:
    load_time: LoadTime
    recommendations: tuple[Recommendation, ...] = ()
    waiting_history: tuple[tuple[float, float], ...] = ()
    ok_running_per_replica: float | None = None  # concurrency per replica at which the SLO held
    tight_tasks_per_replica: float | None = None  # fewest agent tasks per replica seen to fail the SLO
    burst_floor: int | None = None  # the replica count before the current scale-up began
    ordered_for: int | None = None  # the credited recommendation behind the last scale-up
    # The evidence that last scale-up was sized on (goodput fraction, agent tasks queued and in
    # flight); kept while its replicas load, so that a collapse since can be told from lag.
    ordered_goodput: float | None = None
    ordered_tasks: float | None = None
    burst_ended_at: float | None = None  # when replicas still loading for a burst were cancelled

    @classmethod
    def initial(cls, config: PolicyConfig) -> PolicyState:
        return cls(load_time=LoadTime(config.initial_load_seconds))


@dataclass(frozen=True)
class ReplicaSample:
    """One ready replica's gauges as last scraped; ``age_seconds`` is the sample's staleness."""

    name: str
    waiting: float
    running: float
    kv_usage: float | None
    age_seconds: float = 0.0


@dataclass(frozen=True)
class Starting:
    name: str
    age_seconds: float  # since the replica was created


@dataclass(frozen=True)
class FleetView:
    current: int  # the count in force: status.desiredReplicas, or the replicas that exist
    ready: tuple[str, ...]
    starting: tuple[Starting, ...] = ()
    # Seconds since each ready replica became Ready (where known). One that became ready within
    # the window is not yet in the windowed goodput: the window still describes the smaller fleet.
    ready_ages: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Observation:
    at: float
    samples: tuple[ReplicaSample, ...] = ()
    goodput: Goodput | None = None
    completion_rate: float | None = None  # finished requests/s over the window, whole fleet
    # Agent tasks queued + in flight at the AgentFleets that call this model (None: no task layer
    # known, e.g. clients outside agentfleet); a leading indicator of model demand.
    tasks: float | None = None
    error: str | None = None  # Prometheus unreachable or refused the query
    error_reason: str = "PrometheusUnavailable"
    schema_problem: str | None = None  # the engine speaks other metric names


@dataclass(frozen=True)
class Capacity:
    """How many replicas beyond the existing ones the placement planner could place now."""

    placeable_extra: int | None  # None: unknown (no planner input), no limit applied
    message: str = ""


@dataclass(frozen=True)
class Observed:
    queue_depth: int | None = None
    running: int | None = None
    goodput: float | None = None
    kv_cache_usage: float | None = None


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    state: PolicyState
    observed: Observed = field(default_factory=Observed)


def _slope(points: Sequence[tuple[float, float]]) -> float | None:
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


def _hold(config: PolicyConfig, state: PolicyState, fleet: FleetView, why: str, reason: str, status_reason: str) -> Outcome:
    conds = (
        ConditionUpdate(METRICS_AVAILABLE, False, reason, why),
        ConditionUpdate(SCALING_ACTIVE, False, status_reason, f"holding {fleet.current} replicas: {why}"),
    )
    d = Decision(fleet.current, fleet.current, None, f"holding {fleet.current}: {why}", conds, warning=reason)
    return Outcome(d, state)


def decide(config: PolicyConfig, state: PolicyState, fleet: FleetView, obs: Observation, capacity: Capacity | None = None) -> Outcome:
    now = obs.at
    current = fleet.current
    if obs.error is not None:
        return _hold(config, state, fleet, f"metrics unavailable ({obs.error})", obs.error_reason, "MetricsUnavailable")

    ready = set(fleet.ready)
    fresh = [s for s in obs.samples if s.age_seconds <= config.stale_after_seconds and (not ready or s.name in ready)]
    load_s = state.load_time.seconds
    pending = [s for s in fleet.starting if s.age_seconds <= STUCK_FACTOR * load_s]
    # Ready for less than the window: its capacity is not yet reflected in the measurements.
    settling = [n for n in fleet.ready if fleet.ready_ages.get(n, math.inf) < config.window_seconds]
    stuck = len(fleet.starting) - len(pending)
    notes: list[str] = []

    if not fresh:
        if ready:
            return _hold(config, state, fleet, f"none of {len(ready)} ready replicas reported fresh metrics", "MetricsStale", "MetricsUnavailable")
        if pending:
            why = f"{len(pending)} replicas loading the model (learned load time {load_s:.0f}s), none ready to measure"
            conds = (
                ConditionUpdate(METRICS_AVAILABLE, False, "NoReadyReplicas", why),
                ConditionUpdate(SCALING_ACTIVE, True, "WaitingForReplicas", why),
            )
            return Outcome(Decision(current, current, None, f"holding {current}: {why}", conds), state)
        # Nothing exists to measure: minReplicas (0 is allowed) is all this policy can justify.
        target, limited = bound(config.min_replicas, current, config.bounds)
        why = "no replicas to measure"
        conds = (ConditionUpdate(METRICS_AVAILABLE, False, "NoReadyReplicas", why), ConditionUpdate(SCALING_ACTIVE, True, "ValidMetrics", why), limited)
        return Outcome(Decision(current, target, config.min_replicas, _explain(current, target, [why], []), conds), state)

    serving = max(len(ready), len(fresh))
    silent = sorted(ready - {s.name for s in fresh})
    if silent:
        shown = ", ".join(silent[:3]) + ("..." if len(silent) > 3 else "")
        notes.append(f"{len(silent)} of {serving} replicas not reporting ({shown}): others' means used")
    mean_wait = sum(s.waiting for s in fresh) / len(fresh)
    mean_run = sum(s.running for s in fresh) / len(fresh)
    kv_known = [s.kv_usage for s in fresh if s.kv_usage is not None]
    mean_kv = sum(kv_known) / len(kv_known) if kv_known else None
    waiting = mean_wait * serving
    running = mean_run * serving
    gp = obs.goodput
    if gp is not None:
        notes.extend(gp.notes)
    if obs.schema_problem:
        notes.append(obs.schema_problem)

    # Waiting-queue growth over the window, for the credit of loading replicas.
    # Agents are closed loops (a task's next call waits for its last), so overload shows in the
    # requests in the system (waiting + running), not only in the queue.
    history = tuple((t, w) for t, w in state.waiting_history if t > now - config.window_seconds) + ((now, waiting + running),)
    growth = _slope(history)
    per_replica_rate = obs.completion_rate / serving if obs.completion_rate and serving else None

    target_q = config.target_queue_depth
    thr = config.kv_threshold
    clauses: list[str] = []
    wants: list[int] = []
    credit_base = serving + len(pending)

    # What the last scale-up was for: an order cut by maxScaleUpStep or capacity is finished in
    # the next periods even while its first replicas load; only growth beyond it is credited.
    in_flight = len(pending) + len(settling)
    ordered_for = state.ordered_for if in_flight else None
    tasks = obs.tasks  # agent tasks queued and in flight (None: no task layer)

    # The order in flight was too small: goodput has fallen below half of what it was sized on.
    # The credit exists because the windowed goodput lags: it still measures the fleet before
    # the order's replicas arrived, and it keeps sinking a little while the window fills with
    # the load the order already answered. But the replicas serving now are at least those it
    # was measured on (a fleet under pressure never shrinks), so a fall to under half means
    # load the order was not sized for. Waiting instead for its replicas to load and serve a
    # window held a +1 order for 4-5 minutes into a burst (benchmark, 600 s bursts). Agents are
    # closed loops and the KV cache is full in a burst, so the requests in the system stay flat
    # and the growth override in credited() never fires. Both sides of the comparison are
    # floored, so a collapse already sized at the floor does not re-fire on no new evidence.
    og = state.ordered_goodput if in_flight else None
    collapse = (
        og is not None
        and gp is not None
        and gp.significant
        and gp.fraction is not None
        and gp.fraction < config.target_fraction
        and max(gp.fraction, GOODPUT_FLOOR) < COLLAPSE_RATIO * max(og, GOODPUT_FLOOR)
    )
    # The replicas the window measured: those that became ready within it are not yet in it.
    measured = max(1, serving - len(settling))

    def credited(want: int) -> int:
        """Cap a queue/goodput want while replicas load (or have only just started serving):
        only the deficit rate beyond them. Without this, the windowed goodput - still measuring
        the fleet before the last order arrived - would order the same GPUs a second time."""
        base = max(credit_base, min(want, ordered_for or 0))
        if not in_flight or want <= base:
            return want
        if growth is not None and per_replica_rate and growth > 0:
            extra = math.ceil(growth / per_replica_rate)
            if extra > in_flight:
                return min(want, max(base, serving + extra))
        return base

    pressure = False
    if mean_wait > target_q:
        pressure = True
        raw_q = math.ceil(waiting / target_q)
        want_q = credited(raw_q)
        clauses.append(f"{waiting:.0f} waiting > {serving} x {target_q} target")
        if want_q < raw_q:
            clauses.append(_credit_note(pending, settling, load_s))
        wants.append(want_q)
    if mean_kv is not None and mean_kv > thr:
        pressure = True
        wants.append(math.ceil(mean_kv * serving / thr))
        clauses.append(f"KV cache {mean_kv:.2f} > {thr:.2f}")
    good = gp is not None and gp.significant
    if good and gp is not None and gp.fraction is not None and gp.fraction < config.target_fraction:
        pressure = True
        # Proportional, like HPA's ratio: attainment 0.5 of a 0.95 target wants ~1.9x the
        # replicas (at least one more); the floor keeps a total collapse from asking for infinity.
        raw_g = max(serving + 1, math.ceil(serving * config.target_fraction / max(gp.fraction, GOODPUT_FLOOR)))
        want_g = credited(raw_g)
        tf = f"{config.target_fraction:g}"
        shown = f"{gp.fraction:.2f}" if float(f"{gp.fraction:.2f}") < config.target_fraction else f"{gp.fraction:.4f}".rstrip("0")
        clauses.append(f"goodput {shown} < {tf}")
        if want_g < raw_g and not any("credited" in c for c in clauses):
            clauses.append(_credit_note(pending, settling, load_s))
        wants.append(want_g)
        if collapse and og is not None:
            # Sized on the fleet the window measured, and, with the task layer, scaled from the
            # last order by the tasks since: the goodput floor alone caps the step at 5x the
            # measured fleet, while the tasks tell how much the load rose (closed loops: each
            # task has its calls in the system). Never below what was already ordered.
            want_x = max(serving + 1, math.ceil(measured * config.target_fraction / max(gp.fraction, GOODPUT_FLOOR)))
            ot = state.ordered_tasks
            if tasks is not None and ot and ordered_for and tasks > ot:
                want_x = max(want_x, math.ceil(ordered_for * tasks / ot))
            if want_x > want_g:
                clauses.append(f"goodput {gp.fraction:.2f} < {COLLAPSE_RATIO:g} x {og:.2f} the last order was sized on: credit lifted")
                wants.append(want_x)

    ok_running = state.ok_running_per_replica
    if ok_running is not None:
        ok_running *= OK_RUNNING_DECAY
    if not pressure and good and mean_run > 0:
        # The SLO held at this concurrency: remember the highest such level for sizing.
        ok_running = max(ok_running or 0.0, mean_run)
    elif ok_running and config.concurrency_term and mean_run > ok_running / DOWN_HEADROOM:
        # Concurrency well past the highest level at which the SLO was seen to hold: a burst
        # shows here one evaluation after it starts, a window before goodput can say so.
        pressure = True
        raw_c = math.ceil(running / ok_running)
        want_c = credited(raw_c)
        clauses.append(f"{running:.0f} running > {serving} x {ok_running:.1f} seen within SLO")
        if want_c < raw_c and not any("credited" in c for c in clauses):
            clauses.append(_credit_note(pending, settling, load_s))
        wants.append(want_c)

    # The task layer: the fewest tasks per replica at which the SLO was seen to fail (on a
    # settled fleet) bounds what a replica can carry. Learning it from failures, not from the
    # highest load seen within SLO, keeps light load (where the SLO holds at any level) from
    # teaching a uselessly low figure that would then order GPUs for a handful of tasks.
    tight = state.tight_tasks_per_replica
    if tight is not None:
        tight /= OK_RUNNING_DECAY  # forgotten slowly upward: the tasks may have become lighter
    floor = state.burst_floor
    # The task layer says a burst is over: its tasks fit half the replicas already serving.
    tasks_fit = bool(config.task_fast_down and floor is not None and tasks is not None and tight and burst_over(serving, tasks, tight))
    # Replicas still loading for it were ordered for load that is gone: cancel them (only for a
    # burst-sized order, at least as many loading as serving; a +1 for a slight miss stays, or
    # a lull between calls would flap it). For one window after that, the windowed goodput and
    # queue still describe the burst: while the tasks still fit, that pressure is its past (and
    # teaches no failure level: tasks per replica are low only because the burst has drained).
    ended_at = state.burst_ended_at if state.burst_ended_at is not None and now - state.burst_ended_at < config.window_seconds else None
    cancel = tasks_fit and bool(pending) and current >= 2 * serving
    if tasks_fit and pressure and (cancel or ended_at is not None):
        pressure = False
        clauses.append(f"{tasks:.0f} agent tasks fit half the {serving} ready replicas: the burst is over, the window still shows it")
    if cancel:
        ended_at = now
    if tasks is not None and tasks > 0:
        if pressure and not in_flight:
            tight = min(tight if tight is not None else math.inf, tasks / serving)
        elif tight and config.task_term and tasks > credit_base * tight:
            # Replicas loading are in credit_base already: this term is not credited again.
            pressure = True
            raw_t = math.ceil(tasks / (tight * DOWN_HEADROOM))
            clauses.append(f"{tasks:.0f} agent tasks > {credit_base} x {tight:.1f} at which the SLO failed")
            wants.append(raw_t)

    if pressure:
        # Never shrink during pressure: replicas already loading are the answer being awaited.
        raw = max(*wants, credit_base)
    elif waiting == 0 and running == 0 and not obs.completion_rate:
        # Idle gauges alone are not "no traffic": agents spend much of a task in tool waits with
        # nothing at the engine. Nothing finished over the window either: then it is idle.
        raw = config.min_replicas
        clauses.append("no traffic")
    else:
        keep = [1, math.ceil(waiting / target_q)]
        if mean_kv is not None:
            keep.append(math.ceil(mean_kv * serving / (thr * DOWN_HEADROOM)))
        if ok_running:
            # The most requests in the system over the window, not this instant's sample: agents
            # alternate between model calls and tool waits, so one sample can catch a lull.
            peak = max([running, *(v for _, v in history)])
            keep.append(math.ceil(peak / (ok_running * DOWN_HEADROOM)))
        raw = min(max(keep), credit_base)
        if raw < current:
            parts = [f"{waiting:.0f} waiting", f"{running:.0f} running"]
            if mean_kv is not None:
                parts.append(f"KV cache {mean_kv:.2f}")
            if gp is not None and gp.fraction is not None:
                parts.append(f"goodput {gp.fraction:.2f}")
            clauses.append(", ".join(parts) + f" fit {raw}")
    if stuck:
        notes.append(f"{stuck} replicas loading longer than {STUCK_FACTOR:g} x {load_s:.0f}s get no credit")

    recs = prune(state.recommendations, now, max(config.up_window_seconds, config.down_window_seconds)) + ((now, raw),)
    target = stabilize(recs, now, current, config.up_window_seconds, config.down_window_seconds, slack=config.period_seconds)
    if config.task_fast_down and floor is not None and tasks is not None and tight and not pressure and burst_over(current, tasks, tight):
        # The task layer says what is coming: every task that will call the model is already
        # queued or in flight. Once they fit half the fleet, waiting out the long down window
        # only holds GPUs ordered for a burst that has ended. Only the replicas that burst
        # ordered go this way (never below the count before it), and only after a window of
        # recommendations agrees, which still guards against a lull between calls.
        quick = max(
            floor, stabilize(recs, now, current, config.up_window_seconds, max(config.window_seconds, config.period_seconds), slack=config.period_seconds)
        )
        if quick < target:
            target = quick
            notes.append(
                f"{tasks:.0f} agent tasks fit {math.ceil(tasks / (tight * DOWN_HEADROOM))}: releasing the burst's replicas after {config.window_seconds:.0f}s"
            )
    bounds = config.bounds
    late_order = False
    if cancel and floor is not None:
        keep_n = max(floor, serving, raw, current - len(pending))
        if keep_n < target:
            late_order = True
            notes.append(f"cancelling {target - keep_n} replicas still loading")
            # What the user can do about it: no order can serve a burst shorter than the load.
            # The two counts bracket the minReplicas that would have served it.
            notes.append(
                f"the burst ended before the replicas ordered for it loaded (load time {load_s:.0f}s): it met the {floor} replicas "
                f"the fleet had when it began and ordered up to {current}; bursts this short are served only by replicas already running, "
                f"and spec.autoscaling.minReplicas holds such capacity"
            )
            target = keep_n
            # Not-ready replicas hold no work (the ModelReplicaSet deletes them first, at once).
            bounds = replace(bounds, max_down_step=max(bounds.max_down_step, len(pending)))
    target, limited = bound(target, current, bounds)

    if capacity is not None and capacity.placeable_extra is not None:
        existing = len(ready) + len(fleet.starting)
        cap = existing + capacity.placeable_extra
        if target > cap and target > current:
            wanted = target
            # Keep what is already asked for; only the growth beyond what fits is refused.
            target = min(wanted, max(cap, current))
            limited = ConditionUpdate(
                SCALING_LIMITED,
                True,
                "InsufficientCapacity",
                f"wanted {wanted}, only {capacity.placeable_extra} more can be placed: {capacity.message}".rstrip(": "),
            )
            notes.append(f"capacity: {limited.message}")
    if limited.status and limited.reason not in ("InsufficientCapacity",) and target != raw:
        notes.append(limited.message)

    if target > current and floor is None:
        floor = current  # the count before this burst's orders
    elif floor is not None and target <= floor:
        floor = None
    if target > current:
        ordered = raw
        ordered_gp = gp.fraction if good and gp is not None else None
        ordered_tasks = tasks
    elif in_flight:
        ordered, ordered_gp, ordered_tasks = state.ordered_for, state.ordered_goodput, state.ordered_tasks
    else:
        ordered, ordered_gp, ordered_tasks = None, None, None  # nothing loading any more: the order is complete
    new_state = replace(
        state,
        recommendations=recs,
        waiting_history=history,
        ok_running_per_replica=ok_running,
        tight_tasks_per_replica=tight,
        burst_floor=floor,
        ordered_for=ordered,
        ordered_goodput=ordered_gp,
        ordered_tasks=ordered_tasks,
        burst_ended_at=ended_at,
    )
    metrics_cond = (
        ConditionUpdate(METRICS_AVAILABLE, False, "MetricsSchemaMismatch", obs.schema_problem)
        if obs.schema_problem
        else ConditionUpdate(METRICS_AVAILABLE, True, "MetricsRead", f"{len(fresh)} of {serving} replicas reporting")
    )
    reason = _explain(current, target, clauses, notes)
    conds = (metrics_cond, ConditionUpdate(SCALING_ACTIVE, True, "ValidMetrics", reason), limited)
    observed = Observed(
        queue_depth=round(waiting),
        running=round(running),
        goodput=gp.fraction if gp is not None else None,
        kv_cache_usage=mean_kv,
    )
    warning = "MetricsSchemaMismatch" if obs.schema_problem else "BurstShorterThanModelLoad" if late_order else None
    return Outcome(Decision(current, target, raw, reason, conds, warning=warning), new_state, observed)


def burst_over(current: int, tasks: float, tight: float) -> bool:
    """The tasks queued and in flight fit at most half the current replicas: the burst they
    were ordered for has ended (a margin this wide is no steady-load fluctuation)."""
    return 2 * math.ceil(tasks / (tight * DOWN_HEADROOM)) <= current


def _credit_note(pending: Sequence[Starting], settling: Sequence[str], load_s: float) -> str:
    parts = []
    if pending:
        parts.append(f"{len(pending)} loading credited (load time {load_s:.0f}s)")
    if settling:
        parts.append(f"{len(settling)} just ready credited")
    return ", ".join(parts)


def _explain(current: int, target: int, clauses: Sequence[str], notes: Sequence[str]) -> str:
    head = f"{current} -> {target}" if target != current else f"holding {current}"
    body = "; ".join([*clauses, *notes]) or "within targets"
    return f"{head}: {body}"[:1024]  # status.lastScaleReason's maxLength
