"""1,000 concurrent tasks in one worker process with a 200 ms model.

One worker (this process, concurrency 1000) on a real redis-server runs tasks of N model calls
(N-1 tool steps + the answer; tools answer at once), against two models with 200 ms latency:
an in-process stub (what the runtime itself sustains) and the scripted OpenAI-compatible server
in another process over HTTP (what the worker sustains including its HTTP client). Two task
lengths: 3 calls (per-task start and finish weigh most) and 15 calls (the product's agent tasks
take 10-30: per-task costs amortised as in production).

Baseline from the same run: the ideal, where every call takes exactly 200 ms and 1000 tasks run
at once: 1000 / 0.2 s = 5000 model calls/s (1667 tasks/s of 3 calls, 333 of 15). Goals: RSS
under 1 GiB, throughput near ideal.

By default every call takes exactly the latency. That is the hard case for one event loop: the
1,000 tasks stay in lockstep, each round's 1,000 steps arrive together and queue behind each
other. ``--jitter 0.25`` spreads each call over 150-250 ms instead (uniform; real model calls
vary with batch and output length). Each call's latency is then a known hash of the call, and the
ideal is computed exactly: a worker that costs nothing, starting each task as a slot frees.

CPU is reported per step (model call) for every process on the machine: the worker (this
process; with the stub, the stub's own planning and reply building is shown apart, since a real
model runs elsewhere), redis-server, and the scripted model server. On a machine with few cores
the three share them, so calls/s here is bounded by their sum, not by the worker alone.

    python -m e2e.bench.runtime_concurrency [--tasks 3000] [--long-tasks 2000] [--steps 3,15]
                                            [--concurrency 1000] [--latency 0.2] [--jitter 0] [--only stub|http]
                                            [--gc tuned|default]
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import logging
import os
import subprocess
import sys
import time
import uuid

from agentfleet_contract.fleet_keys import Keys
from agentfleet_contract.runtime_config import RuntimeConfig

from agentfleet_runtime.core import eventloop
from agentfleet_runtime.core.config import limits_of
from agentfleet_runtime.model.prompt import tool_schema
from agentfleet_runtime.server.submission import Submission, new_task
from agentfleet_runtime.store.connection import connect
from agentfleet_runtime.store.tasks import TaskStore
from agentfleet_runtime.testing.scripted_model import ScriptedClient, ScriptedModel, jittered
from agentfleet_runtime.worker import Worker
from e2e.bench.runtime_benchlib import ROOT, load_line, peak_rss_mib, rss_mib
from e2e.harness.ports import free_port
from e2e.harness.procs import source_path
from e2e.harness.redis import redis_server


class Echo:
    name, description, timeout, side_effects = "echo", "echoes", 5.0, False

    def schema(self):
        return tool_schema(self.name, self.description, None)

    async def run(self, arguments, ctx):
        return "ok"


class MeteredModel:
    """The in-process stub's own work (deciding the reply, building its body), timed where it
    runs: in production a model server does it in another process. Both halves are synchronous
    (nothing awaited inside), so their wall time on this thread is their CPU time, less any
    preemption; parsing the reply is runtime work and is not counted here. The clock reads this
    adds (~0.2 us per call) are counted as the runtime's."""

    def __init__(self, model: ScriptedModel) -> None:
        self.model = model
        self.seconds = 0.0

    def reply(self, messages):
        t0 = time.perf_counter()
        plan = self.model.reply(messages)
        self.seconds += time.perf_counter() - t0
        return plan

    def body(self, plan, messages):
        t0 = time.perf_counter()
        body = self.model.body(plan, messages)
        self.seconds += time.perf_counter() - t0
        return body


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of another process so far (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_once(
    redis_url: str,
    model_url: str | None,
    tasks: int,
    concurrency: int,
    latency: float,
    steps: int = 3,
    server_pid: int | None = None,
    gc_tune: bool = True,
    jitter: float = 0.0,
) -> dict[str, float]:
    fleet = "bench" + uuid.uuid4().hex[:6]
    doc = {
        "fleet": fleet,
        "redisUrl": redis_url,
        "worker": {"concurrency": concurrency, "metricsPort": 0},
        "model": {"timeoutSeconds": 60},
    }
    if model_url:
        doc["model"]["baseUrl"] = model_url
    config = RuntimeConfig.model_validate(doc)
    stub = None if model_url else MeteredModel(ScriptedModel(latency=latency))
    worker = Worker(config, model=None if stub is None else ScriptedClient(stub), extra_tools=[Echo()])
    store = TaskStore(connect(redis_url), Keys(fleet))
    await store.ensure_group()
    pipe_ids = []
    goals = [
        f"job {i} #steps={steps} #latency={latency}" + (f" #jitter={jitter}" if jitter else "") for i in range(tasks)
    ]
    for goal in goals:
        sub = Submission(goal, "", limits_of(config), None, "", {})
        pipe_ids.append((await store.submit(new_task(uuid.uuid4().hex, sub, time.time())))[1])
    rss0 = rss_mib()
    redis_cpu0 = await redis_cpu_seconds(store)
    server_cpu0 = process_cpu_seconds(server_pid) if server_pid else 0.0
    if gc_tune:  # as `python -m agentfleet_runtime worker` does once its worker has started
        from agentfleet_runtime.core import gctune

        gctune.tune()
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
        await asyncio.sleep(0.05)  # the wall time is read to within this
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    redis_cpu = await redis_cpu_seconds(store) - redis_cpu0
    server_cpu = process_cpu_seconds(server_pid) - server_cpu0 if server_pid else float("nan")
    states = await store.statuses(pipe_ids)
    assert all(s and s["status"] == "done" for s in states), "some tasks did not finish"
    pipe = store.r.pipeline(transaction=False)
    for tid in pipe_ids:
        pipe.llen(store.keys.steps(tid))
    steps_done = await pipe.execute()  # every step checkpointed, the final answer included
    assert all(n == steps for n in steps_done), f"tasks took other than {steps} steps: {sorted(set(steps_done))}"
    await worker.kill()
    await store.r.aclose()
    waves = -(-tasks // concurrency)  # tasks run in waves of `concurrency`, each steps x latency long
    ideal = waves * steps * latency
    if jitter:
        # Each call's latency is known (a hash of the call): the ideal is a worker that costs
        # nothing, starting each task the moment a slot frees. The longest tasks of the last
        # wave set its end, so this is longer than the mean-latency figure.
        slots = [0.0] * min(concurrency, tasks)
        for goal in goals:
            heapq.heapreplace(slots, slots[0] + sum(jittered(latency, jitter, goal, turn) for turn in range(steps)))
        ideal = max(slots)
    return {
        "wall": wall,
        "cpu": cpu,
        "stub_cpu": 0.0 if stub is None else stub.seconds,
        "redis_cpu": redis_cpu,
        "server_cpu": server_cpu,
        "ideal": ideal,
        "peak_in_flight": peak_in_flight,
        "rss0": rss0,
        "peak_rss": peak_rss,
        "concurrency": concurrency,
        "latency": latency,
        "steps": steps,
        "load": os.getloadavg()[0],
    }


async def redis_cpu_seconds(store: TaskStore) -> float:
    """CPU used by redis-server so far: it shares this machine's cores with the worker."""
    info = await store.r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def report(name: str, tasks: int, r: dict[str, float]) -> None:
    calls = tasks * r["steps"]
    ideal_calls = r["concurrency"] / r["latency"]
    print(
        f"{name:<30} wall {r['wall']:6.2f} s (ideal {r['ideal']:.2f} s) -> {tasks / r['wall']:7.1f} tasks/s, "
        f"{calls / r['wall']:6.0f} model calls/s, "
        f"{r['ideal'] / r['wall'] * 100:5.1f}% of ideal; peak in flight {r['peak_in_flight']:.0f}; RSS "
        f"{r['rss0']:.0f} -> {r['peak_rss']:.0f} MiB; "
        f"load {r['load']:.1f}"
    )
    per_step = r["cpu"] / calls
    runtime_step = (r["cpu"] - r["stub_cpu"]) / calls
    stub = f" (of which the stub model's own work {r['stub_cpu'] / calls * 1000:.3f} ms)" if r["stub_cpu"] else ""
    print(
        f"{'':<30} worker CPU {per_step * 1000:.3f} ms per step{stub}; this run got "
        f"{r['cpu'] / r['wall'] * 100:.0f}% of a core"
    )
    print(
        f"{'':<30} runtime alone {runtime_step * 1000:.3f} ms per step: one free core would sustain "
        f"{1 / runtime_step:.0f} model calls/s "
        f"({min(1.0, (1 / runtime_step) / ideal_calls) * 100:.0f}% of ideal)"
    )
    line = f"{'':<30} redis-server CPU {r['redis_cpu'] / calls * 1000:.3f} ms per step"
    if r["server_cpu"] == r["server_cpu"]:  # not NaN: the HTTP model server ran
        total = (r["cpu"] + r["redis_cpu"] + r["server_cpu"]) / calls
        line += (
            f"; scripted model server CPU {r['server_cpu'] / calls * 1000:.3f} ms per call "
            f"({r['server_cpu'] / r['wall'] * 100:.0f}% of a core; "
            f"alone on a free core it would serve {calls / r['server_cpu']:.0f} calls/s)"
            f"\n{'':<30} all three: {total * 1000:.3f} ms CPU per call -> {os.cpu_count()} cores fully used would "
            "give at most "
            f"{os.cpu_count() / total:.0f} calls/s on this machine"
        )
    print(line)


async def main(args: argparse.Namespace) -> None:
    logging.disable(logging.INFO)
    lengths = [int(s) for s in args.steps.split(",")]
    results: list[tuple[str, int, dict[str, float]]] = []
    with redis_server() as url:
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "agentfleet_runtime", "scripted-model", "--port", str(port)],
            cwd=ROOT,
            env={"PYTHONPATH": source_path(), **{k: v for k, v in os.environ.items() if k == "AGENTFLEET_EVENT_LOOP"}},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            server.stdout.readline()
            for steps in lengths:
                tasks = args.tasks if steps <= 3 else args.long_tasks
                if args.only in (None, "stub"):
                    r = await run_once(
                        url,
                        None,
                        tasks,
                        args.concurrency,
                        args.latency,
                        steps,
                        gc_tune=args.gc == "tuned",
                        jitter=args.jitter,
                    )
                    results.append((f"stub, {steps}-call tasks", tasks, r))
                if args.only in (None, "http"):
                    r = await run_once(
                        url,
                        f"http://127.0.0.1:{port}/v1",
                        tasks,
                        args.concurrency,
                        args.latency,
                        steps,
                        server.pid,
                        gc_tune=args.gc == "tuned",
                        jitter=args.jitter,
                    )
                    results.append((f"HTTP, {steps}-call tasks", tasks, r))
        finally:
            server.terminate()
            server.wait(10)
    print(
        f"{args.concurrency} tasks at once in one worker process, model latency {args.latency * 1000:.0f} ms"
        f"{f' +/- {args.jitter * 100:.0f} % (uniform, per call)' if args.jitter else ' (every call alike)'}; tasks of "
        f"{args.steps} model calls; "
        f"GC {'tuned as the worker entry point does (gctune.py)' if args.gc == 'tuned' else 'CPython defaults'}; "
        f"event loop {eventloop.name()} (the worker entry point's, eventloop.py; the scripted model server runs on "
        "the same)"
    )
    print(f"baseline (ideal): {args.concurrency / args.latency:.0f} model calls/s at any task length")
    for name, tasks, r in results:
        report(f"{name} ({tasks})", tasks, r)
    print(f"peak RSS of this process over the whole run: {peak_rss_mib():.0f} MiB (goal: under 1024 MiB)")
    print(load_line())


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", type=int, default=3000, help="tasks of 3 calls or fewer")
    p.add_argument("--long-tasks", type=int, default=2000, help="tasks of more than 3 calls")
    p.add_argument("--steps", default="3,15", help="task lengths in model calls, comma-separated")
    p.add_argument("--concurrency", type=int, default=1000)
    p.add_argument("--latency", type=float, default=0.2)
    p.add_argument(
        "--jitter",
        type=float,
        default=0.0,
        help=(
            "spread each call's latency over latency x [1-J, 1+J] (0: every call alike, which keeps tasks in lockstep)"
        ),
    )
    p.add_argument("--only", choices=("stub", "http"), default=None)
    p.add_argument(
        "--gc",
        choices=("tuned", "default"),
        default="tuned",
        help="the worker entry point's GC settings (gctune.py), or CPython's",
    )
    eventloop.run(main(p.parse_args()))  # the loop `python -m agentfleet_runtime worker` runs on
