"""Shared pieces of the runtime benchmarks: memory and machine load (the servers, ports and
percentiles are e2e/harness's)."""

from __future__ import annotations

import os
from pathlib import Path

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
