"""vLLM's Prometheus metric names, types, labels and histogram buckets, as data.

Matched against vLLM's V1 engine source (main branch, mid-2025 onwards, the naming of
v0.11 and later):

- ``vllm/v1/metrics/loggers.py`` (``PrometheusStatLogger``): names, types, the label set
  ``[model_name, engine]``, ``finished_reason`` on ``vllm:request_success``, and counters
  declared without ``_total`` (prometheus_client appends it on exposition).
- ``vllm/v1/metrics/buckets.py`` at commit 139b1c3f17720f4bb6865309f365e6b1f1607a45 and its
  snapshot test ``tests/v1/metrics/test_buckets.py``: the bucket families
  (``request_latency``, ``time_to_first_token``, ``inter_token_latency``, ``iteration_tokens``,
  ``request_tokens`` = 1-2-5 series up to max_model_len) and which histogram uses which.
- ``vllm/v1/engine/__init__.py``: ``FinishReason`` strings stop, length, abort, error, repetition;
  vLLM pre-creates one ``request_success`` series per reason, so all appear at 0.

The legacy flavour mirrors vLLM <= 0.8 (``vllm/v1/metrics/loggers.py`` at commit
a6f0308cfe806b7731ad4979c9bea6e470c35efd): ``vllm:gpu_cache_usage_perc``,
``vllm:gpu_prefix_cache_{queries,hits}`` and ``vllm:time_per_output_token_seconds``; those were
deprecated in 0.9/0.11 and removed two minor versions later (vLLM's deprecation policy:
deprecated in X.Y, hidden in X.Y+1, removed in X.Y+2). The autoscaler uses the flavour switch
to test that it notices an engine that speaks other names.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

LABELS: tuple[str, ...] = ("model_name", "engine")
FINISH_REASONS: tuple[str, ...] = ("stop", "length", "abort", "error", "repetition")

REQUEST_LATENCY_BUCKETS: tuple[float, ...] = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0,
    40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
TIME_TO_FIRST_TOKEN_BUCKETS: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
INTER_TOKEN_LATENCY_BUCKETS: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
)  # fmt: skip
ITERATION_TOKENS_BUCKETS: tuple[float, ...] = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)


def build_1_2_5_buckets(max_value: int) -> tuple[float, ...]:
    """vLLM's token-count buckets: 1, 2, 5, 10, 20, 50, ... while <= max_value."""
    out: list[float] = []
    exponent = 0
    while True:
        for mantissa in (1, 2, 5):
            value = mantissa * 10**exponent
            if value > max_value:
                return tuple(out)
            out.append(value)
        exponent += 1


class Flavor(StrEnum):
    """Which engine version's names /metrics speaks."""

    CURRENT = "current"
    LEGACY = "legacy"
    BOTH = "both"  # current names plus the removed ones, as some vLLM-compatible engines export


Kind = Literal["gauge", "counter", "histogram"]
BucketFamily = Literal[
    "request_latency", "time_to_first_token", "inter_token_latency", "iteration_tokens", "request_tokens"
]


@dataclass(frozen=True)
class MetricSpec:
    """One metric family. ``name`` is the family name; counters expose ``name + "_total"``."""

    name: str
    kind: Kind
    documentation: str
    source: str  # the simulator's stats field it is read from
    buckets: BucketFamily | None = None
    extra_label: str | None = None  # finished_reason on request_success


def _hist(name: str, doc: str, source: str, family: BucketFamily) -> MetricSpec:
    return MetricSpec(name, "histogram", doc, source, buckets=family)


_COMMON: tuple[MetricSpec, ...] = (
    MetricSpec("vllm:num_requests_running", "gauge", "Number of requests in model execution batches.", "num_running"),
    MetricSpec("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.", "num_waiting"),
    MetricSpec(
        "vllm:num_preemptions", "counter", "Cumulative number of preemption from the engine.", "num_preemptions"
    ),
    MetricSpec("vllm:prompt_tokens", "counter", "Number of prefill tokens processed.", "prompt_tokens"),
    MetricSpec("vllm:generation_tokens", "counter", "Number of generation tokens processed.", "generation_tokens"),
    MetricSpec(
        "vllm:request_success",
        "counter",
        "Count of successfully processed requests.",
        "request_success",
        extra_label="finished_reason",
    ),
    _hist("vllm:request_prompt_tokens", "Number of prefill tokens processed.", "h_prompt_tokens", "request_tokens"),
    _hist(
        "vllm:request_generation_tokens",
        "Number of generation tokens processed.",
        "h_generation_tokens",
        "request_tokens",
    ),
    _hist(
        "vllm:request_params_max_tokens",
        "Histogram of the max_tokens request parameter.",
        "h_max_tokens",
        "request_tokens",
    ),
    _hist(
        "vllm:iteration_tokens_total",
        "Histogram of number of tokens per engine_step.",
        "h_iteration_tokens",
        "iteration_tokens",
    ),
    _hist(
        "vllm:time_to_first_token_seconds",
        "Histogram of time to first token in seconds.",
        "h_ttft",
        "time_to_first_token",
    ),
    _hist(
        "vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", "h_e2e", "request_latency"
    ),
    _hist(
        "vllm:request_queue_time_seconds",
        "Histogram of time spent in WAITING phase for request.",
        "h_queue",
        "request_latency",
    ),
    _hist(
        "vllm:request_inference_time_seconds",
        "Histogram of time spent in RUNNING phase for request.",
        "h_inference",
        "request_latency",
    ),
    _hist(
        "vllm:request_prefill_time_seconds",
        "Histogram of time spent in PREFILL phase for request.",
        "h_prefill",
        "request_latency",
    ),
    _hist(
        "vllm:request_decode_time_seconds",
        "Histogram of time spent in DECODE phase for request.",
        "h_decode",
        "request_latency",
    ),
)

_CURRENT_ONLY: tuple[MetricSpec, ...] = (
    MetricSpec("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.", "kv_usage"),
    MetricSpec(
        "vllm:prefix_cache_queries",
        "counter",
        "Prefix cache queries, in terms of number of queried tokens.",
        "prefix_queries",
    ),
    MetricSpec(
        "vllm:prefix_cache_hits", "counter", "Prefix cache hits, in terms of number of cached tokens.", "prefix_hits"
    ),
    _hist(
        "vllm:inter_token_latency_seconds",
        "Histogram of inter-token latency in seconds.",
        "h_itl",
        "inter_token_latency",
    ),
    _hist(
        "vllm:request_time_per_output_token_seconds",
        "Histogram of time_per_output_token_seconds per request.",
        "h_tpot",
        "inter_token_latency",
    ),
)

_LEGACY_ONLY: tuple[MetricSpec, ...] = (
    MetricSpec("vllm:gpu_cache_usage_perc", "gauge", "GPU KV-cache usage. 1 means 100 percent usage.", "kv_usage"),
    MetricSpec(
        "vllm:gpu_prefix_cache_queries",
        "counter",
        "GPU prefix cache queries, in terms of number of queried tokens.",
        "prefix_queries",
    ),
    MetricSpec(
        "vllm:gpu_prefix_cache_hits",
        "counter",
        "GPU prefix cache hits, in terms of number of cached tokens.",
        "prefix_hits",
    ),
    _hist(
        "vllm:time_per_output_token_seconds",
        "Histogram of time per output token in seconds.",
        "h_itl",
        "inter_token_latency",
    ),
)


def metric_specs(flavor: Flavor = Flavor.CURRENT) -> tuple[MetricSpec, ...]:
    if flavor is Flavor.BOTH:
        return _COMMON + _CURRENT_ONLY + _LEGACY_ONLY
    return _COMMON + (_CURRENT_ONLY if flavor is Flavor.CURRENT else _LEGACY_ONLY)


def bucket_bounds(family: BucketFamily, max_model_len: int) -> tuple[float, ...]:
    if family == "request_tokens":
        return build_1_2_5_buckets(max_model_len)
    return {
        "request_latency": REQUEST_LATENCY_BUCKETS,
        "time_to_first_token": TIME_TO_FIRST_TOKEN_BUCKETS,
        "inter_token_latency": INTER_TOKEN_LATENCY_BUCKETS,
        "iteration_tokens": ITERATION_TOKENS_BUCKETS,
    }[family]


def exposed_names(flavor: Flavor = Flavor.CURRENT) -> set[str]:
    """Family names as a Prometheus server sees them (counters carry ``_total``)."""
    return {s.name + "_total" if s.kind == "counter" else s.name for s in metric_specs(flavor)}
