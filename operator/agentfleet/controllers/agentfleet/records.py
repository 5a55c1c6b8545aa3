"""The typed records an AgentFleet pass's steps hand on, frozen: what observe read (``Observed``),
what decide still wants read (``NeedsProbe``), the plan decide returns (``Plan`` and its parts),
and what act did for write (``Acted``); with the names and timings the steps share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agentfleet_contract.agentfleet import AgentFleet, RedisIdentity
from agentfleet_contract.conditions import READY
from agentfleet_contract.fleet_stats import FleetStats

from agentfleet.gate import Report as GateReport
from agentfleet.reconcile.shape import Wants
from agentfleet.render.agentfleet import Egress
from agentfleet.render.budgets import SpecProblem
from agentfleet.render.common import Peers

JSON = Mapping[str, Any]  # a Kubernetes object (or part of one) as the API server returned it

KIND = "AgentFleet"
MODEL_READY, INDEX_READY, REDIS_READY, RUNTIME_READY = "ModelReady", "IndexReady", "RedisReady", "RuntimeReady"
EVALUATION_GATE = "EvaluationGate"  # True Passed (or Serving) / False with the reason / Unknown Running
REDIS_SHARED = "RedisShared"  # True: another fleet shares trust over this fleet's Redis (sharing.py); not in Ready
OWN_CONDITIONS = (READY, MODEL_READY, INDEX_READY, REDIS_READY, RUNTIME_READY, EVALUATION_GATE, REDIS_SHARED)
# Status fields this controller owns (desiredWorkers only while the autoscaler does not).
OWN_FIELDS = (
    "observedGeneration",
    "workers",
    "readyWorkers",
    "selector",
    "taskApiEndpoint",
    "a2aEndpoint",
    "queueDepth",
    "inFlightTasks",
    "awaitingApproval",
    "tasksPerHour",
    "taskP95Seconds",
    "costPerTask",
    "gate",
    "redis",
)
BACKOFF_MIN, BACKOFF_MAX = 2.0, 120.0
BUSY_RESYNC_SECONDS = 5.0  # while something is starting
STATS_RESYNC_SECONDS = 30.0  # a healthy fleet's statistics refresh
REDIS_TIMEOUT_SECONDS = 1.0  # reading the fleet's Redis must never hold up a pass for long
NOT_RENDERED = "the runtime is not (re)rendered until the problems in Ready are fixed"

# What status and Events say when the Redis probe fails, whatever the cause. Never the remote end's
# answer or which step failed: anyone who may create an AgentFleet would otherwise learn from
# status whether a port is open and what it says (the operator as a port scanner). The cause goes
# to the operator's log, which only its administrators read.
PROBE_FAILED = (
    "no Redis answered the fleet's PING with its password "
    "(connection, protocol or authentication failed; the operator's log has the cause)"
)


@dataclass(frozen=True)
class Subject:
    """The AgentFleet of this pass, as read."""

    namespace: str
    name: str
    generation: int
    obj: JSON  # the whole object: Events name it
    status: JSON  # its status as read (the autoscaler's desiredWorkers among it)

    @classmethod
    def of(cls, obj: JSON) -> Subject:
        meta = obj["metadata"]
        return cls(meta["namespace"], meta["name"], int(meta.get("generation") or 0), obj, obj.get("status") or {})

    @property
    def own_conditions(self) -> list[dict[str, Any]]:
        """This controller's condition types of the status read (the autoscaler keeps its own)."""
        return [dict(c) for c in self.status.get("conditions") or [] if c.get("type") in OWN_CONDITIONS]


@dataclass(frozen=True)
class ProbeResult:
    """The fleet's Redis answered PING with its password (``ok``), and its task figures.
    ``error`` is for the operator's log only: it may hold what the remote end answered."""

    ok: bool
    error: str
    stats: FleetStats | None
    identity: RedisIdentity | None = None  # who the server is and what the fleet's user reaches (sharing.py)


@dataclass(frozen=True)
class Observed:
    """What one pass read: the fleet and everything its spec names, by name (None: not found)."""

    subject: Subject
    fleet: AgentFleet  # the object as the models read it (an invalid one is refused in observe)
    models: Mapping[str, JSON | None]  # ModelReplicaSets spec.modelRef / routineModelRef name
    index: JSON | None  # the VectorIndex spec.vectorIndexRef names
    prompt: JSON | None  # the ConfigMap spec.systemPrompt.configMapRef names
    secrets: Mapping[str, JSON | None]  # every Secret decide may use (deciding.secret_names)
    fresh: Mapping[str, str]  # a random value for each generated Secret not found (used if created)
    egress: Egress | None  # the operator's worker egress settings (None: no egress policy)
    peers: Peers  # who may reach a managed Redis besides the fleet's pods
    legacy_claims: frozenset[str] = frozenset()  # NAMESPACE/NAME the old-layout keys are claimed for
    probed: ProbeResult | None = None  # None: not probed (yet): decide asks with NeedsProbe
    # The Redis identities other fleets of this operator recorded in their status (status.redis), by
    # (namespace, name): what this fleet's is compared with (sharing.py); never read from their Redis.
    neighbours: Mapping[tuple[str, str], RedisIdentity] = field(default_factory=dict)
    # The evaluation gate's inputs (gating.py); their defaults: no gate to run.
    clock: datetime | None = None  # when observe read (the gate's budget and timestamps)
    runtime_image: str = ""  # the operator's runtime image: the evaluation Job runs it
    promoted: Mapping[str, Any] | None = None  # FLEET-promoted's answer fields (None: none kept)
    results: Mapping[str, str] | None = None  # the running gate's results ConfigMap (None: none, or not ours)
    gate_key: bytes | None = None  # the running gate's key, from its Secret (None: none, or not ours)
    # The running gate's results ConfigMap or key Secret exists without this fleet's ownerReference
    # and UID ("ConfigMap NAME"): made by someone else, it is neither read nor written (None: ours).
    gate_foreign: str | None = None
    fresh_gate_key: str = ""  # a random key for a gate's Secret, used if one is created
    gate_job: bool = True  # the running gate's Job exists (one deleted by hand is created again)
    serving: Observed | None = None  # what the serving spec names, when it differs from the spec's


@dataclass(frozen=True)
class NeedsProbe(Wants):
    """The fleet's Redis is known: PING it with its password and read the task figures."""

    url: str
    password: str | None


@dataclass(frozen=True)
class Verdict:
    """One condition as a step decided it (write sets it, keeping its transition time unless it flips)."""

    type: str
    ok: bool | str  # "Unknown" where a condition may be undecided (EvaluationGate while it runs)
    reason: str
    message: str


@dataclass(frozen=True)
class Post:
    """One Event of the pass."""

    type: str
    reason: str
    message: str
    # A problem that persists is posted again only every 10 minutes; a transition (the gate's) is
    # posted each time it happens, bar an identical one within 30 seconds (reconcile.events).
    once: bool = True


@dataclass(frozen=True)
class Generated:
    """A Secret the operator generates once and never regenerates: ``body`` to create when it does
    not exist yet (None: it does), ``value`` what the pass uses (None: it exists without the key)."""

    name: str
    value: str | None
    body: JSON | None


@dataclass(frozen=True)
class ManagedRedis:
    """spec.redis.deploy: the password Secret, then the StatefulSet, Service and NetworkPolicy."""

    password: Generated
    children: tuple[JSON, ...]
    statefulset: str  # its name: act reads it back after the apply


@dataclass(frozen=True)
class RuntimePlan:
    """The runtime's children (identity, config, egress policy, workers, task API, PDB) in apply order."""

    children: tuple[JSON, ...]
    replicas: int  # the workers' count rendered
    desired_workers: int | None  # status.desiredWorkers (None: the autoscaler owns it)
    worker: str  # the Deployments act reads back after the apply
    api: str
    doc: JSON | None = None  # the runtime document rendered (the gate's candidate is derived from it)


@dataclass(frozen=True)
class GatePlan:
    """The evaluation gate's part of a pass (gating.py): act creates, applies and deletes in this
    order, write reports ``report`` (status.gate, the EvaluationGate condition, the Event)."""

    report: GateReport
    promoted: JSON | None = None  # FLEET-promoted to apply: the serving version's answer fields changed
    create: JSON | None = None  # the results ConfigMap, created once when a gate starts
    key: JSON | None = None  # the gate's key Secret, created once with the results ConfigMap
    apply: tuple[JSON, ...] = ()  # the candidate's children; at a start the Job's identity, policy and Job
    delete: tuple[tuple[str, str, str], ...] = ()  # (apiVersion, kind, name): a finished or superseded gate's
    unannotate: bool = False  # remove the override annotation (applied, or nothing to apply it to)
    verdict: Verdict | None = None  # EvaluationGate when not the report's (an override that means nothing)
    posts: tuple[Post, ...] = ()  # Events besides the report's
    running: bool = False  # a gate runs: the next pass comes soon, to read its results


@dataclass(frozen=True)
class Plan:
    """What one pass will do: act applies it in order (managed Redis, the task API's token, the
    runtime), write reports it with what act read back.

    Frozen and built by small pure steps (deciding.py) that each take the fleet they plan for: a
    later step (the rollout gate of issue 58) returns ``dataclasses.replace(plan, ...)`` with the
    serving version's runtime and a part of its own beside ``runtime``."""

    selector: str
    endpoint: str  # the task API's URL
    a2a_endpoint: str | None  # where A2A callers reach the fleet (None: no spec.a2a)
    problems: tuple[SpecProblem, ...]  # the fleet cannot run as specified: Ready says the first
    verdicts: tuple[Verdict, ...]  # the conditions decided before act
    redis: ManagedRedis | None  # None: an external Redis
    token: Generated | None  # the task API's generated token (None: spec.api.authSecretRef)
    runtime: RuntimePlan | None  # None: not (re)rendered, because of the problems
    stats: FleetStats | None  # the task figures read from the fleet's Redis
    posts: tuple[Post, ...]  # Warnings: each problem, an unreachable external Redis
    gate: GatePlan | None = None  # the evaluation gate's part (None: the fleet has none)
    redis_identity: RedisIdentity | None = None  # status.redis (None: managed, or not identified)


@dataclass(frozen=True)
class Acted:
    """What act did and read back: the Secrets it created, the children as they stand after the apply."""

    created: tuple[str, ...] = ()
    redis_set: JSON | None = None  # the managed Redis's StatefulSet (None: none, or not found)
    worker: JSON | None = None  # the runtime's Deployments (None: not rendered, or not found)
    api: JSON | None = None
