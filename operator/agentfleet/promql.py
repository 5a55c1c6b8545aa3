"""Reads the autoscaler's inputs from Prometheus (prometheus-api-client); the only I/O of scaling.

Everything is an instant query over the replicas' vLLM series, selected by label matchers:

- gauges per replica: ``vllm:num_requests_waiting``, ``vllm:num_requests_running``,
  ``vllm:kv_cache_usage_perc``, each with ``timestamp(...)`` for the sample's age (an instant
  query returns the last sample up to 5 minutes old with the *query* time, so staleness must be
  asked for explicitly);
- latency histograms: ``sum by (le) (increase(<family>_bucket{...}[window]))`` per objective,
  i.e. per-pod increases summed by bucket edge (goodput.py does the arithmetic), plus the queue
  time histogram as the TTFT objective's witness (witness.py);
- throughput: ``sum(rate(vllm:request_success_total{finished_reason!~"abort|error|repetition"}[window]))``,
  or the same with ``finish_reason`` (``completion_rate_query``): every reason that served a client
  (``stop``, ``length``, and ``tool_calls`` where an engine counts tool calls apart);
- schema: ``count by (__name__) ({__name__=~"vllm:.+", ...})``. An engine that exposes a name
  vLLM removed (``vllm:gpu_cache_usage_perc``, ``vllm:gpu_prefix_cache_*``,
  ``vllm:time_per_output_token_seconds``) without its replacement, or lacks the current gauges, is reported as
  ``MetricsSchemaMismatch`` with the names found, and the terms that need the missing series are
  dropped (the queue still scales) - never silently read as zero.

Prometheus unreachable or refusing a query -> ``Observation.error`` (the policy holds).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from requests.exceptions import RequestException
from urllib3.util.retry import Retry

from agentfleet.autoscale.goodput import Objective
from agentfleet.autoscale.policy import Observation, ReplicaSample
from agentfleet.autoscale.witness import goodput_with_witnesses, witness_metrics
from agentfleet.autoscale.workers import WorkerSignals

log = logging.getLogger(__name__)

WAITING = "vllm:num_requests_waiting"
RUNNING = "vllm:num_requests_running"
KV_USAGE = "vllm:kv_cache_usage_perc"
REQUEST_SUCCESS = "vllm:request_success_total"
# Names removed from vLLM (deprecated 0.9-0.11, gone two minors later) -> their replacements.
LEGACY_NAMES = {
    "vllm:gpu_cache_usage_perc": KV_USAGE,
    "vllm:gpu_prefix_cache_queries_total": "vllm:prefix_cache_queries_total",
    "vllm:gpu_prefix_cache_hits_total": "vllm:prefix_cache_hits_total",
    "vllm:time_per_output_token_seconds_bucket": "vllm:request_time_per_output_token_seconds_bucket",
}
REQUIRED = (WAITING, RUNNING)
# Finish reasons of requests that served no client (vLLM's FinishReason); every other reason an
# engine counts (stop, length, tool_calls, ...) is a served answer (completion_rate_query).
UNSERVED_REASONS = ("abort", "error", "repetition")
UNSERVED_PATTERN = "|".join(UNSERVED_REASONS)

# AgentFleet runtime metrics (runtime/agentfleet_runtime/core/metrics.py).
TASK_QUEUE = "agentfleet_queue_depth"
TASKS_IN_FLIGHT = "agentfleet_tasks_in_flight"
TASK_QUEUE_AGE = "agentfleet_queue_oldest_age_seconds"


@dataclass(frozen=True)
class Target:
    """Which series belong to one ModelReplicaSet.

    ``matchers`` are PromQL label matchers without braces, e.g.
    ``namespace="team-a",model_name="llama-70b"``; ``replica_label`` names the label that tells
    replicas apart (``pod`` with Kubernetes service discovery, ``instance`` for static targets).
    """

    matchers: str
    replica_label: str = "pod"


class PromReader:
    def __init__(self, url: str, timeout_s: float = 5.0, now: Any = time.time) -> None:
        # One quick retry at most: an evaluation must finish well inside its period, and a down
        # Prometheus is a state to report, not something to wait out here.
        self.client = PrometheusConnect(
            url=url,
            disable_ssl=True,
            retry=Retry(total=1, backoff_factor=0.2),
            timeout=timeout_s,
            session=_NoRedirectSession(),
        )
        self.url = url
        self._now = now

    def _q(self, promql: str) -> list[dict[str, Any]]:
        return list(self.client.custom_query(promql))

    @staticmethod
    def _sel(target: Target, extra: str = "") -> str:
        parts = [p for p in (target.matchers, extra) if p]
        return "{" + ",".join(parts) + "}"

    def names(self, target: Target) -> set[str]:
        sel = self._sel(target, '__name__=~"vllm:.+"')
        return {r["metric"].get("__name__", "") for r in self._q(f"count by (__name__) ({sel})")}

    def _per_replica(self, metric: str, target: Target) -> dict[str, tuple[float, float]]:
        """replica -> (value, sample age in seconds); several series per replica are summed."""
        sel = self._sel(target)
        lab = target.replica_label
        values = self._q(f"sum by ({lab}) ({metric}{sel})")
        stamps = self._q(f"max by ({lab}) (timestamp({metric}{sel}))")
        now = self._now()
        ts = {r["metric"].get(lab, ""): float(r["value"][1]) for r in stamps}
        out: dict[str, tuple[float, float]] = {}
        for r in values:
            name = r["metric"].get(lab, "")
            v = float(r["value"][1])
            if math.isnan(v):
                continue
            out[name] = (v, max(0.0, now - ts.get(name, now)))
        return out

    def buckets(self, metric: str, target: Target, window_s: int) -> list[tuple[float, float]]:
        sel = self._sel(target)
        rows = self._q(f"sum by (le) (increase({metric}_bucket{sel}[{window_s}s]))")
        out = []
        for r in rows:
            le = r["metric"].get("le")
            if le is None:
                continue
            v = float(r["value"][1])
            if not math.isnan(v):
                out.append((float(le), v))
        return sorted(out)

    def _failure(self, exc: BaseException) -> str:
        log.warning("Prometheus at %s: %s: %.500s", self.url, type(exc).__name__, exc)
        return _failure_text(exc)

    def observe(self, target: Target, objectives: Sequence[Objective], window_s: int) -> Observation:
        """One evaluation's inputs; never raises for Prometheus trouble (it becomes ``error``)."""
        at = self._now()
        try:
            names = self.names(target)
            problem = schema_problem(names)
            waiting = self._per_replica(WAITING, target)
            running = self._per_replica(RUNNING, target)
            kv = self._per_replica(KV_USAGE, target) if KV_USAGE in names else {}
            families = [*(o.metric for o in objectives), *witness_metrics(tuple(objectives))]
            hist = {m: self.buckets(m, target, window_s) for m in families if f"{m}_bucket" in names}
            rate_rows = self._q(completion_rate_query(self._sel(target), window_s))
        except (RequestException, PrometheusApiClientException, ValueError, KeyError, TypeError, IndexError) as exc:
            return Observation(at=at, error=self._failure(exc), error_reason="PrometheusUnavailable")
        samples = []
        for name, (w, age) in sorted(waiting.items()):
            r, r_age = running.get(name, (0.0, age))
            k = kv.get(name)
            samples.append(ReplicaSample(name, w, r, k[0] if k else None, max(age, r_age)))
        rate = float(rate_rows[0]["value"][1]) if rate_rows else None
        if rate is not None and math.isnan(rate):
            rate = None
        gp = goodput_with_witnesses(objectives, hist)
        return Observation(at=at, samples=tuple(samples), goodput=gp, completion_rate=rate, schema_problem=problem)

    def worker_signals(self, matchers: str) -> WorkerSignals:
        """Task backlog and in-flight tasks of one AgentFleet's workers (matchers as in Target)."""
        at = self._now()
        sel = "{" + matchers + "}"
        try:
            queued = self._q(f"max({TASK_QUEUE}{sel})")  # every worker reports the same stream
            inflight = self._q(f"sum({TASKS_IN_FLIGHT}{sel})")
            age = self._q(f"max({TASK_QUEUE_AGE}{sel})")
        except (RequestException, PrometheusApiClientException, ValueError, KeyError, TypeError, IndexError) as exc:
            return WorkerSignals(at, None, None, error=self._failure(exc))

        def one(rows: list[dict[str, Any]]) -> float | None:
            return float(rows[0]["value"][1]) if rows else None

        return WorkerSignals(at, one(queued), one(inflight), one(age))


def completion_rate_query(selector: str, window_s: int) -> str:
    """Requests/s that finished with an answer. The reasons are matched by exclusion
    (``UNSERVED_REASONS``: ``abort``, ``error``, ``repetition`` served nobody) because engines name
    served answers differently: vLLM counts ``stop`` and ``length``, llm-d's simulator also
    ``tool_calls`` (a third of an agent's calls, or more), and another engine may add its own; a
    list of served reasons would read such traffic as idle. Both spellings of the reason label
    (``finished_reason`` in vLLM, ``finish_reason`` elsewhere); an engine that creates the series
    only for reasons seen has none before its first answer (an empty result, not zero)."""
    inner = selector[1:-1]
    parts = []
    for label in ("finished_reason", "finish_reason"):
        sel = "{" + ",".join(p for p in (inner, f'{label}=~".+"', f'{label}!~"{UNSERVED_PATTERN}"') if p) + "}"
        parts.append(f"rate({REQUEST_SUCCESS}{sel}[{window_s}s])")
    return f"sum({' or '.join(parts)})"


def schema_problem(names: set[str]) -> str | None:
    """A loud description when the engine's metric names are not vLLM's current ones."""
    if not names:
        return None  # nothing scraped at all: reported as missing metrics, not as a schema issue
    # A removed name beside its replacement is harmless (some engines export both): only a
    # removed name whose replacement is missing means the engine speaks another version.
    legacy = sorted(n for n in names if n in LEGACY_NAMES and LEGACY_NAMES[n] not in names)
    missing = sorted(n for n in (*REQUIRED, KV_USAGE) if n not in names)
    if not legacy and not missing:
        return None
    parts = []
    if legacy:
        parts.append("engine exposes removed vLLM names " + ", ".join(f"{n} (now {LEGACY_NAMES[n]})" for n in legacy))
    if missing:
        parts.append("missing " + ", ".join(missing))
    return "MetricsSchemaMismatch: " + "; ".join(parts) + ": scaling on the series that exist only"


class _NoRedirectSession(requests.Session):
    """prometheusURL is the spec author's: a 302 from it must not make the operator fetch (and
    report) a page the author could not name, and no proxy or .netrc from the operator's
    environment is used."""

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs["allow_redirects"] = False  # a 3xx is then a non-200 answer: PrometheusApiClientException
        return super().request(method, url, *args, **kwargs)


def _failure_text(exc: BaseException) -> str:
    """A fixed text for conditions and Events: what Prometheus (or whatever answers at the URL)
    said stays in the operator's log, so the field cannot be used to read or map other services."""
    if isinstance(exc, PrometheusApiClientException):
        return "Prometheus refused the query or is not Prometheus (details in the operator's log)"
    if isinstance(exc, RequestException):
        return "Prometheus did not answer (details in the operator's log)"
    return "Prometheus's answer could not be read (details in the operator's log)"
