"""Prometheus metrics of the worker and the task API (all named agentfleet_*).

Module-level collectors on the default registry: one process is one worker or one API server,
and /metrics serves the default registry.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from agentfleet_runtime.breaker import BreakerState

# Task latency spans seconds to many minutes; model calls tens of ms to a minute or two.
TASK_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600)
CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 80, 160)

TASKS = Counter(
    "agentfleet_tasks_total", "Tasks that ended, by outcome (final_answer, max_steps, max_tokens, timeout, max_cost, cancelled, failed).", ["outcome"]
)
TASK_SECONDS = Histogram("agentfleet_task_duration_seconds", "Wall time from submission to end of tasks that ended here.", buckets=TASK_BUCKETS)
TASK_STEPS = Histogram("agentfleet_task_steps", "Model calls (steps) per ended task.", buckets=(1, 2, 3, 5, 8, 12, 20, 30, 50, 100, 200))
MODEL_SECONDS = Histogram("agentfleet_model_call_duration_seconds", "Latency of one model HTTP call attempt.", ["outcome"], buckets=CALL_BUCKETS)
MODEL_RETRIES = Counter("agentfleet_model_call_retries_total", "Model call attempts that were retried (5xx, 429, timeout, connection error).")
TOKENS = Counter("agentfleet_tokens_total", "Tokens sent to and received from the model.", ["direction"])
# Children resolved once: labels() is a dict lookup under a lock, paid on every step otherwise.
TOKENS_IN = TOKENS.labels("input")
TOKENS_OUT = TOKENS.labels("output")
COST = Counter("agentfleet_cost_total", "Cost of model calls in the pricing currency.", ["currency"])
IN_FLIGHT = Gauge("agentfleet_tasks_in_flight", "Tasks this worker holds right now.")
TASK_RETRIES = Counter("agentfleet_task_retries_total", "Failed task attempts, by reason (error, lease_expired).", ["reason"])
RELEASED = Counter("agentfleet_tasks_released_total", "Tasks handed back to the queue by a draining worker.")
QUEUE_DEPTH = Gauge("agentfleet_queue_depth", "Tasks on the stream not yet delivered to any worker.")
QUEUE_PENDING = Gauge("agentfleet_queue_pending", "Tasks delivered to a worker and not yet acknowledged.")
QUEUE_LAG = Gauge("agentfleet_queue_oldest_age_seconds", "Age of the oldest task waiting to be delivered (stream lag in time).")
QUEUE_DELAYED = Gauge("agentfleet_queue_delayed", "Tasks waiting out a retry backoff.")
TOOL_CALLS = Counter("agentfleet_tool_calls_total", "Tool calls by tool and outcome (ok, error, timeout, breaker_open).", ["tool", "outcome"])
TOOL_SECONDS = Histogram("agentfleet_tool_call_duration_seconds", "Tool call latency.", ["tool"], buckets=CALL_BUCKETS)
BREAKER = Gauge("agentfleet_tool_breaker_state", "Circuit breaker of a tool in this worker: 0 closed, 1 half-open, 2 open.", ["tool"])
RETRIEVAL_CACHE = Counter("agentfleet_retrieval_cache_total", "Retrieval queries answered from the Redis cache (hit) or the index (miss).", ["result"])
STEP_OVERHEAD = Histogram(
    "agentfleet_step_overhead_seconds",
    "Time of one step spent outside the model call and the tools (prompt, checkpoints, bookkeeping).",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
)
API_REQUESTS = Counter("agentfleet_api_requests_total", "Task API requests by route and status code.", ["route", "code"])


class ModelObserver:
    """The hook OpenAIChatClient reports call attempts to."""

    def __init__(self) -> None:
        self._by_outcome = {o: MODEL_SECONDS.labels(o) for o in ("ok", "error", "timeout")}

    def __call__(self, outcome: str, seconds: float) -> None:
        (self._by_outcome.get(outcome) or MODEL_SECONDS.labels(outcome)).observe(seconds)

    def retry(self) -> None:
        MODEL_RETRIES.inc()


_tool_children: dict[tuple[str, str], tuple[Any, Any]] = {}
_cost_children: dict[str, Any] = {}


def spent(currency: str, amount: float) -> None:
    """Add a model call's cost (per step: the labelled child is looked up once per currency)."""
    child = _cost_children.get(currency)
    if child is None:
        child = _cost_children[currency] = COST.labels(currency)
    child.inc(amount)


_breaker_children: dict[str, Any] = {}


def tool_called(tool: str, outcome: str, seconds: float) -> None:
    pair = _tool_children.get((tool, outcome))
    if pair is None:
        pair = _tool_children[(tool, outcome)] = (TOOL_CALLS.labels(tool, outcome), TOOL_SECONDS.labels(tool))
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
