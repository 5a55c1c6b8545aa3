"""Fan-out of 4 one-second branches: the parent's spawn step, from its model reply to fan-in.

A real worker (this process, on a real redis-server, scripted model over HTTP in this process)
runs a parent whose first step spawns 4 sub-agents; each sub-agent's single model call takes 1 s.
Measured: the spawn call's wall time (children queued, picked up, run, finished, parent woken)
and the parent's whole duration. Goal (issue 5): the fan-out under 1.1 s.

Baseline from the same run: the 4 one-second model calls made directly with asyncio.gather
through the same HTTP client (no queue, no Redis): the floor any fan-out can reach.

    python -m e2e.bench.runtime_fanout [--runs 5] [--branches 4] [--latency 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
import uuid

from agentfleet_contract.fleet_keys import Keys
from agentfleet_contract.runtime_config import RuntimeConfig

from agentfleet_runtime.core.config import limits_of
from agentfleet_runtime.model.client import ModelRequest, OpenAIChatClient
from agentfleet_runtime.server.submission import Submission, new_task
from agentfleet_runtime.store.connection import connect
from agentfleet_runtime.store.tasks import TaskStore
from agentfleet_runtime.testing.scripted_model import ScriptedModelServer
from agentfleet_runtime.worker import Worker
from e2e.bench.runtime_benchlib import load_line
from e2e.harness.redis import redis_server


async def main(args: argparse.Namespace) -> None:
    logging.disable(logging.INFO)
    server = ScriptedModelServer()
    await server.start()
    with redis_server() as url:
        fleet = "bench" + uuid.uuid4().hex[:6]
        config = RuntimeConfig.model_validate(
            {
                "fleet": fleet,
                "redisUrl": url,
                "model": {"baseUrl": server.url},
                "worker": {"concurrency": 16, "metricsPort": 0},
                "tools": [{"name": "spawn", "type": "Spawn", "timeoutSeconds": 30}],
            }
        )
        worker = Worker(config)
        await worker.start()
        store = TaskStore(connect(url), Keys(fleet))
        direct_client = OpenAIChatClient(server.url, "scripted")
        spawn_s, parent_s, direct_s = [], [], []
        for run in range(args.runs):
            goal = f"fan {run} #spawn={args.branches} #child_latency={args.latency}"
            sub = Submission(goal, "", limits_of(config), None, "", {})
            t0 = time.perf_counter()
            tid = (await store.submit(new_task(uuid.uuid4().hex, sub, time.time())))[1]
            while (await store.statuses([tid]))[0]["status"] != "done":
                await asyncio.sleep(0.005)
            parent_s.append(time.perf_counter() - t0)
            steps = await store.steps(tid)
            spawn_s.append(steps[0].observations[0].seconds)
            assert (
                steps[0].observations[0].output.startswith(f"{args.branches} of {args.branches} sub-agents finished")
            ), steps[0].observations[0].output

            msgs = [
                [
                    {"role": "system", "content": "s"},
                    {"role": "user", "content": f"direct {run} {i} #latency={args.latency}"},
                ]
                for i in range(args.branches)
            ]
            t0 = time.perf_counter()
            await asyncio.gather(*(direct_client.complete(ModelRequest(messages=m)) for m in msgs))
            direct_s.append(time.perf_counter() - t0)
        await direct_client.close()
        await worker.kill()
        await store.r.aclose()
    await server.stop()
    med = statistics.median
    print(f"fan-out of {args.branches} branches x {args.latency:.1f} s model call, {args.runs} runs (median, max)")
    print(
        f"baseline: direct asyncio.gather of the {args.branches} calls   {med(direct_s):.3f} s, {max(direct_s):.3f} s"
    )
    print(
        f"spawn step: spawn -> children run -> fan-in      {med(spawn_s):.3f} s, {max(spawn_s):.3f} s  "
        f"({med(spawn_s) / med(direct_s):.3f}x baseline)"
    )
    print(f"whole parent task (2 model calls + fan-out)       {med(parent_s):.3f} s, {max(parent_s):.3f} s")
    print(
        f"goal: fan-out under 1.1 s (median): {'MET' if med(spawn_s) < 1.1 else 'NOT MET'}; worst run "
        f"{max(spawn_s):.3f} s"
    )
    print(load_line())


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--branches", type=int, default=4)
    p.add_argument("--latency", type=float, default=1.0)
    asyncio.run(main(p.parse_args()))
