"""The final answer reaches the task API's event stream as the model writes it (modelRouting.stream):
the real Worker and TaskAPI, simulator replicas over HTTP, real Redis."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from runtime_helpers import Echo, arun, make_config, running_worker

from agentfleet_runtime.core.config import RuntimeConfig
from agentfleet_runtime.server.api import TaskAPI
from agentfleet_sim import FleetThread, start_fleet
from e2e.harness.ports import free_port

pytestmark = pytest.mark.integration

# ~80-token answers at 10 ms a token: the answer takes most of a second to write.
ENGINE = {
    "prefill_tokens_per_s": 200_000.0,
    "decode_base_s": 0.01,
    "output_tokens_median": 80.0,
    "output_tokens_sigma": 0.1,
    "max_model_len": 8192,
    "kv_cache_tokens": 100_000,
}


@asynccontextmanager
async def api_client(config: RuntimeConfig) -> AsyncIterator[aiohttp.ClientSession]:
    api = TaskAPI(config)
    runner = web.AppRunner(api.app(), shutdown_timeout=1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as http:
        try:
            yield http
        finally:
            api.closing = True
            await runner.cleanup()


async def events_of(http: aiohttp.ClientSession, tid: str, t0: float) -> list[tuple[float, dict[str, Any]]]:
    out = []
    async with http.get(f"/v1/tasks/{tid}/events") as resp:
        async for line in resp.content:
            if line.startswith(b"data: "):
                out.append((time.monotonic() - t0, json.loads(line[6:])))
    return out


def run_task(redis_url: str, fleet_name: str, sim: FleetThread, stream: bool) -> list[tuple[float, dict[str, Any]]]:
    routing = {
        "primary": {"modelReplicaSet": "sim", "model": "scripted", "endpoints": [h.base_url for h in sim.replicas]},
        "stream": stream,
    }
    config = make_config(
        redis_url, fleet_name, sim.replicas[0].base_url, modelRouting=routing, api={"allowAnonymous": True}
    )

    async def body() -> list[tuple[float, dict[str, Any]]]:
        async with running_worker(config, extra_tools=[Echo()]), api_client(config) as http:
            t0 = time.monotonic()
            r = await http.post("/v1/tasks", json={"goal": "summarise the facts"})
            tid = (await r.json())["id"]
            return await events_of(http, tid, t0)

    return arun(body())


def test_answer_text_streams_through_the_task_events_before_finished(redis_server, fleet):
    sim = start_fleet(1, model="scripted", engine=ENGINE, quirks={"tool_call_rate": 1.0, "tool_call_steps": 1})
    try:
        streamed = run_task(redis_server.url, fleet + "-s", sim, stream=True)
        plain = run_task(redis_server.url, fleet + "-p", sim, stream=False)
    finally:
        sim.stop()
    finished_at, finished = next((t, e) for t, e in streamed if e["type"] == "finished")
    assert finished["reason"] == "final_answer"
    final_step = max(e["step"] for _, e in streamed if e["type"] == "delta")
    deltas = [(t, e) for t, e in streamed if e["type"] == "delta" and e["step"] == final_step]
    assert "".join(e["text"] for _, e in deltas).strip() == finished["answer"]
    assert len(deltas) >= 2  # written as it came, coalesced, not in one piece at the end
    # The answer's first byte reached the client well before the answer was complete.
    assert finished_at - deltas[0][0] > 0.3, (deltas[0][0], finished_at)
    assert not [e for _, e in plain if e["type"] == "delta"]
    assert next(e for _, e in plain if e["type"] == "finished")["answer"] == finished["answer"]
