"""The autoscaler's constants, settings (from the operator's environment) and per-object memory."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from agentfleet.autoscale.policy import PolicyState
from agentfleet.autoscale.sleep import SleepState
from agentfleet.autoscale.workers import WorkerState
from agentfleet.controllers.demand import DemandMemory

MRS, AF = "ModelReplicaSet", "AgentFleet"
# Status is shared with the kinds' controllers: each writer server-side applies its own fields
# under its own manager, so neither drops the other's (see mrs_status_apply, af_status_apply).
AUTOSCALER_MANAGER = "agentfleet-autoscaler"
AUTOSCALER_FIELDS = (
    "desiredReplicas",
    "observed",
    "lastScaleTime",
    "lastScaleReason",
    "lastScaleTerm",
    "learnedModelLoadSeconds",
    "forecast",
    "sleep",
)
WORKERS_PERIOD_SECONDS = 15.0
# The field's minimum period; an evaluation asked for earlier (a resync, an edit) waits this long at most.
MIN_PERIOD_SECONDS = 5.0
# While asleep or waking, the wake signal (a task in a fleet's Redis stream) is polled this often:
# it is most of the operator's share of a wake's latency (docs/scale-to-zero.md). One XINFO per
# fleet per second.
SLEEP_POLL_SECONDS = 1.0

Key = tuple[str, str, str]  # (kind, namespace, name)


@dataclass(frozen=True)
class AutoscalerSettings:
    """From the operator's environment (see the package docstring)."""

    prometheus_url: str = "http://prometheus.monitoring:9090"
    matchers: str = 'namespace="{namespace}",model_name="{model}"'
    replica_label: str = "pod"
    worker_matchers: str = 'namespace="{namespace}",agentfleet="{name}"'
    load_prior_seconds: float = 300.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> AutoscalerSettings:
        d = cls()
        return cls(
            prometheus_url=env.get("AGENTFLEET_PROMETHEUS_URL", d.prometheus_url),
            matchers=env.get("AGENTFLEET_PROMETHEUS_MATCHERS", d.matchers),
            replica_label=env.get("AGENTFLEET_PROMETHEUS_REPLICA_LABEL", d.replica_label),
            worker_matchers=env.get("AGENTFLEET_WORKER_MATCHERS", d.worker_matchers),
            load_prior_seconds=float(env.get("AGENTFLEET_MODEL_LOAD_SECONDS", d.load_prior_seconds)),
        )


@dataclass
class AutoscaleState:
    """What the autoscaler remembers of one object between evaluations (safe to lose: the learned
    load time is kept in status). Only the act step changes it."""

    last_eval: float = 0.0
    policy: PolicyState | None = None  # a ModelReplicaSet's
    workers: WorkerState | None = None  # an AgentFleet's
    release: bool = False  # autoscaling was turned off: give back the status fields it owned
    sleep: SleepState | None = None  # scale to zero (autoscale/sleep.py); restored from status.sleep
    woken: bool = False  # a task arrived on a sleeping object's stream (wakewatch.py): evaluate now
    demand: DemandMemory = field(default_factory=DemandMemory)  # the learned profile (controllers/demand.py)
    reason: str = ""  # the last evaluation's decision, logged with the object's name
