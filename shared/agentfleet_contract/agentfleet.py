"""AgentFleet: agent runtime workers wired to a ModelReplicaSet and a VectorIndex."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from agentfleet_contract.common import (
    DECIMAL,
    QUANTITY,
    Condition,
    ConfigMapKeyRef,
    LocalObjectReference,
    Model,
    SecretKeyRef,
    SleepStatus,
    conditions_field,
    default_obj,
)
from agentfleet_contract.gate import GateFigures, Reason
from agentfleet_contract.pod_template import POD_TEMPLATE_DESCRIPTION, AgentFleetPodTemplate
from agentfleet_contract.rules import Rule, each_matches, matches, no_credentials

TOOL_NAME = r"^[a-zA-Z][a-zA-Z0-9_-]*$"
DEFAULT_TOOL_TIMEOUT_SECONDS = 30
DEFAULT_TOOL_MAX_RESPONSE_BYTES = 1024 * 1024
# readAround's bound: 3 chunks a side already make a 128-token chunk a 900-token passage.
READ_AROUND_MAX = 3
DEFAULT_TOOL_CONNECT_TIMEOUT_SECONDS = 5


def _decimal(attr: str, path: str, example: str) -> Rule:
    # A pattern would only say "should match"; a rule's message says what to write.
    return matches(attr, DECIMAL, f'{path} must be a decimal string such as "{example}" (quote it in YAML)')


class Workers(Model):
    rules = (
        Rule(
            cel="self.minReplicas <= self.maxReplicas",
            message=(
                "spec.workers.minReplicas must not exceed spec.workers.maxReplicas: raise maxReplicas or lower "
                "minReplicas"
            ),
            check=lambda w: w.min_replicas <= w.max_replicas,
            field_path=".minReplicas",
        ),
    )

    replicas: int = Field(
        default=2,
        ge=0,
        le=10_000,
        description="Worker pods while autoscaling is off; kubectl scale, HPA and KEDA write it.",
    )
    autoscaling: bool = Field(
        default=False, description="Size the workers from task-queue lag and in-flight tasks within min and max."
    )
    min_replicas: int = Field(default=1, ge=0, le=10_000, description="Fewest worker pods the autoscaler keeps.")
    max_replicas: int = Field(default=10, ge=1, le=10_000, description="Most worker pods the autoscaler asks for.")
    sleep_after_idle_seconds: int = Field(
        default=900,
        ge=0,
        le=604_800,
        description=(
            "With autoscaling and minReplicas 0: seconds with no task queued or in flight"
            " before the workers sleep at zero; a queued task wakes them."
        ),
    )
    target_tasks_per_worker: int = Field(
        default=48, ge=1, le=100_000, description="Queued plus in-flight tasks per worker the autoscaler aims for."
    )
    concurrency: int = Field(
        default=64,
        ge=1,
        le=10_000,
        description="Tasks one worker pod runs at once; tasks mostly wait on the model and tools.",
    )
    cpu: str = Field(default="1", max_length=32, pattern=QUANTITY, description="CPU request of each worker pod.")
    memory: str = Field(
        default="1Gi", max_length=32, pattern=QUANTITY, description="Memory request of each worker pod."
    )
    allow_api_server: bool = Field(
        default=True,
        alias="allowAPIServer",
        description="Worker pods may connect to the API server (sticky routing watches EndpointSlices there). "
        "False: they call each ModelReplicaSet through its Service (no sticky routing, failover or hedging), mount "
        "no token, and the operator's apiServerCIDRs join their egress denials. HTTP tools never reach it either way.",
    )


class Budgets(Model):
    rules = (_decimal("max_cost", "spec.budgets.maxCost", "0.25"),)

    max_steps: int = Field(
        default=30, ge=1, le=1000, description="Model calls one task may make before it ends with its best answer."
    )
    max_fan_out: int = Field(default=4, ge=0, le=64, description="Sub-agents one step may spawn.")
    max_depth: int = Field(default=2, ge=0, le=8, description="Nesting depth of sub-agents; 0 forbids them.")
    max_tokens: int = Field(
        default=200_000,
        ge=1000,
        le=100_000_000,
        description="Prompt plus completion tokens one task may use, sub-agents included.",
    )
    timeout_seconds: int = Field(
        default=900, ge=1, le=86400, description="Wall-clock limit of one task, sub-agents included."
    )
    max_cost: str | None = Field(
        default=None, max_length=32, description='Cost limit of one task in the pricing currency, e.g. "0.25".'
    )


class ModelCalls(Model):
    max_output_tokens: int = Field(
        default=1024,
        ge=16,
        le=131072,
        description="Completion tokens one model call may generate (its max_tokens); a small model's 300 is plenty.",
    )
    timeout_seconds: int = Field(
        default=120,
        ge=1,
        le=3600,
        description="Seconds one model call may take before it is retried; raise it for a model on CPU.",
    )


class Pricing(Model):
    rules = (
        _decimal("input_per_million_tokens", "spec.pricing.inputPerMillionTokens", "0.50"),
        _decimal("output_per_million_tokens", "spec.pricing.outputPerMillionTokens", "1.50"),
    )

    currency: str = Field(
        default="USD", max_length=3, pattern=r"^[A-Z]{3}$", description="ISO 4217 currency of the prices."
    )
    input_per_million_tokens: str = Field(default="0", max_length=32, description="Price of one million prompt tokens.")
    output_per_million_tokens: str = Field(
        default="0", max_length=32, description="Price of one million completion tokens."
    )


class RateLimit(Model):
    rules = (
        Rule(
            cel=(
                "!has(self.tokensPerMinute) || !has(self.perTenantTokensPerMinute) || self.perTenantTokensPerMinute "
                "<= self.tokensPerMinute"
            ),
            message=(
                "spec.rateLimit.perTenantTokensPerMinute must not exceed spec.rateLimit.tokensPerMinute: lower the "
                "tenant limit"
            ),
            check=lambda r: (
                r.tokens_per_minute is None
                or r.per_tenant_tokens_per_minute is None
                or r.per_tenant_tokens_per_minute <= r.tokens_per_minute
            ),
            field_path=".perTenantTokensPerMinute",
        ),
    )

    tokens_per_minute: int | None = Field(
        default=None, ge=1, description="Tokens per minute the whole fleet may send to its model; unset is unlimited."
    )
    per_tenant_tokens_per_minute: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Tokens per minute one tenant may use per model; a submission that would not fit is refused (429). Unset "
            "is unlimited."
        ),
    )
    max_wait_seconds: int = Field(
        default=30,
        ge=0,
        le=3600,
        description="How long a call waits for tokens before it fails with a rate-limit error.",
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
        Rule(
            cel="!has(self.headersSecretRef) || has(self.url)",
            message="spec.tools[].mcp.headersSecretRef is only for url servers: "
            "remove it, or pass a stdio server its settings in env",
            check=lambda m: m.headers_secret_ref is None or m.url is not None,
            field_path=".headersSecretRef",
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


class Tracing(Model):
    rules = (
        matches("endpoint", "^https?://[^/]+", "spec.tracing.endpoint must be the http(s):// URL of a collector"),
        no_credentials(
            "endpoint",
            "spec.tracing.endpoint",
            "spec.tracing.headersSecretRef (the collector's headers, the Secret labelled agentfleet.io/consent=true)",
        ),
    )

    endpoint: str = Field(
        max_length=2048,
        description="OTLP/HTTP collector the spans go to (<endpoint>/v1/traces), e.g. http://jaeger:4318.",
    )
    sampling_percent: int = Field(
        default=100,
        ge=0,
        le=100,
        description="Share of tasks traced, in percent; a task's sub-agents and resumed attempts follow its decision.",
    )
    headers_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret key holding headers for the collector as a JSON object, e.g. an Authorization header.",
    )


# The answer policy: which way a fleet answers from its documents, one named strategy each
# (docs/answer-policy.md, with what each measured). The settings that tuned them exist for
# experiments only and live in the runtime's configuration (runtime_config.AnswerSettings).
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
        Rule(
            cel="self.type != 'MCP' || !has(self.parameters)",
            message="spec.tools[].parameters is not used by MCP tools (the server lists each tool's schema): remove it",
            check=lambda t: t.type != "MCP" or t.parameters is None,
            field_path=".parameters",
        ),
    )

    name: str = Field(max_length=64, pattern=TOOL_NAME, description="Name the model calls the tool by.")
    type: Literal["Retrieval", "HTTP", "Spawn", "MCP"] = Field(
        description=(
            "Retrieval searches the VectorIndex, HTTP calls an endpoint, Spawn starts sub-agents, "
            "MCP offers an MCP server's tools (each named <name>_<server's tool name>)."
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
            "Default 30 s, except a Spawn tool, which waits for its sub-agents as long as the task's own time budget "
            "allows."
        ),
    )
    http: HTTPTool | None = Field(default=None, description="Settings of an HTTP tool.")
    retrieval: Retrieval | None = Field(
        default=None, description="Settings of a Retrieval tool; defaults apply when unset."
    )
    mcp: MCPServer | None = Field(
        default=None, description="Settings of an MCP tool: the server and which of its tools the agents may call."
    )

    def headers_ref(self) -> SecretKeyRef | None:
        """The Secret key of extra HTTP headers (an HTTP tool's or an MCP url server's), mounted as a
        file named like the tool."""
        settings = self.http or self.mcp
        return settings.headers_secret_ref if settings is not None else None

    def call_timeout(self) -> float:
        """Seconds one call may take. A sub-agent runs a whole agent loop (tens of model calls), so a
        Spawn tool's default is unbounded here and the task's deadline bounds it."""
        if self.timeout_seconds is not None:
            return float(self.timeout_seconds)
        return math.inf if self.type == "Spawn" else float(DEFAULT_TOOL_TIMEOUT_SECONDS)


def names_tool(tool: Tool, name: str) -> bool:
    """Whether ``name``, as the model calls it, is ``tool`` or one of the tools an MCP server lists."""
    return tool.name == name or (tool.type == "MCP" and name.startswith(tool.name + "_"))


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


class ManagedRedis(Model):
    image: str = Field(default="redis:7.4-alpine", max_length=512, description="Redis image of the StatefulSet.")
    storage_size: str = Field(
        default="8Gi", max_length=32, pattern=QUANTITY, description="Volume size for the append-only file."
    )
    memory: str = Field(
        default="1Gi", max_length=32, pattern=QUANTITY, description="Memory request and limit of the Redis pod."
    )


class RedisSentinel(Model):
    rules = (
        each_matches(
            "addresses",
            r"^[A-Za-z0-9.-]+:[0-9]{1,5}$",
            "spec.redis.sentinel.addresses[] must be host:port, e.g. sentinel.data:26379",
        ),
    )

    addresses: list[Annotated[str, Field(max_length=261)]] = Field(
        min_length=1,
        max_length=9,
        description=(
            "Sentinels as host:port, e.g. redis-sentinel.data:26379; the runtime asks them for the current primary."
        ),
    )
    master_name: str = Field(
        max_length=64,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Name the Sentinels monitor the primary under (sentinel monitor <name> ...).",
    )
    durable_submit: bool = Field(
        default=True,
        description="Acknowledge a submission only once a replica has it (WAIT 1); without a replica in time the "
        "answer is 503 and a retry with the same Idempotency-Key returns the task.",
    )
    wait_timeout_milliseconds: int = Field(
        default=1000, ge=10, le=60_000, description="How long a submission waits for a replica before answering 503."
    )


class Redis(Model):
    rules = (
        Rule(
            cel="(has(self.url) ? 1 : 0) + (has(self.deploy) ? 1 : 0) + (has(self.sentinel) ? 1 : 0) == 1",
            message="spec.redis needs exactly one of url (an existing Redis), deploy (the operator runs one) or "
            "sentinel "
            "(a Sentinel-managed Redis)",
            check=lambda r: [r.url is not None, r.deploy is not None, r.sentinel is not None].count(True) == 1,
        ),
        matches("url", "^rediss?://", "spec.redis.url must start with redis:// or rediss://"),
        no_credentials(
            "url",
            "spec.redis.url",
            "spec.redis.passwordSecretRef (the Secret labelled agentfleet.io/consent=true)",
        ),
    )

    url: str | None = Field(
        default=None,
        max_length=2048,
        description="Address of an existing Redis, e.g. redis://redis.data:6379/0.",
    )
    password_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding the password of the Redis at url."
    )
    deploy: ManagedRedis | None = Field(
        default=None,
        description=(
            "Run a Redis for this fleet (StatefulSet, generated password, AOF with appendfsync everysec: a crash of "
            "its node, not of Redis alone, loses about the last second of acknowledged writes, such as tasks just "
            "submitted)."
        ),
    )
    sentinel: RedisSentinel | None = Field(
        default=None,
        description="A Redis whose primary Sentinels elect (failover); passwordSecretRef is its data nodes' password.",
    )


class Retry(Model):
    max_attempts: int = Field(
        default=3, ge=1, le=100, description="Attempts of a task before it moves to the dead-letter stream."
    )
    visibility_timeout_seconds: int = Field(
        default=60, ge=5, le=3600, description="A task whose worker stops heartbeating is reclaimed after this long."
    )


class TenantLimits(Model):
    """What one tenant (the owner of a bearer token) may use; a task API refuses more with 429."""

    rules = (_decimal("max_spend_per_day", "spec.api.tenantLimits.maxSpendPerDay", "20"),)

    max_tasks_in_flight: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="Root tasks one tenant may have queued or running at once; unset is unlimited.",
    )
    max_spend_per_day: str | None = Field(
        default=None,
        max_length=32,
        description=(
            "Model spend one tenant may reach per UTC day in the pricing currency (sub-agents included),"
            ' e.g. "20"; unset is unlimited.'
        ),
    )
    max_streams: int = Field(
        default=8, ge=1, le=10_000, description="Progress streams (SSE) one tenant may hold open on one task API pod."
    )


class TaskAPI(Model):
    replicas: int = Field(default=1, ge=0, le=100, description="Task API pods.")
    auth_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description=(
            "Secret key mapping bearer tokens to tenants, one 'TENANT sha256:HEX' line each (HEX: the token's sha256);"
            " a line of one plain token is tenant 'default'; a line ending in ' approver' is a reviewer's token"
            " (decides approvals, submits nothing). Unset makes the operator generate one token."
        ),
    )
    max_request_bytes: int = Field(
        default=1_048_576, ge=1024, le=67_108_864, description="Largest accepted request body."
    )
    max_streams: int = Field(
        default=64,
        ge=1,
        le=10_000,
        description="Progress streams (SSE) one task API pod holds open; kept below its 128 Redis connections.",
    )
    tenant_limits: TenantLimits = default_obj("Per-tenant limits, enforced when a task is submitted.", TenantLimits)
    metrics_access: Literal["Hashed", "Token", "Open"] = Field(
        default="Hashed",
        description=(
            "Who reads the task API's /metrics: Hashed (anyone; tenant labels are hashes, not names),"
            " Token (a bearer token of the API), Open (anyone, with tenant names)."
        ),
    )


# The task sets that ship with agentfleet (e2e/eval/NAME-tasks.yaml), runnable by name.
SHIPPED_TASK_SETS = ("postgres-manual", "python-library")
GATE = "spec.rollout.evaluation"


class GateTaskSet(Model):
    rules = (
        Rule(
            cel="has(self.shipped) != has(self.configMapRef)",
            message=f"{GATE}.taskSet needs exactly one of shipped (a task set by name) or configMapRef",
            check=lambda t: (t.shipped is None) != (t.config_map_ref is None),
        ),
    )

    shipped: Literal["postgres-manual", "python-library"] | None = Field(
        default=None, description="A task set that ships with agentfleet, by name."
    )
    config_map_ref: ConfigMapKeyRef | None = Field(
        default=None, description="ConfigMap key holding a task set in agentfleet eval's format (YAML or JSONL)."
    )


class GateRule(Model):
    rules = (_decimal("max_cost_ratio", f"{GATE}.rule.maxCostRatio", "1.5"),)

    max_success_drop_points: int = Field(
        default=15,
        ge=0,
        le=100,
        description="Hold when the paired 95% interval of candidate minus current task success reaches below minus "
        "this many points.",
    )
    max_grounded_drop_points: int | None = Field(
        default=15,
        ge=0,
        le=100,
        description="The same for answerable tasks whose answers are grounded in their citations; unset: not checked.",
    )
    max_decline_drop_points: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="The same for unanswerable questions declined; unset: declines are not checked.",
    )
    max_cost_ratio: str | None = Field(
        default="1.5",
        max_length=32,
        description="Hold when the candidate's cost per task exceeds this multiple of the current version's (tokens "
        "per task when the fleet has no prices); unset: cost is not checked.",
    )


class GateBudget(Model):
    timeout_seconds: int = Field(
        default=3600, ge=60, le=86_400, description="Wall time of one gate; an exhausted budget holds the change."
    )
    max_tokens: int = Field(
        default=2_000_000,
        ge=1_000,
        le=10_000_000_000,
        description="Tokens both versions may spend on one gate together; an exhausted budget holds the change.",
    )


class RolloutEvaluation(Model):
    task_set: GateTaskSet = Field(description="The questions both versions answer, scored as agentfleet eval scores.")
    part: Literal["dev", "heldout", "all"] = Field(
        default="heldout", description="Part of the task set to run: dev, heldout or all."
    )
    sample: int = Field(
        default=30,
        ge=0,
        le=10_000,
        description="Tasks to run, a stratified sample by part and kind (the same for the same seed); 0 runs all.",
    )
    seed: int = Field(default=0, ge=0, le=2_147_483_647, description="Seed of the sample.")
    rule: GateRule = default_obj("When a change is promoted: every checked measure passes.", GateRule)
    budget: GateBudget = default_obj("Time and tokens one gate may spend.", GateBudget)
    concurrency: int = Field(
        default=2, ge=1, le=64, description="Tasks in flight at once, per version, while the gate runs."
    )


class Rollout(Model):
    evaluation: RolloutEvaluation | None = Field(
        default=None,
        description="Run a task set against the current version and a change that alters answers, and promote the "
        "change only if it passes the rule; unset rolls changes out at once.",
    )


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
    pod_template: AgentFleetPodTemplate | None = Field(
        default=None, description=POD_TEMPLATE_DESCRIPTION + " Applies to the worker and API pods."
    )
    # spec.rollout (class Rollout) joins the spec when the AgentFleet controller runs the gate
    # (docs/evaluation-gate.md): a field the operator ignored would promise a gate that never runs.

    @field_validator("tools")
    @classmethod
    def _unique_tool_names(cls, tools: list[Tool]) -> list[Tool]:
        # The schema's list-map keyed by name enforces this on the server; mirror it here.
        names = [t.name for t in tools]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"spec.tools names must be unique; duplicated: {', '.join(dup)}")
        return tools


class FailureCauses(Model):
    """Failed tasks of the run by the stage they failed at, the first that explains each (docs/evaluation.md)."""

    budget: int = Field(default=0, ge=0, description="Ended on a step, token, cost, time or context budget.")
    error: int = Field(default=0, ge=0, description="Failed or died: a model call, a worker or the task API.")
    format: int = Field(default=0, ge=0, description="No answer text, or the model's raw decision JSON as the answer.")
    not_retrieved: int = Field(default=0, ge=0, description="No passage of a supporting page among those the task saw.")
    passage_missed: int = Field(
        default=0, ge=0, description="A supporting page was seen, but no seen passage states a fact the answer missed."
    )
    declined: int = Field(default=0, ge=0, description="A seen passage states every missed fact; the answer declined.")
    misread: int = Field(
        default=0, ge=0, description="A seen passage states every missed fact; the answer stated something else."
    )
    invented: int = Field(default=0, ge=0, description="A value asserted where the documents do not answer.")
    passage_as_answer: int = Field(
        default=0, ge=0, description="The answer gives a passage (its number, head line or score) in its place."
    )
    decline_undone: int = Field(
        default=0, ge=0, description="The cascade's first answer declined rightly; the loop's answer asserted a value."
    )


class EvaluationSummary(Model):
    """The last `agentfleet eval` run against this fleet, written by the harness under its own field manager."""

    task_set: str = Field(
        max_length=512, description="Task set evaluated: file name and part (for example postgres-manual.yaml#heldout)."
    )
    finished_at: str = Field(max_length=64, description="When the run ended (RFC 3339, UTC).")
    tasks: int = Field(ge=0, description="Tasks submitted through the task API.")
    success: float = Field(
        ge=0,
        le=1,
        description=(
            "Share of tasks whose answer states every expected fact (or declines, for questions the documents do not "
            "answer)."
        ),
    )
    grounded: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description=(
            "Share of answerable tasks whose citations all name passages the task retrieved and contain the stated "
            "facts."
        ),
    )
    recall: float | None = Field(
        default=None, ge=0, le=1, description="Mean recall@k of the supporting documents among the retrieved passages."
    )
    recall_k: int | None = Field(default=None, ge=1, description="The k of recall.")
    p95_seconds: float | None = Field(default=None, ge=0, description="95th percentile task latency, submit to finish.")
    cost_per_task: str | None = Field(
        default=None, max_length=32, description="Mean cost of a task and its sub-agents in the pricing currency."
    )
    configuration: str | None = Field(
        default=None, max_length=512, description="Settings the harness overrode for this run, if any."
    )
    failure_causes: FailureCauses | None = Field(
        default=None, description="Failed tasks by the stage they failed at: where to look first."
    )


class GateStatus(Model):
    """The evaluation gate of the latest change (spec.rollout.evaluation)."""

    phase: Literal["Serving", "Running", "Promoted", "Held", "Aborted"] = Field(
        description="Serving (no change to gate), Running, or how the gate ended: Promoted, Held, or Aborted by the "
        "override annotation."
    )
    current: str | None = Field(
        default=None, max_length=64, description="Hash of the answer-changing spec the serving workers run."
    )
    candidate: str | None = Field(
        default=None, max_length=64, description="Hash of the answer-changing spec the candidate runs."
    )
    reason: Reason | None = Field(default=None, description="Why it was promoted or held.")
    started_at: str | None = Field(default=None, max_length=64, description="When the gate began (RFC 3339, UTC).")
    finished_at: str | None = Field(default=None, max_length=64, description="When it decided (RFC 3339, UTC).")
    figures: GateFigures | None = Field(default=None, description="What the gate measured.")


class AgentFleetStatus(Model):
    observed_generation: int | None = Field(default=None, description="metadata.generation last acted upon.")
    workers: int = Field(default=0, description="Worker pods that exist.")
    ready_workers: int = Field(default=0, description="Worker pods ready to take tasks.")
    desired_workers: int | None = Field(default=None, description="Worker pods the operator aims for.")
    selector: str | None = Field(
        default=None, max_length=4096, description="Label selector of the worker pods, for the scale subresource."
    )
    queue_depth: int | None = Field(default=None, description="Tasks waiting in the stream.")
    in_flight_tasks: int | None = Field(default=None, description="Tasks being worked on.")
    awaiting_approval: int | None = Field(
        default=None, description="Tasks waiting for a person to approve a tool call (kubectl agentfleet approvals)."
    )
    tasks_per_hour: int | None = Field(default=None, description="Tasks finished in the last hour.")
    task_p95_seconds: float | None = Field(
        default=None, description="95th percentile task duration over the last hour."
    )
    cost_per_task: str | None = Field(
        default=None, max_length=32, description="Mean cost of a finished task in the pricing currency."
    )
    task_api_endpoint: str | None = Field(default=None, max_length=512, description="In-cluster URL of the task API.")
    evaluation: EvaluationSummary | None = Field(
        default=None, description="Summary of the last evaluation run (agentfleet eval); the operator never writes it."
    )
    sleep: SleepStatus | None = Field(
        default=None, description="Scale to zero (workers.minReplicas 0): awake, sleeping at zero workers, or waking."
    )
    conditions: list[Condition] = conditions_field()


class AgentFleet(Model):
    api_version: str = Field(default="agentfleet.io/v1alpha1", description="APIVersion of this object.")
    kind: str = Field(default="AgentFleet", description="Kind of this object.")
    metadata: dict = Field(default_factory=dict, description="Standard object metadata.")
    spec: AgentFleetSpec = Field(description="Desired state of the agent fleet.")
    status: AgentFleetStatus | None = Field(default=None, description="Observed state of the agent fleet.")
