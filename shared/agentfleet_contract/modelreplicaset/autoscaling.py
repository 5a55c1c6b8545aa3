"""ModelReplicaSet spec: the goodput objective, scheduled capacity and the autoscaler's settings."""

from __future__ import annotations

import re

from pydantic import Field

from agentfleet_contract.common import Model, default_obj
from agentfleet_contract.rules import Rule, matches, no_credentials


class GoodputSLO(Model):
    rules = (
        Rule(
            cel=(
                "self.ttftMilliseconds > 0 || self.timePerOutputTokenMilliseconds > 0 || self.e2eLatencyMilliseconds "
                "> 0"
            ),
            message=(
                "spec.autoscaling.goodput needs at least one latency target above 0: set ttftMilliseconds, "
                "timePerOutputTokenMilliseconds or e2eLatencyMilliseconds"
            ),
            check=lambda g: (
                g.ttft_milliseconds > 0 or g.time_per_output_token_milliseconds > 0 or g.e2e_latency_milliseconds > 0
            ),
        ),
    )

    ttft_milliseconds: int = Field(
        default=2000, ge=0, le=600_000, description="Time-to-first-token target per request; 0 disables it."
    )
    time_per_output_token_milliseconds: int = Field(
        default=100, ge=0, le=60_000, description="Time-per-output-token target per request; 0 disables it."
    )
    e2e_latency_milliseconds: int = Field(
        default=0,
        ge=0,
        le=3_600_000,
        alias="e2eLatencyMilliseconds",
        description="End-to-end latency target per request; 0 disables it.",
    )
    target_fraction: float = Field(
        default=0.95,
        gt=0,
        le=1,
        description=(
            "Share of requests that must meet every target, in (0, 1]; below it by more than chance over the window's "
            "requests, the fleet grows."
        ),
    )


_CRON_RE = r"^[0-9*,/-]+( [0-9*,/-]+){4}$"


class ScheduledCapacity(Model):
    rules = (
        Rule(
            cel=f"self.start.matches('{_CRON_RE}')",
            message=(
                "spec.autoscaling.schedules[].start must be a five-field cron expression (minute hour day-of-month "
                "month day-of-week), such as '0 9 * * 1-5'"
            ),
            check=lambda w: re.search(_CRON_RE, w.start) is not None,
            field_path=".start",
        ),
    )

    name: str = Field(min_length=1, max_length=63, description="Name of this window, shown in decisions and Events.")
    start: str = Field(
        max_length=128,
        description="When each window begins: a five-field cron expression in timeZone, such as '0 9 * * 1-5'.",
    )
    duration_seconds: int = Field(
        ge=60, le=604_800, description="How long each window holds its replicas, from each start."
    )
    replicas: int = Field(
        ge=0,
        le=1000,
        description=(
            "Replicas held during the window (ordered a model load time ahead), merged with the other terms by max."
        ),
    )
    time_zone: str = Field(default="UTC", max_length=64, description="IANA time zone of start, such as Europe/Berlin.")


class Autoscaling(Model):
    rules = (
        Rule(
            cel="self.minReplicas <= self.maxReplicas",
            message=(
                "spec.autoscaling.minReplicas must not exceed spec.autoscaling.maxReplicas: raise maxReplicas or "
                "lower minReplicas"
            ),
            check=lambda a: a.min_replicas <= a.max_replicas,
            field_path=".minReplicas",
        ),
        Rule(
            cel="self.scaleDownStabilizationSeconds >= self.evaluationPeriodSeconds",
            message=(
                "spec.autoscaling.scaleDownStabilizationSeconds must be at least evaluationPeriodSeconds: one "
                "evaluation cannot make a stable decision"
            ),
            check=lambda a: a.scale_down_stabilization_seconds >= a.evaluation_period_seconds,
            field_path=".scaleDownStabilizationSeconds",
        ),
        matches(
            "prometheus_url",
            "^https?://[^/]+",
            "spec.autoscaling.prometheusURL must be an http(s) URL such as http://prometheus.monitoring:9090",
            alias="prometheusURL",
        ),
        no_credentials(
            "prometheus_url",
            "spec.autoscaling.prometheusURL",
            "nothing: give the URL of a Prometheus the operator may read without credentials",
            alias="prometheusURL",
        ),
    )

    enabled: bool = Field(
        default=False,
        description=(
            "Let agentfleet size the fleet from queue depth and goodput; false obeys spec.replicas (kubectl scale, "
            "HPA, KEDA)."
        ),
    )
    min_replicas: int = Field(
        default=1, ge=0, le=1000, description="Fewest replicas the autoscaler keeps, also at zero traffic."
    )
    max_replicas: int = Field(default=4, ge=1, le=1000, description="Most replicas the autoscaler asks for.")
    sleep_after_idle_seconds: int = Field(
        default=900,
        ge=0,
        le=604_800,
        description=(
            "With minReplicas 0: seconds without a request at the replicas or a task at the AgentFleets using this set"
            " before it sleeps at zero replicas; a task queued at such a fleet wakes it."
        ),
    )
    target_queue_depth_per_replica: int = Field(
        default=8, ge=1, le=100_000, description="Waiting requests per replica the autoscaler aims for."
    )
    kv_cache_usage_threshold_percent: int = Field(
        default=90, ge=1, le=100, description="KV-cache usage above which a replica counts as full."
    )
    goodput: GoodputSLO = default_obj(
        "Latency SLO whose attainment (goodput) corrects the replica count upward.", GoodputSLO
    )
    window_seconds: int = Field(
        default=60, ge=10, le=3600, description="Window over which rates and goodput are computed."
    )
    evaluation_period_seconds: int = Field(default=15, ge=5, le=600, description="How often the autoscaler evaluates.")
    scale_up_stabilization_seconds: int = Field(
        default=30, ge=0, le=3600, description="A scale-up must be wanted this long before it happens."
    )
    scale_down_stabilization_seconds: int = Field(
        default=300, ge=0, le=86400, description="A scale-down must be wanted this long before it happens."
    )
    max_scale_up_step: int = Field(default=4, ge=1, le=1000, description="Most replicas added in one decision.")
    max_scale_down_step: int = Field(
        default=1,
        ge=1,
        le=1000,
        description=(
            "Most replicas removed in one decision; a burst's replicas, released once its agent tasks fit half the "
            "fleet, go in one decision."
        ),
    )
    prometheus_url: str | None = Field(
        default=None,
        max_length=2048,
        alias="prometheusURL",
        description="Prometheus base URL holding the replicas' vLLM metrics; unset uses the operator's default.",
    )
    burst_coverage_percent: int = Field(
        default=0,
        ge=0,
        le=200,
        description=(
            "Share of a typical burst's first minutes to serve from replicas held ready in advance, at the times of "
            "day bursts were seen"
            " until that day's bursts there have come and gone (100 serves a typical one in full, up to 200 for "
            "larger ones); each step costs the standby GPU-hours shown in"
            " status.forecast.standbyGPUHoursPerDay (0 holds none)."
        ),
    )
    predictive: bool = Field(
        default=False,
        description=(
            "Order replicas a model load time before the rise the learned daily demand curve predicts; never below "
            "the load-driven count"
            " (off by default until its GPU-hour cost is benchmarked)."
        ),
    )
    schedules: list[ScheduledCapacity] = Field(
        default_factory=list,
        max_length=32,
        description=(
            "Replicas to hold at known times (a batch, a launch), like KEDA's cron scaler; merged with the other "
            "terms by max."
        ),
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
