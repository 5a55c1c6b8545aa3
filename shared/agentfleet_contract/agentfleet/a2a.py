"""AgentFleet spec: serving the A2A (Agent2Agent) protocol from the fleet's task API (docs/a2a.md)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints, field_validator

from agentfleet_contract.common import Model, unique_keys
from agentfleet_contract.rules import matches, no_credentials

SKILL_ID = r"^[a-z0-9]([a-z0-9_.-]{0,62}[a-z0-9])?$"
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Example = Annotated[str, StringConstraints(min_length=1, max_length=512)]


class A2ASkill(Model):
    """One skill the agent card lists: what a caller may ask this fleet to do."""

    id: str = Field(max_length=64, pattern=SKILL_ID, description="The skill's id, unique in the card, e.g. 'answer'.")
    name: str = Field(min_length=1, max_length=128, description="The skill's name, for people choosing an agent.")
    description: str = Field(min_length=1, max_length=2048, description="What the skill does and what it needs.")
    tags: list[Tag] = Field(
        default_factory=list, max_length=16, description="Keywords callers search cards by, e.g. 'postgres'."
    )
    examples: list[Example] = Field(
        default_factory=list,
        max_length=8,
        description="Example requests the skill handles, as a caller would write them.",
    )


class A2A(Model):
    """The fleet as an A2A server: its agent card at /.well-known/agent-card.json and JSON-RPC at
    /a2a on the task API's Service, behind the same bearer tokens, tenants and limits as /v1/tasks."""

    rules = (
        matches("url", "^https?://[^/?#]+(/[^?#]*)?$", "spec.a2a.url must be an http(s):// URL with no query"),
        no_credentials("url", "spec.a2a.url", "spec.api.authSecretRef (callers send bearer tokens, never URLs)"),
    )

    description: str | None = Field(
        default=None,
        max_length=2048,
        description="What the agent does, as its card tells callers; unset: a line naming the fleet and its tools.",
    )
    url: str | None = Field(
        default=None,
        max_length=2048,
        description="Base URL callers reach the task API at (an Ingress or gateway); the card names <url>/a2a. "
        "Unset: the fleet's in-cluster Service URL.",
    )
    skills: list[A2ASkill] = Field(
        default_factory=list,
        max_length=32,
        description="Skills the card lists; empty: one answering skill, plus one per tool the agents may call.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["id"]},
    )

    @field_validator("skills")
    @classmethod
    def _unique_skill_ids(cls, skills: list[A2ASkill]) -> list[A2ASkill]:
        unique_keys("spec.a2a.skills", "id", [k.id for k in skills])
        return skills
