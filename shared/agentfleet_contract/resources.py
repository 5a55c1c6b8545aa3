"""How each resource is registered with the API server: names, columns, subresources."""

from __future__ import annotations

from dataclasses import dataclass, field

from agentfleet_contract.agentfleet import AgentFleet, AgentFleetSpec, AgentFleetStatus
from agentfleet_contract.common import GROUP, VERSION, Model
from agentfleet_contract.modelreplicaset import ModelReplicaSet, ModelReplicaSetSpec, ModelReplicaSetStatus
from agentfleet_contract.vectorindex import VectorIndex, VectorIndexSpec, VectorIndexStatus

# `kubectl get fleet` lists all three kinds.
CATEGORY = "fleet"
READY = '.status.conditions[?(@.type=="Ready")].status'


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    path: str
    description: str
    priority: int = 0
    format: str | None = None


@dataclass(frozen=True)
class Scale:
    spec_replicas: str
    status_replicas: str
    selector: str = ".status.selector"


@dataclass(frozen=True)
class Resource:
    kind: str
    plural: str
    short_names: tuple[str, ...]
    description: str
    model: type[Model]
    spec: type[Model]
    status: type[Model]
    columns: tuple[Column, ...]
    scale: Scale | None = None
    categories: tuple[str, ...] = field(default=(CATEGORY,))

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{GROUP}"

    @property
    def api_version(self) -> str:
        return f"{GROUP}/{VERSION}"


AGE = Column("Age", "date", ".metadata.creationTimestamp", "Time since creation.")

MODEL_REPLICA_SET = Resource(
    kind="ModelReplicaSet",
    plural="modelreplicasets",
    short_names=("mrs",),
    description=(
        "A fleet of vLLM replicas serving one model, placed topology-aware and scaled on queue depth and goodput."
    ),
    model=ModelReplicaSet,
    spec=ModelReplicaSetSpec,
    status=ModelReplicaSetStatus,
    columns=(
        Column("Ready", "string", READY, "Whether the fleet serves its model."),
        Column("Model", "string", ".spec.model.name", "Model being served."),
        Column("GPUs/Replica", "integer", ".status.gpusPerReplica", "GPUs per replica (TP x PP).", priority=1),
        Column("Desired", "integer", ".status.desiredReplicas", "Replicas the operator aims for."),
        Column("Current", "integer", ".status.replicas", "Replicas that exist."),
        Column("Available", "integer", ".status.readyReplicas", "Replicas serving requests."),
        Column("Queue", "integer", ".status.observed.queueDepth", "Waiting requests over all replicas."),
        Column("Goodput", "number", ".status.observed.goodput", "Share of requests within the SLO."),
        Column("KV", "number", ".status.observed.kvCacheUsage", "Mean KV-cache usage.", priority=1),
        Column("Sleep", "string", ".status.sleep.state", "Awake, Sleeping (at zero replicas) or Waking.", priority=1),
        Column("Since", "date", ".status.sleep.since", "When the set entered its sleep state.", priority=1),
        Column(
            "Term",
            "string",
            ".status.lastScaleTerm",
            "Which term asked for the last change (reactive, predictive, standing, scheduled).",
            priority=1,
        ),
        Column(
            "Standby", "integer", ".status.forecast.standingReplicas", "Replicas held now for burst onsets.", priority=1
        ),
        Column("Last Scale", "string", ".status.lastScaleReason", "Why the replica count last changed.", priority=1),
        AGE,
    ),
    scale=Scale(spec_replicas=".spec.replicas", status_replicas=".status.replicas"),
)

VECTOR_INDEX = Resource(
    kind="VectorIndex",
    plural="vectorindexes",
    short_names=("vi",),
    description=(
        "A Milvus collection with shards, partitions, index and in-memory replicas, and the ingestion that fills it."
    ),
    model=VectorIndex,
    spec=VectorIndexSpec,
    status=VectorIndexStatus,
    columns=(
        Column("Ready", "string", READY, "Whether the collection is loaded and searchable."),
        Column("Collection", "string", ".spec.collection", "Milvus collection."),
        Column("Dim", "integer", ".spec.dimension", "Vector width."),
        Column("Index", "string", ".spec.index.type", "Index type.", priority=1),
        Column("Shards", "integer", ".spec.shards", "Shards of the collection."),
        Column("Rows", "integer", ".status.rowCount", "Entities in the collection."),
        Column("Phase", "string", ".status.phase", "Lifecycle phase."),
        AGE,
    ),
)

AGENT_FLEET = Resource(
    kind="AgentFleet",
    plural="agentfleets",
    short_names=("af",),
    description="Agent runtime workers running durable agent loops, wired to a ModelReplicaSet and a VectorIndex.",
    model=AgentFleet,
    spec=AgentFleetSpec,
    status=AgentFleetStatus,
    columns=(
        Column("Ready", "string", READY, "Whether the fleet takes and runs tasks."),
        Column("Model", "string", ".spec.modelRef.name", "ModelReplicaSet serving the agents."),
        Column("Workers", "integer", ".status.readyWorkers", "Worker pods ready."),
        Column("Queue", "integer", ".status.queueDepth", "Tasks waiting."),
        Column("In-Flight", "integer", ".status.inFlightTasks", "Tasks running.", priority=1),
        Column("Sleep", "string", ".status.sleep.state", "Awake, Sleeping (at zero workers) or Waking.", priority=1),
        Column("Since", "date", ".status.sleep.since", "When the fleet entered its sleep state.", priority=1),
        Column(
            "Approvals", "integer", ".status.awaitingApproval", "Tasks waiting for a tool call's approval.", priority=1
        ),
        Column("Tasks/h", "integer", ".status.tasksPerHour", "Tasks finished in the last hour."),
        Column("P95(s)", "number", ".status.taskP95Seconds", "95th percentile task duration."),
        Column("Cost/Task", "string", ".status.costPerTask", "Mean cost of a task."),
        Column(
            "Gate", "string", ".status.gate.phase", "The evaluation gate: Serving, Running, Promoted, Held or Aborted."
        ),
        Column("A2A", "string", ".status.a2aEndpoint", "Where A2A callers reach the fleet (blank without spec.a2a)."),
        AGE,
    ),
    scale=Scale(spec_replicas=".spec.workers.replicas", status_replicas=".status.workers"),
)

RESOURCES: tuple[Resource, ...] = (MODEL_REPLICA_SET, VECTOR_INDEX, AGENT_FLEET)
BY_KIND = {r.kind: r for r in RESOURCES}
