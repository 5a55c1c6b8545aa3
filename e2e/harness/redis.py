"""A private redis-server on 127.0.0.1 with AOF persistence in its own directory."""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from e2e.harness.installers import ensure_redis_server
from e2e.harness.ports import free_port
from e2e.harness.procs import terminate


class RedisServer:
    """One redis-server; ``fsync`` is the AOF's appendfsync: "always" for the durability tests,
    "everysec" (production's) for the benches."""

    def __init__(self, binary: str, directory: Path, port: int | None = None, fsync: str = "always") -> None:
        self.binary = binary
        self.dir = directory
        self.port = port or free_port()
        self.fsync = fsync
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir)),
            *("--appendonly", "yes", "--appendfsync", self.fsync, "--save", "", "--daemonize", "no"),
            *("--logfile", str(self.dir / "redis.log"), "--maxclients", "10000"),
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.dir / "redis.log").read_text()[-2000:]
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("redis-server did not answer PING within 15 s")

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        terminate(self.proc, kill=kill)
        self.proc = None

    def restart(self, kill: bool = False) -> None:
        self.stop(kill=kill)
        self.start()


@contextmanager
def redis_server(fsync: str = "everysec") -> Iterator[str]:
    """A throwaway redis-server (installed when missing) in a temporary directory; yields its URL."""
    with tempfile.TemporaryDirectory() as d:
        server = RedisServer(ensure_redis_server(), Path(d), fsync=fsync)
        server.start()
        try:
            yield server.url
        finally:
            server.stop()
