"""Shared pieces of the runtime benchmarks: memory, machine load and one timed streamed call (the
servers, ports and percentiles are e2e/harness's)."""

from __future__ import annotations

import asyncio
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentfleet_runtime.routing.settings import Endpoint
from agentfleet_runtime.routing.streaming import StreamObserver
from agentfleet_runtime.routing.transport import HttpTransport

ROOT = Path(__file__).resolve().parents[2]


def rss_mib() -> float:
    """Current resident set size of this process."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load_line() -> str:
    """Machine load: figures from a busy shared machine are upper bounds, read them with it."""
    one, five, fifteen = os.getloadavg()
    return f"machine load average (1, 5, 15 min): {one:.1f}, {five:.1f}, {fifteen:.1f} on {os.cpu_count()} CPUs"


@dataclass(frozen=True)
class Streamed:
    """What one streamed chat call showed its client."""

    ttft: float  # seconds from sending to the first token
    per_token: float  # seconds between later tokens (nan with fewer than two)
    prompt_tokens: int
    completion_tokens: int


async def streamed_call(
    api: str, model: str, api_key: str, messages: list[dict[str, Any]], max_tokens: int, **extra: Any
) -> Streamed:
    """One streamed call to an OpenAI-compatible engine (``api``: its …/v1), timed by the runtime's
    own transport; ``extra`` joins the body (e.g. vLLM's ``ignore_eos``). Engines here send one
    token a chunk, so each text delta is a token."""
    transport = HttpTransport(api_key or None)
    loop = asyncio.get_running_loop()
    stamps: list[float] = []
    started = loop.time()
    body = {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0.0, **extra}
    try:
        out = await transport.stream(
            Endpoint("bench", api), body, 600.0, StreamObserver(lambda: None, lambda _t: stamps.append(loop.time()))
        )
    finally:
        await transport.close()
    usage = out.get("usage") or {}
    per = (stamps[-1] - stamps[0]) / (len(stamps) - 1) if len(stamps) > 1 else math.nan
    return Streamed(
        stamps[0] - started, per, int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
    )
