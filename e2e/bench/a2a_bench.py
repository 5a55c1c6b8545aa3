#!/usr/bin/env python3
"""What A2A adds to a submission, and what a ListTasks page costs (prints figures; not a test:
tests/integration/runtime/test_runtime_a2a.py pins the behaviour; docs/a2a.md quotes the figures).

A real Redis and the real TaskAPI (spec.a2a on, hashed tokens) on loopback, no worker, in this
process. One tenant submits ``--n`` tasks per round, the three ways interleaved one after another
so load from elsewhere hits each alike: POST /v1/tasks, SendMessage as raw JSON-RPC (both with
httpx), and SendMessage through a2a-sdk's client (returnImmediately: the submission, not the run).
Then ListTasks pages of 50 over the tasks so made: unfiltered, by state, by contextId.

    .venv/bin/python -m e2e.bench.a2a_bench [--rounds 2] [--n 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.types.a2a_pb2 import Message, Part, Role, SendMessageConfiguration, SendMessageRequest
from agentfleet_contract.runtime_config import RuntimeConfig
from aiohttp import web

from agentfleet_runtime.core.tenants import token_line
from agentfleet_runtime.server.api import TaskAPI
from e2e.harness import redis
from e2e.harness.ports import free_port

TOKEN = "bench-token"


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def line(name: str, xs: list[float]) -> str:
    return f"{name}: p50 {statistics.median(xs) * 1000:.1f} ms, p95 {pct(xs, 0.95) * 1000:.1f} ms (n={len(xs)})"


async def main(rounds: int, n: int) -> None:
    server = redis.run_wide()
    tokens = Path(tempfile.mkdtemp()) / "tokens"
    tokens.write_text(token_line("bench", TOKEN) + "\n")
    config = RuntimeConfig.model_validate(
        {
            "fleet": f"a2a-bench-{uuid.uuid4().hex[:6]}",
            "redisUrl": server.url,
            "a2a": {},
            "api": {"tokensFile": str(tokens)},
        }
    )
    api = TaskAPI(config)
    runner = web.AppRunner(api.app(), shutdown_timeout=1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as hx:
            card = await A2ACardResolver(hx, base).get_agent_card()
            client = ClientFactory(ClientConfig(httpx_client=hx, streaming=False)).create(card)
            took: dict[str, list[float]] = {
                "POST /v1/tasks": [],
                "SendMessage, raw JSON-RPC": [],
                "SendMessage, a2a-sdk": [],
            }
            for _ in range(rounds):
                for i in range(n):
                    t = time.perf_counter()
                    (await hx.post(base + "/v1/tasks", json={"goal": f"g{i}"})).json()
                    took["POST /v1/tasks"].append(time.perf_counter() - t)
                    msg = {"messageId": uuid.uuid4().hex, "role": "ROLE_USER", "parts": [{"text": f"g{i}"}]}
                    rpc = {"jsonrpc": "2.0", "id": i, "method": "SendMessage"}
                    rpc["params"] = {"message": msg, "configuration": {"returnImmediately": True}}
                    t = time.perf_counter()
                    (await hx.post(base + "/a2a", json=rpc)).json()
                    took["SendMessage, raw JSON-RPC"].append(time.perf_counter() - t)
                    req = SendMessageRequest(
                        message=Message(message_id=uuid.uuid4().hex, role=Role.ROLE_USER, parts=[Part(text=f"g{i}")]),
                        configuration=SendMessageConfiguration(return_immediately=True),
                    )
                    t = time.perf_counter()
                    [r async for r in client.send_message(req)]
                    took["SendMessage, a2a-sdk"].append(time.perf_counter() - t)
            for name, xs in took.items():
                print(line(name, xs))
            queries: list[dict[str, Any]] = [{}, {"status": "TASK_STATE_SUBMITTED"}, {"contextId": "none"}]
            for q in queries:
                xs, total = [], 0
                for _ in range(20):
                    body = {"jsonrpc": "2.0", "id": 1, "method": "ListTasks", "params": {"pageSize": 50, **q}}
                    t = time.perf_counter()
                    total = (await hx.post(base + "/a2a", json=body)).json()["result"].get("totalSize", 0)
                    xs.append(time.perf_counter() - t)
                print(line(f"ListTasks pageSize 50 {q or 'unfiltered'} ({total} match)", xs))
    finally:
        api.closing = True
        await runner.cleanup()
    print("load average", " ".join(f"{x:.1f}" for x in os.getloadavg()))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--n", type=int, default=300)
    args = ap.parse_args()
    asyncio.run(main(args.rounds, args.n))
