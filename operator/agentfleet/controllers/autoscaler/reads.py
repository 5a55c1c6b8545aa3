"""What the autoscaler reads besides Prometheus (pods, the fleets' Redis, the demand profile, room
for more replicas), and the Protocols of what its evaluations use of each reader."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agentfleet_contract.common import API_VERSION
from agentfleet_contract.modelreplicaset import ModelReplicaSetSpec

from agentfleet.autoscale.goodput import Objective
from agentfleet.autoscale.policy import Capacity, Observation
from agentfleet.autoscale.sleep import SleepState
from agentfleet.autoscale.workers import WorkerSignals
from agentfleet.controllers import demand
from agentfleet.controllers.agentfleet import REDIS_TIMEOUT_SECONDS, probe_redis, redis_client
from agentfleet.controllers.autoscaler.settings import AF, MRS, AutoscalerSettings
from agentfleet.kube import Kube
from agentfleet.placement import (
    ReplicaRequest,
    assignment_from_status,
    inventory_for,
    needs_for,
    plan,
    replica_key,
)
from agentfleet.promql import Target
from agentfleet.reconcile.events import EventRecorder
from agentfleet.render.agentfleet import REDIS_PASSWORD_KEY, managed_redis_url, redis_secret_name
from agentfleet.render.common import secret_problem

log = logging.getLogger("agentfleet.autoscaler")


class Reads(Protocol):
    """What an evaluation reads of the cluster (ClusterReads; a fake in unit tests)."""

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]: ...

    def read_profile(self, namespace: str, name: str) -> dict[str, str] | None: ...

    def write_profile(self, owner: dict[str, Any], namespace: str, name: str, data: dict[str, str]) -> None: ...

    def fleet_work(self, namespace: str, name: str) -> float | None: ...

    def capacity(self, namespace: str, name: str, spec: ModelReplicaSetSpec, extra: int) -> Capacity: ...


class MetricsReader(Protocol):
    """What an evaluation reads of one Prometheus (promql.PromReader)."""

    def observe(self, target: Target, objectives: Sequence[Objective], window_s: int) -> Observation: ...

    def worker_signals(self, matchers: str) -> WorkerSignals: ...


class StatusApplier(Protocol):
    """The one write of an evaluation: its status, by server-side apply (agentfleet.kube.Kube)."""

    def apply_status(self, obj: dict[str, Any], *, manager: str) -> dict[str, Any] | None: ...


class EvaluationServices(Protocol):
    """What an evaluation (evaluation.py) uses of its controller (AutoscalerController)."""

    kube: StatusApplier
    events: EventRecorder
    settings: AutoscalerSettings
    reads: Reads
    reader: Callable[[str], MetricsReader]
    clock: Callable[[], float]

    def fleets_in(self, namespace: str) -> list[dict[str, Any]]: ...

    def task_layer(self, namespace: str, model: str, url: str) -> float | None: ...

    def watch_while_asleep(self, key: tuple[str, str, str], sleep: SleepState | None) -> None: ...

    def period(self, kind: str, obj: Mapping[str, Any], sleep: SleepState | None = None) -> float: ...


@dataclass
class ClusterReads:
    """The autoscaler's reads besides Prometheus, replaceable in tests."""

    kube: Kube

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return self.kube.list("v1", "Pod", namespace, selector)

    def read_profile(self, namespace: str, name: str) -> dict[str, str] | None:
        cm = self.kube.get("v1", "ConfigMap", name, namespace)
        return None if cm is None else dict(cm.get("data") or {})

    def write_profile(self, owner: dict[str, Any], namespace: str, name: str, data: dict[str, str]) -> None:
        self.kube.apply(demand.configmap(owner, namespace, name, data))

    def fleet_redis(self, namespace: str, name: str) -> tuple[str, str | None] | None:
        """AgentFleet ``name``'s Redis URL and password, read as the AgentFleet controller reads them;
        None when the fleet is gone or they cannot be used."""
        af = self.kube.get(API_VERSION, AF, name, namespace)
        if af is None:
            return None
        redis = (af.get("spec") or {}).get("redis") or {}
        ref = redis.get("passwordSecretRef") or {}
        if redis.get("deploy") is not None:
            url, secret, key = managed_redis_url(name, namespace), redis_secret_name(name), REDIS_PASSWORD_KEY
        else:
            url, secret, key = redis.get("url"), ref.get("name"), ref.get("key", "password")
        password = None
        if secret:
            s = self.kube.get("v1", "Secret", secret, namespace)
            # The AgentFleet controller reports a Secret it may not use; here it is simply not read.
            field = "spec.redis.passwordSecretRef"
            refused = not redis.get("deploy") and secret_problem(s, field, secret, key, namespace)
            if s is None or refused:
                return None
            raw = (s.get("data") or {}).get(key)
            password = base64.b64decode(raw).decode() if raw else None
        return (url, password) if url else None

    def fleet_work(self, namespace: str, name: str) -> float | None:
        """Tasks queued + in flight in AgentFleet ``name``'s Redis stream (the wake signal: it exists
        with no worker and no replica running); None when the fleet or its Redis cannot be read."""
        found = self.fleet_redis(namespace, name)
        if found is None:
            return None
        url, password = found
        ok, error, stats = probe_redis(url, password, name, namespace=namespace)
        if not ok or stats is None:
            log.info("%s/%s: reading the task queue failed: %.300s", namespace, name, error or "no figures")
            return None
        return float(stats.queue_depth + stats.in_flight)

    def task_stream(self, namespace: str, name: str, socket_timeout: float) -> Any | None:
        """A client of AgentFleet ``name``'s Redis for a blocking read of its task stream (wakewatch.py)."""
        found = self.fleet_redis(namespace, name)
        if found is None:
            return None
        return redis_client(*found, timeout=socket_timeout, connect_timeout=REDIS_TIMEOUT_SECONDS)

    def capacity(self, namespace: str, name: str, spec: ModelReplicaSetSpec, extra: int) -> Capacity:
        """How many of ``extra`` new replicas the placement planner could place now."""
        d = needs_for(namespace, name, spec)
        inventory = inventory_for(d, self.kube.list("v1", "Node"), self.kube.list("v1", "Pod"))
        existing = []
        for mrs in self.kube.list(API_VERSION, MRS):
            m = mrs.get("metadata") or {}
            for p in (mrs.get("status") or {}).get("placements") or []:
                a = assignment_from_status(m.get("namespace", "default"), m.get("name", ""), p)
                if a is not None:
                    existing.append(a)
        probes = [ReplicaRequest(replica_key(namespace, f"{name}-autoscale-probe-{i}"), d) for i in range(extra)]
        result = plan(inventory, probes, existing)
        return Capacity(
            placeable_extra=len(result.placed), message=result.unplaced[0].message if result.unplaced else ""
        )
