#!/usr/bin/env python3
"""An HTTP tool call answered with a 64 MB body, capped (today) and read whole (c4625b5's
behaviour: ``await resp.text()``, then cut) in one run (prints figures; not a test;
tests/integration/runtime/test_runtime_http_tool_egress.py pins the cap).

A real aiohttp server on 127.0.0.1 streams ``--mb`` MB in 1 MB chunks and counts the bytes it got
out before the client hung up. Each mode calls the tool in a fresh subprocess, so its peak RSS
(ru_maxrss) is the call's own and not the server's.

    .venv/bin/python -m e2e.bench.http_tool_body_bench [--mb 64] [--cap-kib 1024] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time

from aiohttp import web

MB = 1024 * 1024

CLIENT = r"""
import asyncio, json, resource, sys, time
import aiohttp
from agentfleet_runtime.tools.base import ToolContext
from agentfleet_runtime.tools.http import HTTPTool
from agentfleet_runtime.core.types import Limits, Status, TaskRecord

url, mode, cap = sys.argv[1], sys.argv[2], int(sys.argv[3])
far = time.time() + 3600
ctx = ToolContext(
    TaskRecord(id="b", goal="g", status=Status.RUNNING, limits=Limits(), created_at=0, deadline=far, root="b"),
    0,
    0,
    far,
)

async def whole() -> str:
    async with aiohttp.ClientSession() as s, s.get(url) as resp:
        return (await resp.text())[:cap]

async def capped() -> str:
    tool = HTTPTool("big", url, method="GET", max_response_bytes=cap)
    try:
        return await tool.run({}, ctx)
    finally:
        await tool.close()

before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
out = asyncio.run(capped() if mode == "capped" else whole())
took = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"chars": len(out), "seconds": took, "rss_before_mib": before / 1024, "rss_peak_mib": peak / 1024}))
"""


async def serve(total_mb: int) -> tuple[web.AppRunner, str, list[int]]:
    sent = [0]
    chunk = b"x" * MB

    async def big(request: web.Request) -> web.StreamResponse:
        sent[0] = 0
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        resp.content_length = total_mb * MB
        await resp.prepare(request)
        try:
            for _ in range(total_mb):
                await resp.write(chunk)
                sent[0] += MB
        except (ConnectionError, RuntimeError):
            pass
        return resp

    app = web.Application()
    app.router.add_get("/big", big)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/big", sent


async def main(args: argparse.Namespace) -> None:
    runner, url, sent = await serve(args.mb)
    try:
        for mode in ("capped", "whole"):
            for run in range(args.runs):
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-c", CLIENT, url, mode, str(args.cap_kib * 1024), stdout=subprocess.PIPE
                )
                out, _ = await proc.communicate()
                await asyncio.sleep(0.2)  # the handler notices the hang-up
                r = json.loads(out)
                print(
                    f"{mode:7s} run {run + 1}: {r['chars'] / MB:6.2f} MB returned, server sent {sent[0] / MB:5.0f} MB, "
                    f"peak RSS {r['rss_peak_mib']:6.1f} MiB (at start {r['rss_before_mib']:5.1f}), {r['seconds']:.2f} s"
                )
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=64, help="body size in MB")
    ap.add_argument("--cap-kib", type=int, default=1024, help="the tool's maxResponseBytes in KiB")
    ap.add_argument("--runs", type=int, default=3)
    start = time.time()
    asyncio.run(main(ap.parse_args()))
    print(f"({time.time() - start:.1f} s in all)")
