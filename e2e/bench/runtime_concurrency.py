"""1,000 concurrent tasks in one worker process with a 200 ms model.

One worker (this process, concurrency 1000) on a real redis-server runs tasks of 3 model calls
(2 tool steps + the answer; tools answer at once), against two models with 200 ms latency:
an in-process stub (what the runtime itself sustains) and the scripted OpenAI-compatible server
in another process over HTTP (what the worker sustains including its HTTP client).

Baseline from the same run: the ideal, where every task takes exactly 3 x 200 ms and 1000 run at
once: ideal throughput = 1000 / 0.6 s = 1667 tasks/s. Goals: RSS under 1 GiB, throughput near ideal.

    python e2e/bench/runtime_concurrency.py [--tasks 3000] [--concurrency 1000] [--latency 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import subprocess
import sys
import time
import uuid

from runtime_benchlib import ROOT, free_port, load_line, peak_rss_mib, redis_server, rss_mib

from agentfleet_runtime.config import RuntimeConfig
from agentfleet_runtime.keys import Keys
from agentfleet_runtime.prompt import tool_schema
from agentfleet_runtime.store import TaskStore, connect
from agentfleet_runtime.submission import Submission, new_task
from agentfleet_runtime.testing.scripted_model import ScriptedClient, ScriptedModel
from agentfleet_runtime.worker import Worker


class Echo:
    name, description, timeout, side_effects = "echo", "echoes", 5.0, False

    def schema(self):
        return tool_schema(self.name, self.description, None)

    async def run(self, arguments, ctx):
        return "ok"


async def run_once(redis_url: str, model_url: str | None, tasks: int, concurrency: int, latency: float) -> dict[str, float]:
    fleet = "bench" + uuid.uuid4().hex[:6]
    doc = {"fleet": fleet, "redisUrl": redis_url, "worker": {"concurrency": concurrency, "metricsPort": 0}, "model": {"timeoutSeconds": 60}}
    if model_url:
        doc["model"]["baseUrl"] = model_url
    config = RuntimeConfig.model_validate(doc)
    model = None if model_url else ScriptedClient(ScriptedModel(latency=latency))
    worker = Worker(config, model=model, extra_tools=[Echo()])
    store = TaskStore(connect(redis_url), Keys(fleet))
    await store.ensure_group()
    pipe_ids = []
    for i in range(tasks):
        sub = Submission(f"job {i} #steps=3 #latency={latency}", "", config.limits(), None, "", {})
        pipe_ids.append((await store.submit(new_task(uuid.uuid4().hex, sub, time.time())))[1])
    rss0 = rss_mib()
    redis_cpu0 = await redis_cpu_seconds(store)
    t0, cpu0 = time.perf_counter(), time.process_time()
    await worker.start()
    peak_in_flight, peak_rss = 0, rss0
    while True:
        peak_in_flight = max(peak_in_flight, len(worker.held))
        peak_rss = max(peak_rss, rss_mib())
        # A finished task's entry is deleted from the stream: an empty stream means all done
        # (O(1) to ask, so the benchmark does not load the worker it measures).
        if await store.r.xlen(store.keys.stream) == 0:
            break
        await asyncio.sleep(0.25)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    redis_cpu = await redis_cpu_seconds(store) - redis_cpu0
    states = await store.statuses(pipe_ids)
    assert all(s and s["status"] == "done" for s in states), "some tasks did not finish"
    await worker.kill()
    await store.r.aclose()
    ideal = tasks / (concurrency / (3 * latency)) if tasks >= concurrency else 3 * latency
    return {
        "wall": wall,
        "cpu": cpu,
        "redis_cpu": redis_cpu,
        "ideal": ideal,
        "peak_in_flight": peak_in_flight,
        "rss0": rss0,
        "peak_rss": peak_rss,
        "concurrency": concurrency,
        "latency": latency,
    }


async def redis_cpu_seconds(store: TaskStore) -> float:
    """CPU used by redis-server so far: it shares this machine's cores with the worker."""
    info = await store.r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def report(name: str, tasks: int, r: dict[str, float]) -> None:
    calls = tasks * 3
    print(
        f"{name:<34} wall {r['wall']:6.2f} s (ideal {r['ideal']:.2f} s) -> {tasks / r['wall']:7.1f} tasks/s, {calls / r['wall']:7.0f} model calls/s, "
        f"{r['ideal'] / r['wall'] * 100:5.1f}% of ideal; peak in flight {r['peak_in_flight']:.0f}; "
        f"RSS {r['rss0']:.0f} -> {r['peak_rss']:.0f} MiB"
    )
    per_step = r["cpu"] / calls
    print(
        f"{'':<34} worker CPU {per_step * 1000:.2f} ms per step: one free core would sustain {1 / per_step:.0f} model calls/s "
        f"({min(1.0, (1 / per_step) / (r['concurrency'] / r['latency'])) * 100:.0f}% of ideal); this run got {r['cpu'] / r['wall'] * 100:.0f}% of a core"
    )
    print(f"{'':<34} redis-server CPU {r['redis_cpu'] / calls * 1000:.2f} ms per step (same machine)")


async def main(args: argparse.Namespace) -> None:
    logging.disable(logging.INFO)
    with redis_server() as url:
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "agentfleet_runtime", "scripted-model", "--port", str(port)],
            cwd=ROOT,
            env={"PYTHONPATH": f"{ROOT / 'runtime'}:{ROOT / 'operator'}"},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            server.stdout.readline()
            stub = await run_once(url, None, args.tasks, args.concurrency, args.latency)
            http = await run_once(url, f"http://127.0.0.1:{port}/v1", args.tasks, args.concurrency, args.latency)
        finally:
            server.terminate()
            server.wait(10)
    print(f"{args.tasks} tasks x 3 model calls, {args.concurrency} at once in one worker process, model latency {args.latency * 1000:.0f} ms")
    print(f"baseline (ideal): {args.concurrency / (3 * args.latency):.0f} tasks/s, {args.concurrency / args.latency:.0f} model calls/s")
    report("in-process model stub", args.tasks, stub)
    report("scripted model over HTTP", args.tasks, http)
    print(f"peak RSS of this process over the whole run: {peak_rss_mib():.0f} MiB (goal: under 1024 MiB)")
    print(load_line())


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", type=int, default=3000)
    p.add_argument("--concurrency", type=int, default=1000)
    p.add_argument("--latency", type=float, default=0.2)
    asyncio.run(main(p.parse_args()))
