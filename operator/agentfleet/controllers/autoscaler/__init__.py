"""The built-in autoscaler: a periodic evaluation per ModelReplicaSet (and per AgentFleet's workers).

It never writes spec (GitOps tools own it): it writes ``status.desiredReplicas`` (the
ModelReplicaSet controller acts on it when ``spec.autoscaling.enabled`` and drains on the way
down), ``status.observed``, ``status.lastScaleTime`` / ``lastScaleReason``,
``status.learnedModelLoadSeconds`` and the conditions ScalingActive, ScalingLimited and
MetricsAvailable - by server-side apply under its own field manager (``agentfleet-autoscaler``),
so the ModelReplicaSet controller's writes of its own conditions never drop these - and emits an Event for every change
of the desired count and for every change of the reason it cannot scale (not every period).

Period: each object's key sits in the autoscaler's work queue (agentfleet.reconcile) and is
evaluated every ``evaluationPeriodSeconds`` (15 s for an AgentFleet's workers): the reconcile
returns the time until the next evaluation. The queue is fed by kopf events
(agentfleet.handlers.autoscaler), not a kopf timer: timers make kopf put a finalizer on every
object, and deleting a ModelReplicaSet must never wait for the operator.

Configuration (environment of the operator):
- ``AGENTFLEET_PROMETHEUS_URL``: default Prometheus when spec.autoscaling.prometheusURL is unset;
- ``AGENTFLEET_PROMETHEUS_MATCHERS``: label matchers selecting one ModelReplicaSet's vLLM series,
  a template with ``{namespace}``, ``{name}`` and ``{model}`` (default
  ``namespace="{namespace}",model_name="{model}"``);
- ``AGENTFLEET_PROMETHEUS_REPLICA_LABEL``: the label naming a replica's pod (default ``pod``);
- ``AGENTFLEET_MODEL_LOAD_SECONDS``: prior for the model load time before one was observed (300).

The task layer: the tasks queued and in flight at the AgentFleets of the same namespace whose
modelRef (or routineModelRef) names a ModelReplicaSet are read from the Prometheus its autoscaling
reads, with ``AGENTFLEET_WORKER_MATCHERS`` (the workers' ``agentfleet_queue_depth`` and
``agentfleet_tasks_in_flight``), and given to its policy as ``Observation.tasks``. The fleets'
model references come from the AgentFleet watch, not from a list per evaluation.

An evaluation is the framework's four steps (agentfleet.reconcile.shape): observe (pods,
Prometheus, the fleets' work) -> decide (autoscale.policy, pure), which asks for two more reads
only when its plan needs them (the task layer and demand profile when awake, the placement
planner's room when growing) -> act (the per-object memory, the demand profile) -> write (status
under the autoscaler's manager, Events for a change of count or of the cause it cannot scale).

Modules, in the order of an evaluation: ``settings`` (knobs, per-object memory), ``controller``
(which objects, when), ``evaluation`` (observe, act, write), ``plan`` (decide, pure), ``records``
(the typed records the steps pass), ``reads`` (the cluster reads and their Protocols).
"""

from agentfleet.controllers.autoscaler.controller import AutoscalerController
from agentfleet.controllers.autoscaler.evaluation import (
    ModelEvaluation,
    WorkersEvaluation,
    af_status_apply,
    mrs_status_apply,
)
from agentfleet.controllers.autoscaler.plan import at_least, combined_work, merged_conditions, scale_events
from agentfleet.controllers.autoscaler.reads import ClusterReads
from agentfleet.controllers.autoscaler.settings import (
    AF,
    AUTOSCALER_FIELDS,
    AUTOSCALER_MANAGER,
    MRS,
    AutoscalerSettings,
    AutoscaleState,
)

__all__ = [
    "AF",
    "AUTOSCALER_FIELDS",
    "AUTOSCALER_MANAGER",
    "MRS",
    "AutoscaleState",
    "AutoscalerController",
    "AutoscalerSettings",
    "ClusterReads",
    "ModelEvaluation",
    "WorkersEvaluation",
    "af_status_apply",
    "at_least",
    "combined_work",
    "merged_conditions",
    "mrs_status_apply",
    "scale_events",
]
