#!/usr/bin/env python3
"""Open event streams against one task API pod, capped (today) and uncapped (c4625b5's
behaviour) in one run, and time /readyz and a plain GET while they are open (prints figures;
not a test; tests/integration/runtime/test_runtime_api_tenants.py pins the caps).

A real Redis (redis-server on loopback, started here), the real TaskAPI with its default pool of
128 Redis connections and default caps (64 streams a pod, 8 a tenant), ``--streams`` clients
spread over tenants of 5 streams each, every stream on a queued task that never runs (so each
holds a blocking XREAD). While they are open, ``--probes`` calls each of /readyz and
GET /v1/tasks/{id}, one after another, are timed. The uncapped run lifts the pod's cap, as on
c4625b5 where every stream took a pooled connection.

    .venv/bin/python -m e2e.bench.sse_cap_bench [--streams 500] [--probes 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import aiohttp
from agentfleet_contract.runtime_config import RuntimeConfig
from aiohttp import web

from agentfleet_runtime.core.tenants import token_line
from agentfleet_runtime.server.api import TaskAPI
from e2e.harness.installers import ensure_redis_server
from e2e.harness.ports import free_port
from e2e.harness.redis import RedisServer


def api_config(redis_url: str, fleet: str, tokens_file: Path) -> RuntimeConfig:
    """A task API's runtime config: no model is called (tasks only queue here)."""
    return RuntimeConfig.model_validate(
        {"fleet": fleet, "redisUrl": redis_url, "model": {"baseUrl": "http://127.0.0.1:9/v1", "name": "none"},
         "api": {"tokensFile": str(tokens_file)}}
    )  # fmt: skip


PER_TENANT = 5


async def run(redis_url: str, work: Path, streams: int, probes: int, capped: bool) -> dict[str, object]:
    tenants = [f"t{i}" for i in range((streams + PER_TENANT - 1) // PER_TENANT)]
    (work / "tokens").write_text("".join(token_line(t, f"tok-{t}") + "\n" for t in tenants))
    fleet = f"bench{int(time.time() * 1000) % 10**8}{int(capped)}"
    api = TaskAPI(api_config(redis_url, fleet, work / "tokens"))
    if not capped:
        api.streams.per_pod = api.streams.per_tenant = 10**9
    runner = web.AppRunner(api.app(), shutdown_timeout=1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    conn = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    async with aiohttp.ClientSession(base, connector=conn, timeout=timeout) as http:
        tasks = {}
        for t in tenants:
            r = await http.post("/v1/tasks", json={"goal": "never runs"}, headers={"Authorization": f"Bearer tok-{t}"})
            tasks[t] = (await r.json())["id"]
        opened = await asyncio.gather(
            *[
                http.get(
                    f"/v1/tasks/{tasks[tenants[i // PER_TENANT]]}/events",
                    headers={"Authorization": f"Bearer tok-{tenants[i // PER_TENANT]}"},
                )
                for i in range(streams)
            ],
            return_exceptions=True,
        )
        codes = Counter(str(getattr(r, "status", type(r).__name__)) for r in opened)
        await asyncio.sleep(2)  # every accepted stream is now inside its XREAD
        auth = {"Authorization": f"Bearer tok-{tenants[0]}"}
        ready, get, ready_codes, get_codes = [], [], Counter(), Counter()
        for _ in range(probes):
            for path, into, seen in (
                ("/readyz", ready, ready_codes),
                (f"/v1/tasks/{tasks[tenants[0]]}?steps=0", get, get_codes),
            ):
                t0 = time.monotonic()
                try:
                    r = await asyncio.wait_for(http.get(path, headers=auth), 15)
                    seen[str(r.status)] += 1
                    r.release()
                except TimeoutError:
                    seen["timeout(15s)"] += 1
                into.append(time.monotonic() - t0)
        for r in opened:
            if isinstance(r, aiohttp.ClientResponse):
                r.close()
    api.closing = True
    await runner.cleanup()
    return {
        "streams": dict(codes),
        "readyz": ready,
        "readyz codes": dict(ready_codes),
        "get": get,
        "get codes": dict(get_codes),
    }


def fmt(xs: list[float]) -> str:
    xs = sorted(xs)
    return f"p50 {statistics.median(xs) * 1000:.1f} ms, max {xs[-1] * 1000:.1f} ms"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, default=500)
    ap.add_argument("--probes", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(ensure_redis_server(), Path(tmp) / "redis")
        server.start()
        try:
            for capped in (True, False):
                out = asyncio.run(run(server.url, Path(tmp), args.streams, args.probes, capped))
                print(
                    f"{'capped (64 a pod, 8 a tenant)' if capped else 'uncapped (c4625b5)'}:"
                    f" {args.streams} streams asked"
                )
                print(f"  stream answers   {out['streams']}")
                print(f"  /readyz          {fmt(out['readyz'])}  codes {out['readyz codes']}")  # type: ignore[arg-type]
                print(f"  GET /v1/tasks/id {fmt(out['get'])}  codes {out['get codes']}")  # type: ignore[arg-type]
        finally:
            server.stop()


if __name__ == "__main__":
    main()
