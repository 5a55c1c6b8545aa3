"""Real vLLM started from the operator's rendered CPU pod: what the operator and the runtime read
from it (served context, metrics, the adapter API) is there and means what they think."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from agentfleet.autoscale.goodput import E2E_METRIC, TPOT_METRIC, TTFT_METRIC
from agentfleet.autoscale.witness import QUEUE_METRIC
from agentfleet.controllers.modelreplicaset.adapters import AdapterClient, sync_replica
from agentfleet.promql import KV_USAGE, LEGACY_NAMES, REQUEST_SUCCESS, RUNNING, WAITING, schema_problem
from agentfleet_runtime.model.client import OpenAIChatClient
from e2e.harness import vllm
from tests.integration.engines.conftest import ADAPTER


def _get(url: str, key: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - 127.0.0.1
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _chat(engine: vllm.Engine, model: str, content: str, max_tokens: int = 8) -> dict:
    body = {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens}
    req = urllib.request.Request(
        engine.api + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {vllm.API_KEY}"},
    )
    with urllib.request.urlopen(req, timeout=120) as resp:  # noqa: S310 - 127.0.0.1
        return json.loads(resp.read())


def series_names(exposition: str) -> set[str]:
    """Series names of a Prometheus text exposition, as Prometheus stores them (_bucket, _total...)."""
    names = set()
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            names.add(line.split("{", 1)[0].split(" ", 1)[0])
    return names


def test_the_rendered_cpu_pod_is_what_runs_and_it_serves(engine: vllm.Engine) -> None:
    # Defect 1 of issue 56: the default render (--gpu-memory-utilization 0.9, a share of the host's
    # RAM on CPU) failed at start. The fixture started exactly the CPU profile's render.
    assert "--gpu-memory-utilization" not in engine.argv
    assert engine.env["VLLM_CPU_KVCACHE_SPACE"] == "2"
    assert engine.argv[:2] == ["vllm", "serve"] and "--enable-lora" in engine.argv
    assert engine.ready_seconds is not None
    # The API key the operator renders guards /v1; /health and /metrics stay open (render/modelreplicaset.py).
    assert _get(engine.api + "/models")[0] == 401
    assert _get(engine.base + "/metrics")[0] == 200
    reply = _chat(engine, vllm.SERVED, "Say hi.")
    assert reply["choices"][0]["message"]["content"]


def test_the_runtime_reads_the_served_context_from_v1_models(engine: vllm.Engine) -> None:
    async def read() -> int | None:
        client = OpenAIChatClient(engine.api, vllm.SERVED, api_key=vllm.API_KEY)
        try:
            return await client._context.context(client.url)
        finally:
            await client.close()

    assert asyncio.run(read()) == 4096  # spec.engine.maxModelLen, as rendered


def test_every_vllm_metric_the_project_reads_is_exported(engine: vllm.Engine) -> None:
    _chat(engine, vllm.SERVED, "Count to three.")  # histograms and counters get samples
    status, body = _get(engine.base + "/metrics")
    assert status == 200
    names = series_names(body.decode())
    assert schema_problem(names) is None
    read = [WAITING, RUNNING, KV_USAGE, REQUEST_SUCCESS, *LEGACY_NAMES.values()]
    read += [f"{m}_bucket" for m in (TTFT_METRIC, TPOT_METRIC, E2E_METRIC, QUEUE_METRIC)]
    missing = [n for n in read if n not in names]
    assert not missing, f"vLLM 0.32 does not export {missing}"


def test_a_lora_adapter_loads_and_unloads_through_the_operators_client(engine: vllm.Engine, lora_dir: Path) -> None:
    client = AdapterClient(f"127.0.0.1:{engine.port}", vllm.API_KEY)
    held, problem = sync_replica(client, {ADAPTER: str(lora_dir)})
    assert problem is None and held == [ADAPTER]
    assert client.loaded() == {ADAPTER: str(lora_dir)}
    reply = _chat(engine, ADAPTER, "SELECT")
    assert reply["model"] == ADAPTER and reply["choices"][0]["message"]["content"] is not None
    held, problem = sync_replica(client, {})
    assert problem is None and held == []
    assert client.loaded() == {}
    with pytest.raises(urllib.error.HTTPError):
        _chat(engine, ADAPTER, "SELECT")
