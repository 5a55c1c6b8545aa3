"""AgentFleet spec: the tools agents call (Retrieval, HTTP, Spawn, MCP, A2A) and their settings."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field

from agentfleet_contract.common import DECIMAL, Model, SecretKeyRef
from agentfleet_contract.rules import Rule, matches, no_credentials

TOOL_NAME = r"^[a-zA-Z][a-zA-Z0-9_-]*$"
DEFAULT_TOOL_TIMEOUT_SECONDS = 30
DEFAULT_TOOL_MAX_RESPONSE_BYTES = 1024 * 1024
# readAround's bound: 3 chunks a side already make a 128-token chunk a 900-token passage.
READ_AROUND_MAX = 3
DEFAULT_TOOL_CONNECT_TIMEOUT_SECONDS = 5
CA_SECRET_REF_DESCRIPTION = (
    "Secret key holding PEM CA certificates trusted, in addition to the system's, for this tool's HTTPS "
    "connections (cert-manager's ca.crt)."
)


class HTTPTool(Model):
    rules = (
        matches("url", "^https?://[^/]+", "spec.tools[].http.url must be an http:// or https:// URL"),
        no_credentials(
            "url",
            "spec.tools[].http.url",
            "spec.tools[].http.headersSecretRef (an Authorization header, the Secret labelled "
            "agentfleet.io/consent=true)",
        ),
    )

    url: str = Field(
        max_length=2048,
        description="Endpoint the tool's JSON arguments are sent to.",
    )
    method: Literal["GET", "POST", "PUT"] = Field(
        default="POST", description="HTTP method; GET sends the arguments as query parameters."
    )
    headers_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding extra headers as a JSON object, e.g. an Authorization header."
    )
    ca_secret_ref: SecretKeyRef | None = Field(default=None, description=CA_SECRET_REF_DESCRIPTION)
    side_effects: bool = Field(
        default=False,
        description="The call changes something; it runs under an idempotency key so a resumed step never repeats it.",
    )
    follow_redirects: Literal["Never", "SameOrigin"] = Field(
        default="Never",
        description="Never: a redirect is the model's observation, not followed. SameOrigin: follow up to "
        "5 to the same scheme, host and port, without the headersSecretRef headers.",
    )
    max_response_bytes: int = Field(
        default=DEFAULT_TOOL_MAX_RESPONSE_BYTES,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Response bytes read at most; the rest is never read and the model sees a truncation note.",
    )
    connect_timeout_seconds: int = Field(
        default=DEFAULT_TOOL_CONNECT_TIMEOUT_SECONDS,
        ge=1,
        le=300,
        description="Seconds to open the connection before the call fails.",
    )


# What one MCP server may put in front of the model: its listing is the server's word, not ours.
MCP_TOOL_NAME = r"^[A-Za-z0-9_.\-/]{1,128}$"


def _url_server_only(field: str, attr: str, fix: str) -> Rule:
    """An MCP setting that only a url server's connections use."""
    return Rule(
        cel=f"!has(self.{field}) || has(self.url)",
        message=f"spec.tools[].mcp.{field} is only for url servers: {fix}",
        check=lambda m: getattr(m, attr) is None or m.url is not None,
        field_path=f".{field}",
    )


class MCPServer(Model):
    rules = (
        Rule(
            cel="has(self.url) != has(self.command)",
            message="spec.tools[].mcp needs exactly one of url (a streamable HTTP server) and command "
            "(a stdio server started in the worker's container): set one and remove the other",
            check=lambda m: (m.url is None) != (m.command is None),
        ),
        matches(
            "url",
            "^https?://[^/]+",
            "spec.tools[].mcp.url must be an http:// or https:// URL, e.g. http://tools.default.svc:8000/mcp",
        ),
        no_credentials(
            "url",
            "spec.tools[].mcp.url",
            "spec.tools[].mcp.headersSecretRef (an Authorization header, the Secret labelled "
            "agentfleet.io/consent=true)",
        ),
        _url_server_only(
            "headersSecretRef", "headers_secret_ref", "remove it, or pass a stdio server its settings in env"
        ),
        _url_server_only(
            "caSecretRef",
            "ca_secret_ref",
            "remove it (a stdio server makes its own connections: pass it its settings in env)",
        ),
    )

    url: str | None = Field(
        default=None,
        max_length=2048,
        description="Streamable HTTP endpoint of the MCP server, e.g. http://tools.default.svc:8000/mcp.",
    )
    headers_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding extra HTTP headers as a JSON object (url servers), e.g. Authorization.",
    )
    ca_secret_ref: SecretKeyRef | None = Field(default=None, description=CA_SECRET_REF_DESCRIPTION)
    command: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description=(
            "Executable and arguments of a stdio MCP server, run in each worker's container "
            "(it must be in the worker image)."
        ),
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        max_length=64,
        description=(
            "Extra environment of a stdio server; it inherits only PATH, HOME and the like, never the worker's secrets."
        ),
    )
    allow_tools: list[str] = Field(
        default_factory=list,
        max_length=256,
        description=(
            "Names of the server's tools the agents may call (as the server lists them); "
            "empty allows every listed tool."
        ),
    )
    read_only_tools: list[str] = Field(
        default_factory=list,
        max_length=256,
        description=(
            "Tools of the server that change nothing; every other tool is treated as a side effect "
            "(its result is recorded and its call carries an idempotency key). The server's own hints are not trusted."
        ),
    )
    max_tools: int = Field(
        default=32,
        ge=1,
        le=256,
        description="Most tools taken from the server's listing; each one costs prompt tokens on every model call.",
    )


class A2ABudgets(Model):
    rules = (
        matches(
            "max_cost",
            DECIMAL,
            'spec.tools[].a2a.budgets.maxCost must be a decimal string such as "0.05" (quote it in YAML)',
        ),
    )

    max_steps: int | None = Field(
        default=None, ge=1, le=1000, description="Model calls the remote agent's task may make, at most."
    )
    max_tokens: int | None = Field(
        default=None,
        ge=1,
        le=100_000_000,
        description="Tokens the remote task may use, at most; lowered to what the calling task has left.",
    )
    max_cost: str | None = Field(
        default=None,
        max_length=32,
        description='Cost the remote task may spend, e.g. "0.05"; lowered to what the calling task has left.',
    )


class A2AAgent(Model):
    rules = (
        matches(
            "card_url",
            "^https?://[^/]+",
            "spec.tools[].a2a.cardUrl must be an http:// or https:// URL, "
            "e.g. http://docs-api.team-b.svc:8080/.well-known/agent-card.json",
        ),
        no_credentials(
            "card_url",
            "spec.tools[].a2a.cardUrl",
            "spec.tools[].a2a.headersSecretRef (an Authorization header, the Secret labelled "
            "agentfleet.io/consent=true)",
        ),
    )

    card_url: str = Field(
        max_length=2048,
        description="URL of the remote agent's A2A agent card, e.g. http://<host>/.well-known/agent-card.json.",
    )
    headers_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding the headers sent to the remote agent as a JSON object, e.g. Authorization.",
    )
    ca_secret_ref: SecretKeyRef | None = Field(default=None, description=CA_SECRET_REF_DESCRIPTION)
    budgets: A2ABudgets | None = Field(
        default=None,
        description="Budgets asked of the remote task (the message's metadata.budgets), never above what the caller "
        "has left.",
    )
    max_response_bytes: int = Field(
        default=DEFAULT_TOOL_MAX_RESPONSE_BYTES,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Bytes read at most of the card, of each JSON answer and of each streamed event.",
    )
    connect_timeout_seconds: int = Field(
        default=DEFAULT_TOOL_CONNECT_TIMEOUT_SECONDS,
        ge=1,
        le=300,
        description="Seconds to open each connection to the remote agent before the call fails.",
    )


# The answer policy: which way a fleet answers from its documents, one named strategy each
# (docs/answer-policy.md, with what each measured). The settings that tuned them exist for
# experiments only: named variants the runtime's policy classes validate (runtime_config.AnswerVariant).
ANSWER_POLICIES = ("Loop", "OneShot", "Cascade")


class Retrieval(Model):
    top_k: int = Field(default=5, ge=1, le=100, description="Passages returned per query.")
    filter: str | None = Field(
        default=None, max_length=4096, description='Milvus boolean filter applied to every search, e.g. lang == "en".'
    )
    cache_ttl_seconds: int = Field(
        default=300,
        ge=0,
        le=86400,
        description="How long identical queries are answered from the Redis cache; 0 disables it.",
    )
    read_around: int = Field(
        default=0,
        ge=0,
        le=READ_AROUND_MAX,
        description="Neighbouring chunks of the same document joined to each passage, on each side (the chunks' "
        "overlap shown once), so a fact just past a chunk's end comes with the passage that ranked; 0: the chunk "
        "alone.",
    )
    answer_policy: Literal["Loop", "OneShot", "Cascade"] = Field(
        default="Loop",
        description="How the fleet answers from this tool's documents: Loop (the agent searches and answers as it "
        "decides), OneShot (search with the question, answer once from those passages, as one-shot RAG) or Cascade "
        "(OneShot's answer, checked: one stating a value no passage holds or saying the passages do not answer goes "
        "on to the loop; a question naming what the documents never mention is declined). docs/answer-policy.md.",
    )


def _settings_block(kind: str, attr: str, give: str) -> tuple[Rule, Rule]:
    """A tool's settings block ``attr`` is required for tools of type ``kind``, and only for them."""
    return (
        Rule(
            cel=f"self.type != '{kind}' || has(self.{attr})",
            message=f"spec.tools[].{attr} is required when type is {kind}: give its {give}",
            check=lambda t: t.type != kind or getattr(t, attr) is not None,
            field_path=f".{attr}",
        ),
        Rule(
            cel=f"self.type == '{kind}' || !has(self.{attr})",
            message=f"spec.tools[].{attr} is only for tools of type {kind}: remove it or set type {kind}",
            check=lambda t: t.type == kind or getattr(t, attr) is None,
            field_path=f".{attr}",
        ),
    )


class Tool(Model):
    rules = (
        *_settings_block("HTTP", "http", "url"),
        *_settings_block("MCP", "mcp", "url or command"),
        *_settings_block("A2A", "a2a", "cardUrl"),
        Rule(
            cel="self.type != 'MCP' || !has(self.parameters)",
            message="spec.tools[].parameters is not used by MCP tools (the server lists each tool's schema): remove it",
            check=lambda t: t.type != "MCP" or t.parameters is None,
            field_path=".parameters",
        ),
        Rule(
            cel="self.type != 'A2A' || !has(self.parameters)",
            message='spec.tools[].parameters is not used by A2A tools (the model sends {"message": "..."}): remove it',
            check=lambda t: t.type != "A2A" or t.parameters is None,
            field_path=".parameters",
        ),
    )

    name: str = Field(max_length=64, pattern=TOOL_NAME, description="Name the model calls the tool by.")
    type: Literal["Retrieval", "HTTP", "Spawn", "MCP", "A2A"] = Field(
        description=(
            "Retrieval searches the VectorIndex, HTTP calls an endpoint, Spawn starts sub-agents, "
            "MCP offers an MCP server's tools (each named <name>_<server's tool name>), "
            "A2A sends a sub-task to a remote A2A agent and cites its answer."
        )
    )
    description: str = Field(default="", max_length=4096, description="What the tool does, shown to the model.")
    parameters: dict[str, Any] | None = Field(
        default=None, description="JSON Schema of the tool's arguments, shown to the model."
    )
    timeout_seconds: int | None = Field(
        default=None,
        ge=1,
        le=86400,
        description=(
            "Per-call timeout; a timeout becomes an observation, not a task failure. "
            "Default 30 s, except a Spawn tool, which waits for its sub-agents, and an A2A tool, which waits for the "
            "remote task, as long as the task's own time budget allows."
        ),
    )
    http: HTTPTool | None = Field(default=None, description="Settings of an HTTP tool.")
    retrieval: Retrieval | None = Field(
        default=None, description="Settings of a Retrieval tool; defaults apply when unset."
    )
    mcp: MCPServer | None = Field(
        default=None, description="Settings of an MCP tool: the server and which of its tools the agents may call."
    )
    a2a: A2AAgent | None = Field(
        default=None,
        alias="a2a",  # to_camel would write a2A
        description="Settings of an A2A tool: the remote agent's card, credential and budgets.",
    )

    def headers_ref(self) -> SecretKeyRef | None:
        """The Secret key of extra HTTP headers (an HTTP tool's, an MCP url server's or an A2A agent's),
        mounted as a file named like the tool."""
        settings = self.http or self.mcp or self.a2a
        return settings.headers_secret_ref if settings is not None else None

    def ca_ref(self) -> SecretKeyRef | None:
        """The Secret key of the CA certificates this tool's HTTPS connections trust besides the
        system's (an HTTP tool's, an MCP url server's or an A2A agent's), mounted as <tool name>.pem."""
        settings = self.http or self.mcp or self.a2a
        return settings.ca_secret_ref if settings is not None else None

    def settings_key(self) -> str | None:
        """The field of this tool's connection settings ("http", "mcp", "a2a"; None for the others)."""
        return "http" if self.http is not None else "mcp" if self.mcp is not None else "a2a" if self.a2a else None

    def secret_refs(self) -> list[tuple[str, SecretKeyRef]]:
        """The Secret keys this tool's settings name, each with its field below spec.tools[i]
        (e.g. "http.caSecretRef"): what the worker pods mount, so what consent must cover."""
        named = (("headersSecretRef", self.headers_ref()), ("caSecretRef", self.ca_ref()))
        return [(f"{self.settings_key()}.{field}", ref) for field, ref in named if ref is not None]

    def call_timeout(self) -> float:
        """Seconds one call may take. A sub-agent, local (Spawn) or remote (A2A), runs a whole agent loop
        (tens of model calls), so its default is unbounded here and the task's deadline bounds it."""
        if self.timeout_seconds is not None:
            return float(self.timeout_seconds)
        return math.inf if self.type in ("Spawn", "A2A") else float(DEFAULT_TOOL_TIMEOUT_SECONDS)


def names_tool(tool: Tool, name: str) -> bool:
    """Whether ``name``, as the model calls it, is ``tool`` or one of the tools an MCP server lists."""
    return tool.name == name or (tool.type == "MCP" and name.startswith(tool.name + "_"))
