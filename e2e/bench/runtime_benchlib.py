"""Shared pieces of the runtime benchmarks: a throwaway redis-server, percentiles, RSS."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "runtime"), str(ROOT / "operator")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
    proc = subprocess.run(["apt-get", "install", "-y", "-q", "redis-server"], env=env, capture_output=True, text=True)
    found = shutil.which("redis-server")
    if not found:
        raise SystemExit(f"redis-server is missing and apt-get install failed:\n{proc.stderr[-2000:]}")
    return found


@contextmanager
def redis_server() -> Iterator[str]:
    """A redis-server on 127.0.0.1 with AOF (fsync every second, as in production)."""
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        proc = subprocess.Popen(
            [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", d, "--appendonly", "yes", "--save", "", "--maxclients", "10000"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(10)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    return s[min(len(s) - 1, int(q / 100 * len(s)))]


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
