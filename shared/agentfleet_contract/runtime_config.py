"""The runtime's configuration document: the one contract between the AgentFleet controller, which
renders it into the fleet's ConfigMap, and the runtime, which loads it.

The budgets, pricing, retry and tools sections take exactly the AgentFleet spec's shapes, and the
routing section the ModelReplicaSet's, so defaults have one source. ``runtime_config`` is the one
builder from an AgentFleet; secrets (Redis password, model API key, bearer tokens, tool headers)
never enter the document: pods get them from env vars or mounted files.
"""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field

from agentfleet_contract.agentfleet import (
    A2ASkill,
    AgentFleet,
    AgentFleetSpec,
    Budgets,
    Decisions,
    Pricing,
    RateLimit,
    Retry,
    TenantLimits,
    Tool,
)
from agentfleet_contract.agentfleet.api import TLS_CERT_KEY, TLS_KEY_KEY
from agentfleet_contract.common import Model
from agentfleet_contract.modelreplicaset import Routing

# Comma-separated CIDRs the workers' HTTP tools never connect to, besides link-local metadata and the
# API server's Service IP: the operator sets it on worker pods from the same list as their egress
# NetworkPolicy, the runtime reads it (agentfleet_runtime.tools.http).
EGRESS_DENY_ENV = "AGENTFLEET_EGRESS_DENY"

DEFAULT_SYSTEM_PROMPT = (
    "You are a careful assistant that completes the user's goal. Use the tools when they help; when you know the "
    "answer, reply with the answer alone."
)


class ModelEndpoint(Model):
    base_url: str = Field(
        default="http://127.0.0.1:8000/v1",
        description="OpenAI-compatible base URL (the part before /chat/completions).",
    )
    name: str = Field(default="default", description="Model name sent in each request.")
    api_key: str | None = Field(
        default=None, description="Bearer token for the model server; prefer AGENTFLEET_MODEL_API_KEY."
    )
    routine_api_key: str | None = Field(
        default=None,
        description="Bearer token for the routine tier's replicas (AGENTFLEET_ROUTINE_MODEL_API_KEY); unset: apiKey.",
    )
    timeout_seconds: float = Field(default=120.0, gt=0, description="Per-call timeout.")
    max_retries: int = Field(
        default=2, ge=0, le=10, description="Retries of a call on 5xx, 429, timeouts and connection errors."
    )
    tool_calling: Literal["auto", "native", "text"] = Field(
        default="auto",
        description=(
            "native: tools field only; text: tools described in the prompt, calls parsed from text; auto: both."
        ),
    )
    max_output_tokens: int = Field(default=1024, ge=1, description="max_tokens of each call.")
    temperature: float = Field(default=0.0, ge=0, le=2)


class AnswerVariant(Model):
    """An experiment's variant of the fleet's answer policy (``agentfleet eval --compare answering=...``),
    not part of the AgentFleet API: the runtime's policy class validates it, the operator never reads it."""

    variant: str = Field(default="", description="The variant's name, one the policy's class defines ('': as shipped).")
    params: dict[str, Any] = Field(
        default_factory=dict, description="The variant's parameters, as its class reads them."
    )


class WorkerSettings(Model):
    concurrency: int = Field(default=64, ge=1, le=10_000, description="Tasks one worker process runs at once.")
    heartbeat_seconds: float | None = Field(
        default=None, gt=0, description="Lease renewal period; default a third of the visibility timeout."
    )
    shutdown_grace_seconds: float = Field(
        default=20.0, ge=0, description="On SIGTERM, how long running steps may finish before their tasks are released."
    )
    metrics_port: int = Field(
        default=9090, ge=0, le=65535, description="Port of /metrics, /healthz and /readyz; 0 disables."
    )
    reclaim_interval_seconds: float | None = Field(
        default=None,
        gt=0,
        description="How often stalled tasks are looked for; default a quarter of the visibility timeout.",
    )
    retry_backoff_seconds: float = Field(
        default=2.0,
        ge=0,
        description="First delay before a failed task is retried; doubles per failure, capped at 60 s.",
    )


# -- the task API's tokens file (api.tokensFile): written by the operator (a generated token's
# hash) and by fleet owners, read by the task API (agentfleet_runtime.core.tenants) -----------------

DEFAULT_TENANT = "default"  # the tenant of a plain-token line, and of every caller without auth
# The evaluation gate's tasks are filed under this tenant (docs/evaluation-gate.md); no token may
# map to it, so no caller of the task API ever lists, reads or cancels them.
GATE_TENANT = "agentfleet-gate"
RESERVED_TENANTS = frozenset({GATE_TENANT})
TENANT_NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")  # a DNS label with dots and underscores
HASH_PREFIX = "sha256:"


def token_hash(token: str | bytes) -> bytes:
    """The digest a tokens-file line stores for ``token`` (raw 32 bytes)."""
    return hashlib.sha256(token.encode() if isinstance(token, str) else token).digest()


APPROVER_SCOPE = "approver"  # a tokens-file line's third field: the token decides approvals, never submits


def token_line(tenant: str, token: str, scope: str = "") -> str:
    """One line of a tokens file: ``tenant sha256:<hex>``, or ``tenant sha256:<hex> approver``
    for a reviewer's token (it lists and decides the tenant's approvals and submits nothing)."""
    if not TENANT_NAME.match(tenant):
        raise ValueError(f"tenant {tenant!r} must be a lowercase name of at most 63 characters such as 'acme'")
    if tenant in RESERVED_TENANTS:
        raise ValueError(f"tenant {tenant!r} is reserved for the evaluation gate's tasks: pick another name")
    if scope not in ("", APPROVER_SCOPE):
        raise ValueError(f"scope {scope!r} must be empty or {APPROVER_SCOPE!r}")
    return f"{tenant} {HASH_PREFIX}{token_hash(token).hex()}" + (f" {APPROVER_SCOPE}" if scope else "")


class ApiTLSSettings(Model):
    """The task API serves HTTPS (TLS 1.2 or later) with this certificate (AgentFleet.spec.api.tls)."""

    cert_file: str = Field(description="PEM certificate chain, the server's own first (the mounted tls.crt).")
    key_file: str = Field(description="PEM private key of that certificate (the mounted tls.key).")
    reload_seconds: float = Field(
        default=60.0, gt=0, description="How often the files are checked for a renewed certificate, served once read."
    )


class ApiSettings(Model):
    port: int = Field(default=8080, ge=0, le=65535)
    tls: ApiTLSSettings | None = Field(default=None, description="Serve HTTPS with this certificate; unset: HTTP.")
    tokens_file: str | None = Field(
        default=None,
        description="File mapping bearer tokens to tenants (the mounted Secret key; format in tenants.py).",
    )
    allow_anonymous: bool = Field(
        default=False, description="Serve without auth when no tokens file is set (development only)."
    )
    max_request_bytes: int = Field(default=1_048_576, ge=1024, le=67_108_864)
    max_goal_chars: int = Field(default=100_000, ge=1)
    max_streams: int = Field(
        default=64, ge=1, le=10_000, description="Progress streams one API process holds open (below its Redis pool)."
    )
    tenant_limits: TenantLimits = Field(
        default_factory=TenantLimits, description="Per-tenant limits, enforced at submission."
    )
    metrics_access: Literal["Hashed", "Token", "Open"] = Field(
        default="Hashed",
        description=(
            "GET /metrics: Hashed (open, tenant labels replaced by a hash), Token (a bearer token of"
            " the API, names kept), Open (open, names kept)."
        ),
    )


class TracingSettings(Model):
    endpoint: str = Field(default="", description="OTLP/HTTP collector (spans go to <endpoint>/v1/traces); empty: off.")
    sampling_ratio: float = Field(
        default=1.0, ge=0, le=1, description="Share of new traces sampled; sub-agents and resumes follow their trace."
    )
    headers_file: str | None = Field(
        default=None, description="File holding the collector's headers as a JSON object (the mounted Secret key)."
    )


class A2ASettings(Model):
    """The task API's A2A server (AgentFleet.spec.a2a); the fleet's name and tools fill the rest of the card."""

    description: str | None = Field(default=None, description="The card's description; unset: built from the fleet.")
    url: str | None = Field(
        default=None, description="Base URL the card advertises (<url>/a2a); unset: the origin each request came to."
    )
    skills: list[A2ASkill] = Field(default_factory=list, description="The card's skills; empty: built from the tools.")


class BreakerSettings(Model):
    failure_threshold: int = Field(default=5, ge=1, description="Consecutive failures that open a tool's breaker.")
    cooldown_seconds: float = Field(
        default=30.0, gt=0, description="How long an open breaker refuses calls before probing."
    )


class RuntimeConfig(Model):
    fleet: str = Field(
        default="default",
        max_length=253,
        description="Name of the AgentFleet; prefixes every Redis key (af:<fleet>:...).",
    )
    namespace: str = Field(
        default="",
        max_length=63,
        description="Namespace of the AgentFleet; with fleet, prefixes every Redis key (af:<namespace>/<fleet>:...).",
    )
    legacy_keys: bool = Field(
        default=False,
        description="Move this fleet's keys of the old layout (af:<fleet>:) under its prefix; set by the operator only "
        "for a fleet its administrator claimed them for.",
    )
    redis_url: str = Field(default="redis://127.0.0.1:6379/0")
    redis_password: str | None = None
    redis_max_connections: int = Field(
        default=128, ge=4, le=10_000, description="Connections one process keeps to Redis; tasks share them."
    )
    redis_ack_replicas: int = Field(
        default=0,
        ge=0,
        le=8,
        description="Replicas a new task must reach (WAIT) before the API acknowledges it; 0: at once.",
    )
    redis_ack_timeout_ms: int = Field(
        default=1000, ge=10, le=60_000, description="How long a submission waits for those replicas."
    )
    listen_host: str = Field(
        default="127.0.0.1", description="Address the API and metrics servers bind; 0.0.0.0 in a pod."
    )
    model: ModelEndpoint = Field(default_factory=ModelEndpoint)
    model_routing: dict[str, Any] | None = Field(
        default=None,
        description=(
            "Routing client settings (ModelRoutingConfig); when set, model calls go through it instead of "
            "model.baseUrl."
        ),
    )
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    tools: list[Tool] = Field(default_factory=list)
    tool_headers_dir: str | None = Field(
        default=None,
        description="Directory with one file per HTTP tool (named like the tool) holding a JSON object of headers.",
    )
    tool_ca_dir: str | None = Field(
        default=None,
        description="Directory with one file per tool with a caSecretRef (<tool name>.pem) holding the PEM CA "
        "certificates its HTTPS connections trust besides the system's.",
    )
    budgets: Budgets = Field(default_factory=Budgets)
    decisions: Decisions = Field(default_factory=Decisions)
    pricing: Pricing = Field(default_factory=Pricing)
    retry: Retry = Field(default_factory=Retry)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    answering: AnswerVariant | None = Field(
        default=None,
        description="An experiment's variant of the Retrieval tool's answerPolicy (agentfleet eval --compare); unset: "
        "the policy as shipped.",
    )
    retrieval: dict[str, Any] = Field(
        default_factory=dict, description="Settings handed to the Retriever (VectorIndex address, collection, ...)."
    )
    session_history: int = Field(
        default=5, ge=0, le=100, description="Earlier finished tasks of the same session shown to the model."
    )
    result_ttl_seconds: int = Field(
        default=7 * 86400, ge=60, description="How long a finished task's record, steps and events are kept."
    )
    max_observation_chars: int = Field(
        default=16_000, ge=256, description="Tool output beyond this is cut before the model sees it."
    )
    tracing: TracingSettings | None = Field(
        default=None, description="OpenTelemetry export (AgentFleet.spec.tracing); unset: off."
    )
    a2a: A2ASettings | None = Field(
        default=None, alias="a2a", description="Serve A2A on the task API (AgentFleet.spec.a2a); unset: off."
    )

    @property
    def visibility_timeout(self) -> float:
        return float(self.retry.visibility_timeout_seconds)

    @property
    def heartbeat_interval(self) -> float:
        return self.worker.heartbeat_seconds or self.visibility_timeout / 3

    @property
    def reclaim_interval(self) -> float:
        return self.worker.reclaim_interval_seconds or max(0.5, self.visibility_timeout / 4)


class TierConfig(Model):
    model_replica_set: str = Field(
        description=(
            "ModelReplicaSet name: its <name>-replicas Service is watched, and it names metrics and rate-limit buckets."
        )
    )
    model: str = Field(default="default", description="Model name sent in each request.")
    adapter: bool = Field(
        default=False,
        description=(
            "The model is a LoRA adapter of the set: calls are routed where the adapter sits (adapter affinity)."
        ),
    )
    adapters: list[str] = Field(
        default_factory=list, description="Every LoRA adapter of the set, for routing homes balanced over them."
    )
    endpoints: list[str] = Field(
        default_factory=list, description="Static replica base URLs (…/v1); when set, no Kubernetes watch."
    )
    service: str | None = Field(
        default=None,
        max_length=63,
        description="Headless Service whose EndpointSlices are watched; unset: <modelReplicaSet>-replicas "
        "(an evaluation gate's candidate gets <modelReplicaSet>-canary: the set's canary replica only).",
    )
    routing: Routing = Field(
        default_factory=Routing, description="ModelReplicaSet.spec.routing, copied by the operator."
    )


class ModelRoutingConfig(Model):
    primary: TierConfig
    routine: TierConfig | None = Field(
        default=None, description="AgentFleet.spec.routineModelRef's set, for routineSteps."
    )
    routine_steps: list[Literal["ToolArguments", "Summaries"]] = Field(default_factory=list)
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    namespace: str | None = Field(default=None, description="Namespace of the replica Services; default the pod's own.")
    stream: bool = Field(
        default=False,
        description="Stream model calls: hedge on time to first token, and send the answer's text to the task's event "
        "stream as it is written "
        "(AgentFleet.spec.streamModelCalls).",
    )


# -- the one builder ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelTarget:
    """A referenced ModelReplicaSet as the runtime needs it."""

    name: str
    served_name: str  # what requests name: the set's served model, or the fleet's spec.modelAdapter
    port: int = 8000
    routing: dict[str, Any] = field(default_factory=dict)  # its spec.routing, wire form
    max_model_len: int | None = None
    adapter: bool = False  # served_name is a LoRA adapter of the set
    adapters: tuple[str, ...] = ()  # every adapter of the set

    def base_url(self, namespace: str) -> str:
        # The ClusterIP Service over ready replicas; the routing client prefers EndpointSlices.
        return f"http://{self.name}.{namespace}.svc:{self.port}/v1"


def tool_ca_file(ca_dir: str, tool_name: str) -> str:
    """Where a tool's caSecretRef key is mounted (render) and read (the runtime's tool registry): a
    tool name is a safe file name (TOOL_NAME)."""
    return f"{ca_dir.rstrip('/')}/{tool_name}.pem"


@dataclass(frozen=True)
class PodLayout:
    """Where a runtime pod listens and finds its mounted files; None for a process outside a pod."""

    metrics_port: int
    api_port: int
    tokens_file: str
    tool_headers_dir: str
    shutdown_grace_seconds: float
    tool_ca_dir: str = "/etc/agentfleet/tool-ca"  # each caSecretRef's key as <tool name>.pem (tool_ca_file)
    tracing_headers_file: str = ""
    tls_dir: str = "/etc/agentfleet/tls"  # the task API pods' spec.api.tls Secret, its keys as files of their names


def model_routing(
    spec: AgentFleetSpec, namespace: str, primary: ModelTarget, routine: ModelTarget | None
) -> dict[str, Any]:
    """The modelRouting section (ModelRoutingConfig): replicas found through their EndpointSlices,
    or, for workers that may not reach the API server (spec.workers.allowAPIServer false), each
    set's ClusterIP Service as the one endpoint: kube-proxy then spreads the calls over the ready,
    non-draining replicas, without sticky routing, per-replica failover or hedging."""
    out: dict[str, Any] = {
        "primary": {"modelReplicaSet": primary.name, "model": primary.served_name, "routing": primary.routing},
        "rateLimit": spec.rate_limit.wire(),
        "namespace": namespace,
    }
    if primary.adapter:
        out["primary"].update(adapter=True, adapters=list(primary.adapters))
    if routine is not None:
        out["routine"] = {"modelReplicaSet": routine.name, "model": routine.served_name, "routing": routine.routing}
        out["routineSteps"] = list(spec.routine_steps)
    if not spec.workers.allow_api_server:
        for tier, target in (("primary", primary), ("routine", routine)):
            if target is not None:
                out[tier]["endpoints"] = [target.base_url(namespace)]
    if spec.stream_model_calls:
        out["stream"] = True
    return out


def _durable_submit(s: Any) -> dict[str, Any]:
    """With Sentinel, a submission is acknowledged once a replica has it (spec.redis.sentinel)."""
    sentinel = s.redis.sentinel
    if sentinel is None or not sentinel.durable_submit:
        return {}
    return {"redisAckReplicas": 1, "redisAckTimeoutMs": sentinel.wait_timeout_milliseconds}


def runtime_config(
    af: AgentFleet | dict[str, Any],
    *,
    primary: ModelTarget,
    redis_url: str,
    routine: ModelTarget | None = None,
    system_prompt: str | None = None,
    vector_index: dict[str, Any] | None = None,
    milvus_uri: str | None = None,
    pod: PodLayout | None = None,
    model_url: str | None = None,
) -> dict[str, Any]:
    """The runtime config document (camelCase, ready for a ConfigMap) for an AgentFleet.

    The caller resolves references first: ``primary``/``routine`` are the referenced
    ModelReplicaSets, ``redis_url`` the managed or external Redis, ``vector_index`` the referenced
    VectorIndex's spec (wire form) and ``milvus_uri`` its endpoint, ``system_prompt`` a prompt held
    in a ConfigMap. With ``pod`` the document is for the fleet's pods: it listens on all addresses,
    routes through the EndpointSlices (streamed calls when spec.streamModelCalls) and names the
    mounted files; without it, it is for a process that calls ``model_url`` (default: ``primary``'s
    Service URL) with the plain, non-streaming client.
    """
    af = af if isinstance(af, AgentFleet) else AgentFleet.model_validate(af)
    s = af.spec
    namespace = af.metadata.get("namespace") or "default"
    doc: dict[str, Any] = {
        "fleet": af.metadata["name"],
        "namespace": namespace,
        "redisUrl": redis_url,
        "model": {
            "baseUrl": model_url or primary.base_url(namespace),
            "name": primary.served_name,
            "maxOutputTokens": s.model_calls.max_output_tokens,
            "timeoutSeconds": s.model_calls.timeout_seconds,
        },
        "budgets": s.budgets.wire(),
        "pricing": s.pricing.wire(),
        "retry": s.retry.wire(),
        "tools": [t.wire() for t in s.tools],
        "decisions": s.decisions.wire(),
        "worker": {"concurrency": s.workers.concurrency},
        **_durable_submit(s),
        "api": {
            "maxRequestBytes": s.api.max_request_bytes,
            "maxStreams": s.api.max_streams,
            "tenantLimits": s.api.tenant_limits.wire(),
            "metricsAccess": s.api.metrics_access,
        },
    }
    prompt = (
        system_prompt
        if system_prompt is not None
        else (s.system_prompt.inline if s.system_prompt is not None else None)
    )
    if prompt is not None:
        doc["systemPrompt"] = prompt
    if vector_index is not None:
        doc["retrieval"] = {"vectorIndex": vector_index, **({"uri": milvus_uri} if milvus_uri else {})}
    if s.tracing is not None:
        doc["tracing"] = {"endpoint": s.tracing.endpoint, "samplingRatio": s.tracing.sampling_percent / 100}
        if pod is not None and s.tracing.headers_secret_ref is not None:
            doc["tracing"]["headersFile"] = pod.tracing_headers_file
    if s.a2a is not None:
        # In a pod the card names the fleet's Service (render: <fleet>-api on the API port), never
        # the Host header a caller sent: a card is cached by callers, so no request may shape it.
        scheme = "https" if s.api.tls is not None else "http"
        url = s.a2a.url or (f"{scheme}://{af.metadata['name']}-api.{namespace}.svc:{pod.api_port}" if pod else None)
        doc["a2a"] = {
            **({"description": s.a2a.description} if s.a2a.description else {}),
            **({"url": url} if url else {}),
            "skills": [k.wire() for k in s.a2a.skills],
        }
    if pod is not None:
        doc["listenHost"] = "0.0.0.0"
        doc["modelRouting"] = model_routing(s, namespace, primary, routine)
        doc["worker"].update({"metricsPort": pod.metrics_port, "shutdownGraceSeconds": pod.shutdown_grace_seconds})
        doc["api"].update({"port": pod.api_port, "tokensFile": pod.tokens_file})
        if s.api.tls is not None:
            doc["api"]["tls"] = {
                "certFile": f"{pod.tls_dir}/{TLS_CERT_KEY}",
                "keyFile": f"{pod.tls_dir}/{TLS_KEY_KEY}",
            }
        if any(t.headers_ref() is not None for t in s.tools):
            doc["toolHeadersDir"] = pod.tool_headers_dir
        if any(t.ca_ref() is not None for t in s.tools):
            doc["toolCaDir"] = pod.tool_ca_dir
    RuntimeConfig.model_validate(copy.deepcopy(doc))  # what we hand out must load
    return doc
