"""Loading the runtime's configuration: the ConfigMap's YAML document
(``agentfleet_contract.runtime_config``) plus env overrides, and the values the runtime derives from it.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from agentfleet_contract.runtime_config import RuntimeConfig

from agentfleet_runtime.core.budget import Prices
from agentfleet_runtime.core.types import Limits

# Env var -> dotted config path. Values are parsed as YAML scalars ("8" -> 8, "true" -> True).
ENV_OVERRIDES: dict[str, str] = {
    "AGENTFLEET_FLEET": "fleet",
    "AGENTFLEET_REDIS_URL": "redisUrl",
    "AGENTFLEET_REDIS_PASSWORD": "redisPassword",
    "AGENTFLEET_MODEL_URL": "model.baseUrl",
    "AGENTFLEET_MODEL_NAME": "model.name",
    "AGENTFLEET_MODEL_API_KEY": "model.apiKey",
    "AGENTFLEET_ROUTINE_MODEL_API_KEY": "model.routineApiKey",
    "AGENTFLEET_LISTEN_HOST": "listenHost",
    "AGENTFLEET_WORKER_CONCURRENCY": "worker.concurrency",
    "AGENTFLEET_METRICS_PORT": "worker.metricsPort",
    "AGENTFLEET_API_PORT": "api.port",
    "AGENTFLEET_API_TOKENS_FILE": "api.tokensFile",
    "AGENTFLEET_TOOL_HEADERS_DIR": "toolHeadersDir",
    "AGENTFLEET_TOOL_CA_DIR": "toolCaDir",
}


# Secrets, URLs and names stay strings (a key of digits is not a number).
STRINGS = ("redisPassword", "model.apiKey", "model.routineApiKey", "redisUrl", "model.baseUrl", "fleet", "model.name")


def limits_of(config: RuntimeConfig) -> Limits:
    """The fleet's budgets as the loop enforces them."""
    b = config.budgets
    return Limits(
        max_steps=b.max_steps,
        max_tokens=b.max_tokens,
        timeout_seconds=float(b.timeout_seconds),
        max_cost=None if b.max_cost is None else Decimal(b.max_cost),
        max_fan_out=b.max_fan_out,
        max_depth=b.max_depth,
    )


def prices_of(config: RuntimeConfig) -> Prices:
    p = config.pricing
    return Prices(Decimal(p.input_per_million_tokens), Decimal(p.output_per_million_tokens), p.currency)


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
            value = raw if dotted in STRINGS else yaml.safe_load(raw)
            _set_path(doc, dotted, value)
    return RuntimeConfig.model_validate(doc)
