#!/usr/bin/env python3
"""What the tokens-per-minute check at admission adds to a submission (prints figures; not a
test: tests/integration/runtime/test_runtime_api_tenants.py pins the behaviour).

A real Redis (redis-server on loopback, started here) and the real TaskAPI over HTTP, in two
configurations measured in the same run, rounds interleaved so load from elsewhere hits both:

- ``off``: no spec.rateLimit.perTenantTokensPerMinute (SUBMIT reads no bucket: the baseline);
- ``on``: the limit set, with a primary and a routine tier, so SUBMIT reads the tenant's two
  buckets (charged beforehand by the workers' own limiter, so the keys exist) and admits.

One tenant submits ``--n`` tasks one after another per round and configuration. Besides the
latency the client sees, Redis' own time per script call (INFO commandstats, evalsha, reset
before each round) isolates SUBMIT's cost from the client's and the API's CPU, which other work
on a shared machine disturbs far more.

    .venv/bin/python -m e2e.bench.admission_bench [--rounds 5] [--n 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
from agentfleet_contract.runtime_config import RuntimeConfig
from aiohttp import web

from agentfleet_runtime.core.tenants import token_line
from agentfleet_runtime.routing.ratelimit import RedisRateLimiter, fleet_prefix
from agentfleet_runtime.routing.settings import RateLimitSettings
from agentfleet_runtime.server.api import TaskAPI
from agentfleet_runtime.store.connection import connect
from e2e.bench.sse_cap_bench import api_config
from e2e.harness.installers import ensure_redis_server
from e2e.harness.ports import free_port
from e2e.harness.redis import RedisServer

TPM = 10**9  # never binding: the figure is the check's cost, not a refusal's


def config(redis_url: str, fleet: str, tokens: Path, on: bool) -> RuntimeConfig:
    doc = api_config(redis_url, fleet, tokens).model_dump(by_alias=True, mode="json")
    if on:
        doc["modelRouting"] = {
            "primary": {"modelReplicaSet": "big", "model": "m"},
            "routine": {"modelReplicaSet": "small", "model": "m"},
            "routineSteps": ["Summaries"],
            "rateLimit": {"perTenantTokensPerMinute": TPM},
        }
    return RuntimeConfig.model_validate(doc)


async def one_round(redis_url: str, work: Path, on: bool, n: int, k: int) -> tuple[list[float], float]:
    """Client-side latencies, and Redis' microseconds per script call."""
    (work / "tokens").write_text(token_line("acme", "tok-acme") + "\n")
    fleet = f"adm{k}{int(on)}"
    r = connect(redis_url)
    if on:  # the buckets exist, as once the tenant's calls have run
        limiter = RedisRateLimiter(r, RateLimitSettings(per_tenant_tokens_per_minute=TPM), prefix=fleet_prefix(fleet))
        for model in ("big", "small"):
            await limiter.reserve(model, "acme", 1000)
    await r.config_resetstat()
    api = TaskAPI(config(redis_url, fleet, work / "tokens", on))
    runner = web.AppRunner(api.app(), shutdown_timeout=1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    out: list[float] = []
    try:
        headers = {"Authorization": "Bearer tok-acme"}
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", headers=headers) as http:
            for i in range(n):
                t0 = time.perf_counter()
                resp = await http.post("/v1/tasks", json={"goal": f"what changed in release {i}?"})
                out.append(time.perf_counter() - t0)
                assert resp.status == 201, await resp.text()
                resp.release()
    finally:
        api.closing = True
        await runner.cleanup()
    stats = (await r.info("commandstats")).get("cmdstat_evalsha") or {}
    await r.aclose()
    return out, float(stats.get("usec_per_call", 0.0))


def fmt(xs: list[float]) -> str:
    xs = sorted(xs)
    p99 = xs[min(len(xs) - 1, int(len(xs) * 0.99))]
    return f"p50 {statistics.median(xs) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--n", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(ensure_redis_server(), Path(tmp) / "redis")
        server.start()
        try:
            got: dict[bool, list[tuple[list[float], float]]] = {False: [], True: []}
            for k in range(args.rounds):
                for on in (False, True):
                    got[on].append(asyncio.run(one_round(server.url, Path(tmp), on, args.n, k)))
            for on in (False, True):
                name = "on  (two buckets read)" if on else "off (baseline)"
                rounds = "; ".join(fmt(lat) for lat, _ in got[on])
                usec = ", ".join(f"{u:.1f}" for _, u in got[on])
                print(f"{name}: all {fmt([x for lat, _ in got[on] for x in lat])}\n    per round: {rounds}")
                print(f"    SUBMIT in Redis, usec per call per round: {usec}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
