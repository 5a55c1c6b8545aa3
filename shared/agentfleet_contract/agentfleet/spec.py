"""AgentFleetSpec: the fleet's desired state, assembled from this package's parts, and its cross-field rules."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from agentfleet_contract.agentfleet.a2a import A2A
from agentfleet_contract.agentfleet.api import TaskAPI, Tracing
from agentfleet_contract.agentfleet.budgets import Budgets, ModelCalls, Pricing, RateLimit
from agentfleet_contract.agentfleet.decisions import Decisions, SystemPrompt
from agentfleet_contract.agentfleet.redis_settings import Redis
from agentfleet_contract.agentfleet.rollout import Rollout, RolloutEvaluation
from agentfleet_contract.agentfleet.tools import Tool, names_tool
from agentfleet_contract.agentfleet.workers import Retry, Workers
from agentfleet_contract.common import LocalObjectReference, Model, default_obj, unique_keys
from agentfleet_contract.pod_template import POD_TEMPLATE_DESCRIPTION, AgentFleetPodTemplate
from agentfleet_contract.rules import Rule


class AgentFleetSpec(Model):
    rules = (
        Rule(
            cel="!has(self.routineModelRef) || self.routineModelRef.name != self.modelRef.name",
            message=(
                "spec.routineModelRef must name a different (cheaper) ModelReplicaSet than spec.modelRef, or be removed"
            ),
            check=lambda s: s.routine_model_ref is None or s.routine_model_ref.name != s.model_ref.name,
            field_path=".routineModelRef",
        ),
        Rule(
            cel="!has(self.tools) || !self.tools.exists(t, t.type == 'Retrieval') || has(self.vectorIndexRef)",
            message="a Retrieval tool needs spec.vectorIndexRef: name the VectorIndex to search",
            check=lambda s: not any(t.type == "Retrieval" for t in s.tools) or s.vector_index_ref is not None,
            field_path=".vectorIndexRef",
        ),
        Rule(
            cel="!has(self.tools) || self.tools.filter(t, has(t.retrieval) && has(t.retrieval.answerPolicy) && "
            "t.retrieval.answerPolicy != 'Loop').size() <= 1",
            message="spec.tools[].retrieval.answerPolicy: at most one Retrieval tool may set a policy other than "
            "Loop (the question is searched first with one tool)",
            check=lambda s: (
                sum(1 for t in s.tools if t.retrieval is not None and t.retrieval.answer_policy != "Loop") <= 1
            ),
            field_path=".tools",
        ),
        Rule(
            cel="!has(self.decisions) || !has(self.decisions.toolPolicies) || "
            "self.decisions.toolPolicies.all(p, has(self.tools) && "
            "self.tools.exists(t, t.name == p.tool || (t.type == 'MCP' && p.tool.startsWith(t.name + '_'))))",
            message="spec.decisions.toolPolicies[].tool must name a tool in spec.tools "
            "(or <name>_<tool> of an MCP tool): fix the name or add the tool",
            check=lambda s: all(any(names_tool(t, p.tool) for t in s.tools) for p in s.decisions.tool_policies),
            field_path=".decisions.toolPolicies",
        ),
        Rule(
            cel="!has(self.tools) || !self.tools.exists(t, t.type == 'Spawn') || self.budgets.maxDepth > 0",
            message="a Spawn tool needs spec.budgets.maxDepth of at least 1: raise it or remove the tool",
            check=lambda s: not any(t.type == "Spawn" for t in s.tools) or s.budgets.max_depth > 0,
            field_path=".budgets.maxDepth",
        ),
    )

    model_ref: LocalObjectReference = Field(description="ModelReplicaSet that serves the agents' model calls.")
    model_adapter: str | None = Field(
        default=None,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description=(
            "A LoRA adapter of spec.modelRef (one of its spec.adapters) the agents call instead of the base model."
        ),
    )
    routine_model_ref: LocalObjectReference | None = Field(
        default=None,
        description="Cheaper ModelReplicaSet for routine steps (tool-argument formatting, sub-agent summaries).",
    )
    routine_steps: list[Literal["ToolArguments", "Summaries"]] = Field(
        default_factory=list, max_length=2, description="Kinds of steps sent to routineModelRef."
    )
    vector_index_ref: LocalObjectReference | None = Field(
        default=None, description="VectorIndex the Retrieval tools search."
    )
    image: str = Field(
        default="ghcr.io/agentfleet/agentfleet:0.1.0",
        max_length=512,
        description="Agent runtime image (worker and task API).",
    )
    workers: Workers = default_obj("Worker pods that run agent loops.", Workers)
    api: TaskAPI = default_obj("The HTTP task API.", TaskAPI)
    budgets: Budgets = default_obj(
        "Limits per task; hitting one ends the task with its best answer and the reason.", Budgets
    )
    model_calls: ModelCalls = default_obj(
        "How each model call of a task is made: its output limit and timeout.", ModelCalls
    )
    pricing: Pricing = default_obj("Token prices for cost accounting.", Pricing)
    rate_limit: RateLimit = default_obj("Token rate limits shared by all worker pods.", RateLimit)
    retry: Retry = default_obj("Task retries and crash recovery.", Retry)
    tools: list[Tool] = Field(
        default_factory=list,
        max_length=64,
        description="Tools the agents may call.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    system_prompt: SystemPrompt | None = Field(
        default=None, description="System prompt of every task; unset uses the runtime's built-in prompt."
    )
    decisions: Decisions = default_obj("How the model's decisions are asked for, checked and repaired.", Decisions)
    stream_model_calls: bool = Field(
        default=False,
        description=(
            "Stream model calls: hedge on time to first token, and send the answer's text to the task's event stream "
            "(delta events) as it is written."
        ),
    )
    redis: Redis = Field(description="Redis holding the task queue, checkpoints and caches.")
    tracing: Tracing | None = Field(
        default=None,
        description="Send one OpenTelemetry trace per task (invoke_agent, chat, execute_tool spans) to a collector.",
    )
    a2a: A2A | None = Field(
        default=None,
        alias="a2a",
        description="Serve the A2A protocol (agent card, JSON-RPC) on the task API with its tokens and limits; "
        "unset: off.",
    )
    pod_template: AgentFleetPodTemplate | None = Field(
        default=None, description=POD_TEMPLATE_DESCRIPTION + " Applies to the worker and API pods."
    )
    # No schema default: an object written before the field existed stays as it was, so an operator
    # of the version before reads it while a chart upgrade replaces the CRD first.
    rollout: Rollout | None = Field(
        default=None,
        description="How a change that alters answers rolls out: after the evaluation gate (rollout.evaluation, "
        "docs/evaluation-gate.md), or, unset, at once.",
    )

    @property
    def evaluation(self) -> RolloutEvaluation | None:
        """spec.rollout.evaluation, or None: changes roll out at once."""
        return self.rollout.evaluation if self.rollout is not None else None

    @field_validator("tools")
    @classmethod
    def _unique_tool_names(cls, tools: list[Tool]) -> list[Tool]:
        unique_keys("spec.tools", "name", [t.name for t in tools])
        return tools
