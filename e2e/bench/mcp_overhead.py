"""Per-call cost of an MCP tool against an HTTP tool, in the same run, through the worker's ToolBox.

One server process (tests/integration/runtime/mcp_http_server.py, uvicorn) answers the same sum
two ways: ``POST /add`` (the HTTP tool, the baseline) and the MCP tool ``add`` over streamable
HTTP; so the difference is the protocol and the SDK on both ends, not the server. A stdio server
(mcp-server-time's ``get_current_time``) is timed beside them for scale. Calls run one at a time,
the three kinds interleaved round by round, so a load spike on this shared machine hits all three.

    python -m e2e.bench.mcp_overhead [--rounds 20] [--calls 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

from agentfleet_contract.percentiles import percentile

from agentfleet_runtime.core.types import Limits, Status, TaskRecord, ToolCall
from agentfleet_runtime.tools import ToolBox
from agentfleet_runtime.tools.http import HTTPTool
from agentfleet_runtime.tools.mcp import MCPServer
from e2e.harness.ports import free_port, port_open
from e2e.harness.procs import Proc

SERVER = Path(__file__).resolve().parents[2] / "tests" / "integration" / "runtime" / "mcp_http_server.py"


async def measure(rounds: int, calls: int, port: int) -> dict[str, list[float]]:
    base = f"http://127.0.0.1:{port}"
    http = HTTPTool("add", f"{base}/add", timeout=10)
    calc = MCPServer("calc", url=f"{base}/mcp", read_only=["add"], timeout=10)
    clock = MCPServer(
        "clock",
        command=[sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"],
        read_only=["get_current_time"],
    )
    box = ToolBox([http, calc, clock])
    await box.start()
    deadline = time.monotonic() + 120  # at load 20 a first listing may take past the 10 s start wait
    while not (calc.listings and clock.listings) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    now = time.time()
    task = TaskRecord(
        id="bench", goal="g", status=Status.RUNNING, limits=Limits(), created_at=now, deadline=now + 3600, root="bench"
    )
    kinds = {
        "http tool (POST /add)": ToolCall("c", "add", {"a": 2, "b": 40}),
        "mcp streamable HTTP (add)": ToolCall("c", "calc_add", {"a": 2, "b": 40}),
        "mcp stdio (time: get_current_time)": ToolCall("c", "clock_get_current_time", {"timezone": "UTC"}),
    }
    seconds: dict[str, list[float]] = {k: [] for k in kinds}
    try:
        for kind, call in kinds.items():  # warm: first connections, first imports on the server
            [obs] = await box.run_step(task, 0, [call], task.deadline)
            assert obs.ok, (kind, obs.output)
        for _ in range(rounds):
            for kind, call in kinds.items():
                for _ in range(calls):
                    t0 = time.perf_counter()
                    [obs] = await box.run_step(task, 0, [call], task.deadline)
                    seconds[kind].append(time.perf_counter() - t0)
                    assert obs.ok, (kind, obs.output)
    finally:
        await box.close()
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--calls", type=int, default=20)
    args = ap.parse_args()
    port = free_port()
    proc = Proc([sys.executable, str(SERVER), str(port)])
    try:
        deadline = time.monotonic() + 60
        while not port_open(port):
            if not proc.alive() or time.monotonic() > deadline:
                raise SystemExit(f"the MCP test server did not start:\n{proc.logs()}")
            time.sleep(0.1)
        seconds = asyncio.run(measure(args.rounds, args.calls, port))
    finally:
        proc.end()
    base = statistics.median(seconds["http tool (POST /add)"])
    print(f"{args.rounds} rounds x {args.calls} calls per kind, one at a time, interleaved")
    print(f"{'kind':<38} {'p50 ms':>8} {'p95 ms':>8} {'p50 - http p50 ms':>18}")
    for kind, xs in seconds.items():
        p50, p95 = statistics.median(xs), percentile(xs, 95)
        print(f"{kind:<38} {p50 * 1000:8.2f} {p95 * 1000:8.2f} {(p50 - base) * 1000:18.2f}")


if __name__ == "__main__":
    main()
