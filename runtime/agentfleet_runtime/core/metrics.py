"""Prometheus metrics of the worker and the task API (all named agentfleet_*).

Module-level collectors on the default registry: one process is one worker or one API server,
and /metrics serves the default registry.

Updates made on every step (tokens, cost, step overhead, tool and model calls) go through
tallies: plain numbers summed in the event loop's thread and added to the collectors whenever the
registry is collected (a scrape), by a collector registered ahead of these metrics. A
prometheus_client update takes a lock and runs its checks per call: a few microseconds each, a
visible share of a step at a thousand tasks. A scrape sees every update made before it.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

from agentfleet_runtime.core.breaker import BreakerState


class _CounterTally:
    """``inc`` of a counter (or its labelled child), applied at the next flush."""

    __slots__ = ("_target", "_pending")

    def __init__(self, target: Any) -> None:
        self._target = target
        self._pending = 0.0

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self._pending += amount

    def flush(self) -> None:
        if self._pending:
            amount, self._pending = self._pending, 0.0
            self._target.inc(amount)


class _HistogramTally:
    """``observe`` of a histogram (or its labelled child): bucket counts and sum, applied at the
    next flush to the child's own buckets (what ``Histogram.observe`` does per value)."""

    __slots__ = ("_target", "_bounds", "_counts", "_sum", "_n")

    def __init__(self, target: Any) -> None:
        self._target = target
        self._bounds: list[float] = list(target._upper_bounds)
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        self._n = 0

    def observe(self, amount: float) -> None:
        self._counts[bisect_left(self._bounds, amount)] += 1  # the first bound >= amount, as observe
        self._sum += amount
        self._n += 1

    def flush(self) -> None:
        if not self._n:
            return
        counts, total = self._counts, self._sum
        self._counts, self._sum, self._n = [0] * len(self._bounds), 0.0, 0
        self._target._sum.inc(total)
        for i, c in enumerate(counts):
            if c:
                self._target._buckets[i].inc(c)


_tallies: list[_CounterTally | _HistogramTally] = []


def _counter_tally(target: Any) -> _CounterTally:
    t = _CounterTally(target)
    _tallies.append(t)
    return t


def _histogram_tally(target: Any) -> _HistogramTally:
    t = _HistogramTally(target)
    _tallies.append(t)
    return t


def flush() -> None:
    """Apply every pending tally to its collector (done by each collection of the registry)."""
    for t in _tallies:
        t.flush()


class _FlushOnCollect:
    """Registered before this module's metrics, so a collection flushes them before reading them."""

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> list[Any]:
        flush()
        return []


REGISTRY.register(_FlushOnCollect())

# Task latency spans seconds to many minutes; model calls tens of ms to a minute or two.
TASK_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)
CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 80, 160)

TASKS = Counter(
    "agentfleet_tasks_total",
    (
        "Tasks that ended, by outcome (final_answer, max_steps, max_tokens, timeout, max_cost, max_spend, max_context, "
        "cancelled, failed)."
    ),
    ["outcome"],
)
TASK_SECONDS = Histogram(
    "agentfleet_task_duration_seconds",
    "Wall time from submission to end of tasks that ended here.",
    buckets=TASK_BUCKETS,
)
TASK_STEPS = Histogram(
    "agentfleet_task_steps", "Model calls (steps) per ended task.", buckets=(1, 2, 3, 5, 8, 12, 20, 30, 50, 100, 200)
)
MODEL_SECONDS = Histogram(
    "agentfleet_model_call_duration_seconds",
    "Latency of one model HTTP call attempt.",
    ["outcome"],
    buckets=CALL_BUCKETS,
)
MODEL_RETRIES = Counter(
    "agentfleet_model_call_retries_total",
    "Model call attempts that were retried (5xx, 429, timeout, connection error).",
)
TOKENS = Counter("agentfleet_tokens_total", "Tokens sent to and received from the model.", ["direction"])
# Children resolved once (labels() is a dict lookup under a lock), updated through tallies.
TOKENS_IN = _counter_tally(TOKENS.labels("input"))
TOKENS_OUT = _counter_tally(TOKENS.labels("output"))
COST = Counter("agentfleet_cost_total", "Cost of model calls in the pricing currency.", ["currency"])
IN_FLIGHT = Gauge("agentfleet_tasks_in_flight", "Tasks this worker holds right now.")
TASK_RETRIES = Counter(
    "agentfleet_task_retries_total", "Failed task attempts, by reason (error, lease_expired).", ["reason"]
)
RELEASED = Counter("agentfleet_tasks_released_total", "Tasks handed back to the queue by a draining worker.")
QUEUE_DEPTH = Gauge("agentfleet_queue_depth", "Tasks on the stream not yet delivered to any worker.")
QUEUE_PENDING = Gauge("agentfleet_queue_pending", "Tasks delivered to a worker and not yet acknowledged.")
QUEUE_LAG = Gauge(
    "agentfleet_queue_oldest_age_seconds", "Age of the oldest task waiting to be delivered (stream lag in time)."
)
QUEUE_DELAYED = Gauge("agentfleet_queue_delayed", "Tasks waiting out a retry backoff.")
TOOL_CALLS = Counter(
    "agentfleet_tool_calls_total",
    "Tool calls by tool and outcome (ok, error, timeout, breaker_open).",
    ["tool", "outcome"],
)
TOOL_SECONDS = Histogram("agentfleet_tool_call_duration_seconds", "Tool call latency.", ["tool"], buckets=CALL_BUCKETS)
BREAKER = Gauge(
    "agentfleet_tool_breaker_state",
    "Circuit breaker of a tool in this worker: 0 closed, 1 half-open, 2 open.",
    ["tool"],
)
RETRIEVAL_CACHE = Counter(
    "agentfleet_retrieval_cache_total",
    "Retrieval queries answered from the Redis cache (hit) or the index (miss).",
    ["result"],
)
DECISION_REPAIRS = Counter(
    "agentfleet_decision_repairs_total",
    "Repair turns: model replies that failed validation (tool, arguments, policy) and were asked again.",
)
ANSWER_FIRST = Counter(
    "agentfleet_answer_first_total",
    "Answer-first calls (answerPolicy OneShot, Cascade) by outcome: answered (the task ended with it), "
    "declined (Cascade: its values were another thing's) or escalated (the loop went on with tools); "
    "reread counts first answers asked again over the same passages (Cascade's reread variant); held counts answers "
    "after a declined first answer (or a failed second reading) that stated what no passage holds and became the "
    "decline.",
    ["outcome"],
)
STEP_OVERHEAD_SECONDS = Histogram(
    "agentfleet_step_overhead_seconds",
    "Time of one step spent outside the model call and the tools (prompt, checkpoints, bookkeeping).",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
)
STEP_OVERHEAD = _histogram_tally(STEP_OVERHEAD_SECONDS)
API_REQUESTS = Counter(
    "agentfleet_api_requests_total", "Task API requests by route and status code.", ["route", "code"]
)
# The method is one A2A names (else "unknown": a caller's string never becomes a label), the outcome
# "ok" or the error's reason (a2a_wire.REASONS): a bounded set each.
A2A_REQUESTS = Counter(
    "agentfleet_a2a_requests_total",
    "A2A requests (JSON-RPC and HTTP+JSON) by method and outcome: ok, or the error's reason (TASK_NOT_FOUND, ...).",
    ["method", "outcome"],
)
# Tenants are the names in the fleet's token Secret (an operator's list, not a caller's choice),
# so these labels stay bounded.
TENANT_COST = Counter(
    "agentfleet_tenant_cost_total", "Cost of model calls by tenant, in the pricing currency.", ["tenant", "currency"]
)
TENANT_ADMISSIONS = Counter(
    "agentfleet_tenant_admissions_total",
    "Task API admissions by tenant and outcome: submissions admitted or refused (in_flight_limit, spend_limit,"
    " rate_limit: tokens per minute), event streams refused (stream_limit).",
    ["tenant", "outcome"],
)


class ModelObserver:
    """The hook OpenAIChatClient reports call attempts to."""

    def __init__(self) -> None:
        self._by_outcome = {o: _model_seconds(o) for o in ("ok", "error", "timeout")}

    def __call__(self, outcome: str, seconds: float) -> None:
        (self._by_outcome.get(outcome) or _model_seconds(outcome)).observe(seconds)

    def retry(self) -> None:
        MODEL_RETRIES.inc()


_model_children: dict[str, _HistogramTally] = {}


def _model_seconds(outcome: str) -> _HistogramTally:
    child = _model_children.get(outcome)
    if child is None:
        child = _model_children[outcome] = _histogram_tally(MODEL_SECONDS.labels(outcome))
    return child


_tool_children: dict[tuple[str, str], tuple[_CounterTally, _HistogramTally]] = {}
_tool_seconds: dict[str, _HistogramTally] = {}
_cost_children: dict[tuple[str, str], tuple[_CounterTally, _CounterTally | None]] = {}


def spent(currency: str, amount: float, tenant: str = "") -> None:
    """Add a model call's cost, to the fleet's and its tenant's counter (per step: the labelled
    children are looked up once per currency and tenant)."""
    pair = _cost_children.get((currency, tenant))
    if pair is None:
        by_tenant = _counter_tally(TENANT_COST.labels(tenant, currency)) if tenant else None
        pair = _cost_children[(currency, tenant)] = (_counter_tally(COST.labels(currency)), by_tenant)
    pair[0].inc(amount)
    if pair[1] is not None:
        pair[1].inc(amount)


_breaker_children: dict[str, Any] = {}


def tool_called(tool: str, outcome: str, seconds: float) -> None:
    pair = _tool_children.get((tool, outcome))
    if pair is None:
        hist = _tool_seconds.get(tool)
        if hist is None:
            hist = _tool_seconds[tool] = _histogram_tally(TOOL_SECONDS.labels(tool))
        pair = _tool_children[(tool, outcome)] = (_counter_tally(TOOL_CALLS.labels(tool, outcome)), hist)
    pair[0].inc()
    if outcome != "breaker_open":
        pair[1].observe(seconds)


_breaker_last: dict[str, int] = {}


def breaker_state(tool: str, state: BreakerState) -> None:
    # Reported around every tool call; the gauge (a lock) is touched only when the state changes.
    value = int(state)
    if _breaker_last.get(tool) == value:
        return
    gauge = _breaker_children.get(tool)
    if gauge is None:
        gauge = _breaker_children[tool] = BREAKER.labels(tool)
    gauge.set(value)
    _breaker_last[tool] = value


def retrieval_cache(hit: bool) -> None:
    RETRIEVAL_CACHE.labels("hit" if hit else "miss").inc()
