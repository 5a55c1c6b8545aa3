"""Runtime config: YAML with the AgentFleet spec's shapes, env overrides, spec conversion."""

from __future__ import annotations

from decimal import Decimal

import pytest
import yaml
from agentfleet_contract.runtime_config import ModelTarget, RuntimeConfig, runtime_config
from pydantic import ValidationError

from agentfleet_runtime.core.config import limits_of, load_config, prices_of

YAML = """
fleet: support
redisUrl: redis://redis:6379/0
model: {baseUrl: "http://model:8000/v1", name: smol, toolCalling: text}
systemPrompt: Be brief.
budgets: {maxSteps: 12, maxCost: "0.25", maxFanOut: 3}
pricing: {inputPerMillionTokens: "0.50", outputPerMillionTokens: "1.50"}
retry: {maxAttempts: 4, visibilityTimeoutSeconds: 30}
tools:
  - {name: search, type: Retrieval, retrieval: {topK: 3, cacheTtlSeconds: 60}}
  - {name: ticket, type: HTTP, http: {url: "http://tickets/api", sideEffects: true}, timeoutSeconds: 5}
  - {name: spawn, type: Spawn}
worker: {concurrency: 100}
"""


def test_yaml_and_env(tmp_path):
    path = tmp_path / "runtime.yaml"
    path.write_text(YAML)
    cfg = load_config(
        path,
        env={
            "AGENTFLEET_REDIS_PASSWORD": "123",
            "AGENTFLEET_WORKER_CONCURRENCY": "7",
            "AGENTFLEET_MODEL_API_KEY": "007",
        },
    )
    assert cfg.fleet == "support" and cfg.redis_password == "123" and cfg.model.api_key == "007"
    assert cfg.worker.concurrency == 7
    lim = limits_of(cfg)
    assert (lim.max_steps, lim.max_cost, lim.max_fan_out, lim.max_tokens) == (12, Decimal("0.25"), 3, 200_000)
    assert prices_of(cfg).output_per_million == Decimal("1.50")
    assert [t.type for t in cfg.tools] == ["Retrieval", "HTTP", "Spawn"]
    assert cfg.tools[1].http.side_effects is True
    assert cfg.heartbeat_interval == 10 and cfg.reclaim_interval == 7.5
    assert cfg.model.tool_calling == "text"


def test_env_only_and_config_path_from_env(tmp_path):
    cfg = load_config(None, env={"AGENTFLEET_REDIS_URL": "redis://x:1/0", "AGENTFLEET_FLEET": "f"})
    assert cfg.redis_url == "redis://x:1/0" and cfg.fleet == "f"
    path = tmp_path / "c.yaml"
    path.write_text("fleet: fromfile\n")
    assert load_config(None, env={"AGENTFLEET_CONFIG": str(path)}).fleet == "fromfile"


def test_unknown_fields_are_refused():
    with pytest.raises(ValidationError):
        RuntimeConfig.model_validate({"fleet": "x", "budgets": {"maxSteps": 0}})
    with pytest.raises(ValidationError):
        RuntimeConfig.model_validate({"fleet": "x", "bogus": 1})


def test_runtime_config_for_a_process_round_trips():
    spec = {
        "modelRef": {"name": "smol"},
        "redis": {"url": "redis://r:6379/0"},
        "budgets": {"maxSteps": 9},
        "tools": [{"name": "t", "type": "HTTP", "http": {"url": "http://t/x"}}],
        "systemPrompt": {"inline": "Hi"},
        "workers": {"concurrency": 10},
    }
    vi = {"milvus": {"uri": "http://m:19530"}, "collection": "docs"}
    af = {"metadata": {"name": "f", "namespace": "ns"}, "spec": spec}
    doc = runtime_config(
        af,
        primary=ModelTarget("smol", "smol"),
        redis_url="redis://r:6379/0",
        vector_index=vi,
        milvus_uri="http://m2:19530",
    )
    cfg = RuntimeConfig.model_validate(yaml.safe_load(yaml.safe_dump(doc)))
    assert cfg.budgets.max_steps == 9 and cfg.system_prompt == "Hi" and cfg.worker.concurrency == 10
    assert cfg.tools[0].http.url == "http://t/x"
    assert cfg.retrieval == {"vectorIndex": vi, "uri": "http://m2:19530"}
