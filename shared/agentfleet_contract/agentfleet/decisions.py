"""AgentFleet spec: how the model's decisions are asked for and checked, tool approvals, the system prompt."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agentfleet_contract.agentfleet.tools import TOOL_NAME
from agentfleet_contract.common import ConfigMapKeyRef, Model
from agentfleet_contract.rules import Rule


class ApprovalCondition(Model):
    """One test on a proposed call's JSON arguments; no expressions are evaluated."""

    rules = (
        Rule(
            cel="has(self.above) != has(self.equals)",
            message="spec.decisions.toolPolicies[].requireApproval.when[] needs exactly one of above or equals",
            check=lambda c: (c.above is None) != (c.equals is None),
        ),
    )

    argument: str = Field(
        max_length=256,
        pattern=r"^(/([^~/]|~[01])*)+$",
        description="JSON pointer into the call's arguments, e.g. /amount or /payment/currency.",
    )
    above: float | None = Field(
        default=None, description="Needs approval when the argument is a number greater than this (or is not a number)."
    )
    equals: str | None = Field(
        default=None,
        max_length=1024,
        description="Needs approval when the argument equals this string (a non-string compares as its JSON text).",
    )


class RequireApproval(Model):
    when: list[ApprovalCondition] = Field(
        default_factory=list,
        max_length=16,
        description="Ask only when one of these conditions holds; empty asks for every call of the tool.",
    )
    timeout_seconds: int = Field(
        default=3600,
        ge=1,
        le=7 * 86400,
        description="A call nobody approved or denied within this long is denied; the model reads the denial.",
    )


class ToolPolicy(Model):
    tool: str = Field(
        max_length=64,
        pattern=TOOL_NAME,
        description="Name of a tool in spec.tools (or <name>_<tool> for an MCP server's tool) this policy applies to.",
    )
    first_step: bool = Field(
        default=False,
        description=(
            "The first step of every task must call this tool (e.g. search before answering); the model is offered "
            "only such tools then."
        ),
    )
    max_calls_per_task: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="Calls of this tool one task may make; once used up the tool is no longer offered to the model.",
    )
    require_approval: RequireApproval | None = Field(
        default=None,
        description="A person approves or denies each call (POST /v1/tasks/{id}/approvals) before it runs; "
        "the task waits durably, holding no worker.",
    )


class AnswerCheck(Model):
    retries: int = Field(
        default=1,
        ge=0,
        le=5,
        description="Times one task's answer is sent back (to search again or decline) before onUnsupported applies.",
    )
    on_unsupported: Literal["Decline", "Answer"] = Field(
        default="Decline",
        description="What an answer that still states unsupported values becomes: a decline, or the answer as "
        "the model gave it.",
    )


class Decisions(Model):
    mode: Literal["ToolCalls", "JSONSchema"] = Field(
        default="ToolCalls",
        description=(
            "How the model states each step's decision. ToolCalls: the engine's native tool calls, with <tool_call> "
            "text as fallback. "
            "JSONSchema: one JSON decision per step, constrained by a response_format JSON schema of the allowed "
            "actions "
            "(engines with grammar decoding, e.g. llama.cpp's llama-server or vLLM; for small models that do not call "
            "tools on their own)."
        ),
    )
    repair_attempts: int = Field(
        default=1,
        ge=0,
        le=3,
        description=(
            "Extra model calls per step when a reply fails validation (unknown tool, invalid arguments, a tool "
            "policy); the model is shown the error."
        ),
    )
    tool_policies: list[ToolPolicy] = Field(
        default_factory=list,
        max_length=64,
        description="Per-tool rules the runtime enforces on the model's decisions.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["tool"]},
    )
    answer_check: AnswerCheck | None = Field(
        default=None,
        description="Check each final answer: every number (with its unit) and quoted value it states must be in a "
        "passage the task retrieved, else the model searches again or declines; unset gives answers unchecked.",
    )


class SystemPrompt(Model):
    rules = (
        Rule(
            cel="has(self.inline) != has(self.configMapRef)",
            message="spec.systemPrompt needs exactly one of inline or configMapRef",
            check=lambda p: (p.inline is None) != (p.config_map_ref is None),
        ),
    )

    inline: str | None = Field(default=None, max_length=262_144, description="The system prompt text.")
    config_map_ref: ConfigMapKeyRef | None = Field(default=None, description="ConfigMap key holding the system prompt.")
