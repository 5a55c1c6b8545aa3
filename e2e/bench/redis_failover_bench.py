#!/usr/bin/env python3
"""kill -9 of a fleet's Redis primary under Sentinel with tasks in flight (prints figures; not a
test; tests/integration/runtime/test_runtime_redis_sentinel.py pins the parts).

All real processes on 127.0.0.1: a redis-server primary, ``--replicas`` replicas (2: one is
left to WAIT for after the failover), three redis-sentinel
(down-after 1 s, quorum 2), two agent workers, the scripted model and an effects service whose
calls carry idempotency keys. Two task APIs in this process share the Redis: one acknowledges a
submission after WAIT 1 (durable, spec.redis.sentinel.durableSubmit), one at once (c4625b5's
behaviour), so both are measured in the same run:

1. submit latency: ``--latency-samples`` sequential submissions to each, alternating;
2. failover: ``--tasks`` tasks submitted (durable API), then, while both APIs keep taking
   submissions from two loops, the primary is killed with SIGKILL. Reported: time until the
   Sentinels name a new primary and until the first write through the runtime's client
   succeeds; acknowledged submissions missing afterwards, per API; tasks that ended; steps
   recorded twice; side effects applied, and requests re-sent under the same key (the service
   dedups them: applied twice would be a duplicate side effect).

    .venv/bin/python -m e2e.bench.redis_failover_bench [--tasks 100] [--latency-samples 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from agentfleet_contract.fleet_keys import Keys
from agentfleet_contract.percentiles import percentile
from agentfleet_contract.runtime_config import RuntimeConfig
from aiohttp import web

from agentfleet_runtime.core.types import Status
from agentfleet_runtime.server.api import TaskAPI
from agentfleet_runtime.store.connection import connect
from agentfleet_runtime.store.tasks import TaskStore
from e2e.harness.poll import poll
from e2e.harness.ports import free_port
from e2e.harness.procs import Proc
from e2e.harness.redis import SentinelGroup

GOAL = 'job {i} #steps=6 #tool=effect #calls=1 #latency=0.3 #args={{"job":{i}}}'


def wait_line(log: Path, prefix: str, timeout: float = 30) -> str:
    def line() -> str | None:
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        return next((x.rsplit(" ", 1)[1] for x in lines if x.startswith(prefix)), None)

    return poll(line, timeout, f"a line starting {prefix!r} in {log}", 0.05)


def config_doc(url: str, fleet: str, model_url: str, effects_url: str, **over: Any) -> dict[str, Any]:
    return {
        "fleet": fleet,
        "redisUrl": url,
        "model": {"baseUrl": model_url, "name": "scripted", "timeoutSeconds": 10, "maxRetries": 3},
        "worker": {"concurrency": 64, "metricsPort": 0, "shutdownGraceSeconds": 2, "retryBackoffSeconds": 0.2},
        "retry": {"maxAttempts": 10, "visibilityTimeoutSeconds": 5},
        "tools": [
            {
                "name": "effect",
                "type": "HTTP",
                "http": {"url": effects_url + "/effect", "sideEffects": True},
                "timeoutSeconds": 5,
            }
        ],
        "api": {"allowAnonymous": True},
        **over,
    }


async def serve_api(doc: dict[str, Any]) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(TaskAPI(RuntimeConfig.model_validate(doc)).app(), shutdown_timeout=1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


async def post(http: aiohttp.ClientSession, base: str, goal: str) -> tuple[int, str | None, float]:
    start = time.perf_counter()
    try:
        async with http.post(
            base + "/v1/tasks", json={"goal": goal}, headers={"Idempotency-Key": uuid.uuid4().hex}
        ) as resp:
            body = await resp.json()
            return resp.status, body.get("id"), time.perf_counter() - start
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return 0, None, time.perf_counter() - start


def pct(values: list[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100) of seconds, in milliseconds."""
    return percentile(values, q) * 1000


async def latency(http: aiohttp.ClientSession, apis: dict[str, str], samples: int) -> None:
    took: dict[str, list[float]] = {name: [] for name in apis}
    for i in range(samples):
        for name, base in apis.items():
            status, _, t = await post(http, base, f"latency {i}")
            if status == 201:
                took[name].append(t)
    print(f"submit latency, {samples} sequential submissions each, alternating:")
    for name, values in took.items():
        print(
            f"  {name:22s} p50 {pct(values, 50):6.2f} ms  p99 {pct(values, 99):6.2f} ms  mean "
            f"{statistics.mean(values) * 1000:6.2f} ms"
        )


async def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="af-failover-"))
    group = SentinelGroup(tmp / "redis", replicas=args.replicas)
    procs: list[Proc] = []
    runners: list[web.AppRunner] = []
    try:
        group.start()
        model = Proc(
            [sys.executable, "-m", "agentfleet_runtime", "scripted-model", "--port", str(free_port())],
            log=tmp / "model.log",
        )
        effects = Proc(
            [sys.executable, "-m", "agentfleet_runtime.testing.effects", "--port", str(free_port())],
            log=tmp / "effects.log",
        )
        procs += [model, effects]
        model_url = wait_line(tmp / "model.log", "scripted model listening on ")
        effects_url = wait_line(tmp / "effects.log", "effects listening on ")
        fleet = "f" + uuid.uuid4().hex[:8]
        doc = config_doc(group.url, fleet, model_url, effects_url)
        (tmp / "runtime.yaml").write_text(yaml.safe_dump(doc))
        for i in range(2):
            procs.append(
                Proc(
                    [sys.executable, "-m", "agentfleet_runtime", "worker", "--config", str(tmp / "runtime.yaml")],
                    log=tmp / f"w{i}.log",
                )
            )
        durable, plain = (
            await serve_api({**doc, "redisAckReplicas": 1, "redisAckTimeoutMs": 1000}),
            await serve_api(doc),
        )
        runners += [durable[0], plain[0]]
        apis = {"durable (WAIT 1)": durable[1], "at once (c4625b5)": plain[1]}
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            # Latency on a fleet no worker serves: only the submissions themselves are measured.
            lat_doc = {**doc, "fleet": fleet + "-lat"}
            lat = {
                name: (await serve_api({**lat_doc, **({"redisAckReplicas": 1} if "WAIT" in name else {})}))
                for name in apis
            }
            runners += [r for r, _ in lat.values()]
            await latency(http, {name: base for name, (_, base) in lat.items()}, args.latency_samples)

            ids = []
            for i in range(args.tasks):
                status, task_id, _ = await post(http, apis["durable (WAIT 1)"], GOAL.format(i=i))
                assert status == 201 and task_id, status
                ids.append(task_id)
            await asyncio.sleep(1.5)  # tasks are running: steps recorded, effects called

            acked: dict[str, list[str]] = {name: [] for name in apis}
            refused: dict[str, Counter[int]] = {name: Counter() for name in apis}
            stop = asyncio.Event()

            async def submitter(name: str, base: str) -> None:
                n = 0
                while not stop.is_set():
                    status, task_id, _ = await post(http, base, f"during failover {name} {n} #steps=1")
                    n += 1
                    if status == 201 and task_id:
                        acked[name].append(task_id)
                    else:
                        refused[name][status] += 1
                        await asyncio.sleep(0.05)

            loops = [asyncio.create_task(submitter(name, base)) for name, base in apis.items()]
            await asyncio.sleep(1.0)
            old = group.primary_port()
            assert old is not None
            group.server_on(old).stop(kill=True)
            killed = time.monotonic()
            probe = connect(group.url)
            switched = None
            while True:
                if switched is None and group.primary_port() not in (None, old):
                    switched = time.monotonic() - killed
                try:
                    await asyncio.wait_for(probe.set(f"af:{fleet}:probe", "1"), 5)
                    first_write = time.monotonic() - killed
                    break
                except Exception:  # noqa: BLE001 - the write is retried until the failover ends
                    await asyncio.sleep(0.05)
            while switched is None:
                if group.primary_port() not in (None, old):
                    switched = time.monotonic() - killed
                await asyncio.sleep(0.05)
            await asyncio.sleep(2.0)
            stop.set()
            await asyncio.gather(*loops)

            store = TaskStore(probe, Keys(fleet))
            deadline = time.monotonic() + args.wait
            while time.monotonic() < deadline:
                states = await store.statuses(ids)
                if all(s is not None and Status(s["status"]).terminal for s in states):
                    break
                await asyncio.sleep(0.2)
            states = await store.statuses(ids)
            done = sum(1 for s in states if s and s["status"] == "done")
            twice = 0
            for i in ids:
                ns = [s.n for s in await store.steps(i)]
                twice += len(ns) - len(set(ns))
            missing = {name: sum(1 for s in await store.statuses(got) if s is None) for name, got in acked.items()}
            stats = await (await http.get(effects_url + "/stats")).json()
            await probe.aclose()

        print(f"failover: primary {old} killed (SIGKILL) with {args.tasks} tasks in flight")
        print(
            f"  Sentinels named a new primary after {switched:.2f} s; first write through the runtime's client "
            f"after {first_write:.2f} s"
        )
        for name in apis:
            codes = dict(sorted(refused[name].items())) or "none"
            print(
                f"  {name:22s} acknowledged {len(acked[name]):5d}, not acknowledged {codes}, acknowledged but "
                f"lost {missing[name]}"
            )
        print(f"  tasks ended done: {done} of {len(ids)}; steps recorded twice: {twice}")
        expected = args.tasks * 5  # 6 steps, the last one answers: 5 effect calls per task
        print(
            f"  side effects applied {len(stats['applied'])} (expected {expected}, each once), requests re-sent under "
            "the "
            f"same key {sum(n - 1 for n in stats['duplicates'].values())}, unkeyed {stats['unkeyed']}"
        )
    finally:
        for runner in runners:
            await runner.cleanup()
        for p in procs:
            p.end()
        group.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=100)
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--latency-samples", type=int, default=300)
    ap.add_argument("--wait", type=float, default=240, help="seconds the tasks may take to end after the failover")
    asyncio.run(main(ap.parse_args()))
