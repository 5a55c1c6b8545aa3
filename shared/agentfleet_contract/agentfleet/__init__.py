"""AgentFleet: agent runtime workers wired to a ModelReplicaSet and a VectorIndex.

The API is split by meaning across this package's modules; every public name is importable from
here, as it was from the single module it grew from.
"""

from __future__ import annotations

from pydantic import Field

from agentfleet_contract.agentfleet.a2a import A2A, A2ASkill
from agentfleet_contract.agentfleet.api import APITLS, TaskAPI, TenantLimits, Tracing
from agentfleet_contract.agentfleet.budgets import Budgets, ModelCalls, Pricing, RateLimit
from agentfleet_contract.agentfleet.decisions import (
    AnswerCheck,
    ApprovalCondition,
    Decisions,
    RequireApproval,
    SystemPrompt,
    ToolPolicy,
)
from agentfleet_contract.agentfleet.redis_settings import ManagedRedis, Redis, RedisSentinel
from agentfleet_contract.agentfleet.rollout import (
    GATE,
    SHIPPED_TASK_SETS,
    GateBudget,
    GateRule,
    GateTaskSet,
    Rollout,
    RolloutEvaluation,
)
from agentfleet_contract.agentfleet.spec import AgentFleetSpec
from agentfleet_contract.agentfleet.status import (
    AgentFleetStatus,
    EvaluationSummary,
    FailureCauses,
    GateCanary,
    GateJudge,
    GateStatus,
    RedisIdentity,
    RedisReach,
)
from agentfleet_contract.agentfleet.tools import (
    ANSWER_POLICIES,
    DEFAULT_TOOL_CONNECT_TIMEOUT_SECONDS,
    DEFAULT_TOOL_MAX_RESPONSE_BYTES,
    DEFAULT_TOOL_TIMEOUT_SECONDS,
    MCP_TOOL_NAME,
    READ_AROUND_MAX,
    TOOL_NAME,
    HTTPTool,
    MCPServer,
    Retrieval,
    Tool,
    names_tool,
)
from agentfleet_contract.agentfleet.workers import Retry, Workers
from agentfleet_contract.common import Model


class AgentFleet(Model):
    api_version: str = Field(default="agentfleet.io/v1alpha1", description="APIVersion of this object.")
    kind: str = Field(default="AgentFleet", description="Kind of this object.")
    metadata: dict = Field(default_factory=dict, description="Standard object metadata.")
    spec: AgentFleetSpec = Field(description="Desired state of the agent fleet.")
    status: AgentFleetStatus | None = Field(default=None, description="Observed state of the agent fleet.")


__all__ = [
    "A2A",
    "A2ASkill",
    "ANSWER_POLICIES",
    "APITLS",
    "AgentFleet",
    "AgentFleetSpec",
    "AgentFleetStatus",
    "AnswerCheck",
    "ApprovalCondition",
    "Budgets",
    "DEFAULT_TOOL_CONNECT_TIMEOUT_SECONDS",
    "DEFAULT_TOOL_MAX_RESPONSE_BYTES",
    "DEFAULT_TOOL_TIMEOUT_SECONDS",
    "Decisions",
    "EvaluationSummary",
    "FailureCauses",
    "GATE",
    "GateBudget",
    "GateRule",
    "GateCanary",
    "GateJudge",
    "GateStatus",
    "GateTaskSet",
    "HTTPTool",
    "MCPServer",
    "MCP_TOOL_NAME",
    "ManagedRedis",
    "ModelCalls",
    "Pricing",
    "READ_AROUND_MAX",
    "RateLimit",
    "Redis",
    "RedisIdentity",
    "RedisReach",
    "RedisSentinel",
    "RequireApproval",
    "Retrieval",
    "Retry",
    "Rollout",
    "RolloutEvaluation",
    "SHIPPED_TASK_SETS",
    "SystemPrompt",
    "TOOL_NAME",
    "TaskAPI",
    "TenantLimits",
    "Tool",
    "ToolPolicy",
    "Tracing",
    "Workers",
    "names_tool",
]
