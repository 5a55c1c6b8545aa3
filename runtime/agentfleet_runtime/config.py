"""Runtime configuration: one YAML document (the ConfigMap the operator renders) plus env overrides.

The budgets, pricing, retry and tools sections take exactly the AgentFleet spec's shapes
(``agentfleet.api.agentfleet``), so the operator copies those fields verbatim. Secrets (Redis
password, model API key, bearer tokens, tool headers) come from env vars or mounted files, never
from the ConfigMap.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field

from agentfleet.api.agentfleet import AgentFleetSpec, Budgets, Pricing, Retry, Tool
from agentfleet.api.common import Model
from agentfleet_runtime.budget import Prices
from agentfleet_runtime.types import Limits

DEFAULT_SYSTEM_PROMPT = (
    "You are a careful assistant that completes the user's goal. Use the tools when they help; when you know the answer, reply with the answer alone."
)

# Env var -> dotted config path. Values are parsed as YAML scalars ("8" -> 8, "true" -> True).
ENV_OVERRIDES: dict[str, str] = {
    "AGENTFLEET_FLEET": "fleet",
    "AGENTFLEET_REDIS_URL": "redisUrl",
    "AGENTFLEET_REDIS_PASSWORD": "redisPassword",
    "AGENTFLEET_MODEL_URL": "model.baseUrl",
    "AGENTFLEET_MODEL_NAME": "model.name",
    "AGENTFLEET_MODEL_API_KEY": "model.apiKey",
    "AGENTFLEET_LISTEN_HOST": "listenHost",
    "AGENTFLEET_WORKER_CONCURRENCY": "worker.concurrency",
    "AGENTFLEET_METRICS_PORT": "worker.metricsPort",
    "AGENTFLEET_API_PORT": "api.port",
    "AGENTFLEET_API_TOKENS_FILE": "api.tokensFile",
    "AGENTFLEET_TOOL_HEADERS_DIR": "toolHeadersDir",
}


class ModelEndpoint(Model):
    base_url: str = Field(default="http://127.0.0.1:8000/v1", description="OpenAI-compatible base URL (the part before /chat/completions).")
    name: str = Field(default="default", description="Model name sent in each request.")
    api_key: str | None = Field(default=None, description="Bearer token for the model server; prefer AGENTFLEET_MODEL_API_KEY.")
    timeout_seconds: float = Field(default=120.0, gt=0, description="Per-call timeout.")
    max_retries: int = Field(default=2, ge=0, le=10, description="Retries of a call on 5xx, 429, timeouts and connection errors.")
    tool_calling: Literal["auto", "native", "text"] = Field(
        default="auto",
        description="native: tools field only; text: tools described in the prompt, calls parsed from text; auto: both.",
    )
    max_output_tokens: int = Field(default=1024, ge=1, description="max_tokens of each call.")
    temperature: float = Field(default=0.0, ge=0, le=2)


class WorkerSettings(Model):
    concurrency: int = Field(default=64, ge=1, le=10_000, description="Tasks one worker process runs at once.")
    heartbeat_seconds: float | None = Field(default=None, gt=0, description="Lease renewal period; default a third of the visibility timeout.")
    shutdown_grace_seconds: float = Field(default=20.0, ge=0, description="On SIGTERM, how long running steps may finish before their tasks are released.")
    metrics_port: int = Field(default=9090, ge=0, le=65535, description="Port of /metrics, /healthz and /readyz; 0 disables.")
    reclaim_interval_seconds: float | None = Field(
        default=None, gt=0, description="How often stalled tasks are looked for; default a quarter of the visibility timeout."
    )
    retry_backoff_seconds: float = Field(default=2.0, ge=0, description="First delay before a failed task is retried; doubles per failure, capped at 60 s.")


class ApiSettings(Model):
    port: int = Field(default=8080, ge=0, le=65535)
    tokens_file: str | None = Field(default=None, description="File of accepted bearer tokens, one per line (the mounted Secret key).")
    allow_anonymous: bool = Field(default=False, description="Serve without auth when no tokens file is set (development only).")
    max_request_bytes: int = Field(default=1_048_576, ge=1024, le=67_108_864)
    max_goal_chars: int = Field(default=100_000, ge=1)


class BreakerSettings(Model):
    failure_threshold: int = Field(default=5, ge=1, description="Consecutive failures that open a tool's breaker.")
    cooldown_seconds: float = Field(default=30.0, gt=0, description="How long an open breaker refuses calls before probing.")


class RuntimeConfig(Model):
    fleet: str = Field(default="default", max_length=253, description="Name of the AgentFleet; prefixes every Redis key (af:<fleet>:...).")
    redis_url: str = Field(default="redis://127.0.0.1:6379/0")
    redis_password: str | None = None
    redis_max_connections: int = Field(default=128, ge=4, le=10_000, description="Connections one process keeps to Redis; tasks share them.")
    listen_host: str = Field(default="127.0.0.1", description="Address the API and metrics servers bind; 0.0.0.0 in a pod.")
    model: ModelEndpoint = Field(default_factory=ModelEndpoint)
    model_routing: dict[str, Any] | None = Field(
        default=None,
        description="Routing client settings (agentfleet_runtime.routing.factory.ModelRoutingConfig); when set, model calls go through it instead of model.baseUrl.",
    )
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    tools: list[Tool] = Field(default_factory=list)
    tool_headers_dir: str | None = Field(
        default=None, description="Directory with one file per HTTP tool (named like the tool) holding a JSON object of headers."
    )
    budgets: Budgets = Field(default_factory=Budgets)
    pricing: Pricing = Field(default_factory=Pricing)
    retry: Retry = Field(default_factory=Retry)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)
    retrieval: dict[str, Any] = Field(default_factory=dict, description="Settings handed to the Retriever (VectorIndex address, collection, ...).")
    session_history: int = Field(default=5, ge=0, le=100, description="Earlier finished tasks of the same session shown to the model.")
    result_ttl_seconds: int = Field(default=7 * 86400, ge=60, description="How long a finished task's record, steps and events are kept.")
    max_observation_chars: int = Field(default=16_000, ge=256, description="Tool output beyond this is cut before the model sees it.")

    # -- derived values the runtime works with --------------------------------------------------
    def limits(self) -> Limits:
        b = self.budgets
        return Limits(
            max_steps=b.max_steps,
            max_tokens=b.max_tokens,
            timeout_seconds=float(b.timeout_seconds),
            max_cost=None if b.max_cost is None else Decimal(b.max_cost),
            max_fan_out=b.max_fan_out,
            max_depth=b.max_depth,
        )

    def prices(self) -> Prices:
        p = self.pricing
        return Prices(Decimal(p.input_per_million_tokens), Decimal(p.output_per_million_tokens), p.currency)

    @property
    def visibility_timeout(self) -> float:
        return float(self.retry.visibility_timeout_seconds)

    @property
    def heartbeat_interval(self) -> float:
        return self.worker.heartbeat_seconds or self.visibility_timeout / 3

    @property
    def reclaim_interval(self) -> float:
        return self.worker.reclaim_interval_seconds or max(0.5, self.visibility_timeout / 4)


def _set_path(doc: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        doc = doc.setdefault(p, {})
    doc[leaf] = value


def load_config(path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> RuntimeConfig:
    """Read the YAML file (``path`` or $AGENTFLEET_CONFIG; none is fine) and apply env overrides."""
    env = dict(os.environ if env is None else env)
    path = path or env.get("AGENTFLEET_CONFIG")
    doc: dict[str, Any] = {}
    if path:
        text = Path(path).read_text()
        loaded = yaml.safe_load(text) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: the runtime config must be a YAML mapping")
        doc = loaded
    for var, dotted in ENV_OVERRIDES.items():
        if env.get(var):
            raw = env[var]
            # Secrets and URLs stay strings; numbers and booleans are parsed.
            value = raw if dotted in ("redisPassword", "model.apiKey", "redisUrl", "model.baseUrl", "fleet", "model.name") else yaml.safe_load(raw)
            _set_path(doc, dotted, value)
    return RuntimeConfig.model_validate(doc)


def from_agentfleet_spec(
    spec: dict[str, Any] | AgentFleetSpec,
    *,
    fleet: str,
    model_url: str,
    model_name: str,
    redis_url: str,
    vector_index: dict[str, Any] | None = None,
    milvus_uri: str | None = None,
) -> dict[str, Any]:
    """The runtime config document (camelCase, ready for a ConfigMap) for an AgentFleet spec.

    The operator resolves references first: ``model_url`` is the ModelReplicaSet's Service and
    ``redis_url`` the managed or external Redis, ``vector_index`` the referenced VectorIndex's
    spec (wire form) and ``milvus_uri`` its endpoint. A systemPrompt held in a ConfigMap must be
    resolved by the caller into ``systemPrompt`` of the result.
    """
    s = spec if isinstance(spec, AgentFleetSpec) else AgentFleetSpec.model_validate(spec)
    doc: dict[str, Any] = {
        "fleet": fleet,
        "redisUrl": redis_url,
        "model": {"baseUrl": model_url, "name": model_name},
        "budgets": s.budgets.wire(),
        "pricing": s.pricing.wire(),
        "retry": s.retry.wire(),
        "tools": [t.wire() for t in s.tools],
        "worker": {"concurrency": s.workers.concurrency},
        "api": {"maxRequestBytes": s.api.max_request_bytes},
    }
    if s.system_prompt is not None and s.system_prompt.inline is not None:
        doc["systemPrompt"] = s.system_prompt.inline
    if vector_index is not None:
        doc["retrieval"] = {"vectorIndex": vector_index, **({"uri": milvus_uri} if milvus_uri else {})}
    RuntimeConfig.model_validate(doc)  # what we hand out must load
    return doc
