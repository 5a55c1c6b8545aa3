"""A private redis-server on 127.0.0.1 with AOF persistence in its own directory."""

from __future__ import annotations

import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from e2e.harness import shared
from e2e.harness.installers import ensure_redis_sentinel, ensure_redis_server
from e2e.harness.poll import poll
from e2e.harness.ports import free_port
from e2e.harness.procs import Proc, terminate


class RedisServer:
    """One redis-server; ``fsync`` is the AOF's appendfsync: "always" for the durability tests,
    "everysec" (production's) for the benches."""

    def __init__(
        self,
        binary: str,
        directory: Path,
        port: int | None = None,
        fsync: str = "always",
        extra: tuple[str, ...] = (),
        own_session: bool = False,
    ) -> None:
        self.binary = binary
        self.dir = directory
        self.port = port or free_port()
        self.fsync = fsync
        self.extra = extra  # more redis-server flags, e.g. ("--replicaof", host, port)
        self.own_session = own_session  # outlives the process that started it (run_wide)
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
            *self.extra,
        ]
        runner = Proc(args, python_path=False, group=self.own_session)
        self.proc = runner.proc
        try:
            runner.wait_ready(
                lambda: redis_ping(self.port), 15, f"redis-server on {self.port} to answer PING", interval=0.05
            )
        except RuntimeError as e:
            log = (self.dir / "redis.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{e}\nredis.log: {log}") from None

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


def run_wide() -> RedisServer:
    """The test run's one Redis (e2e/harness/shared.py), for every test that only reads and writes:
    each isolates itself by its fleet's name and namespace, which prefix its keys. A test that
    restarts, fills or reconfigures Redis starts its own."""

    def started(d: Path) -> shared.Started:
        server = RedisServer(ensure_redis_server(), d, own_session=True)
        server.start()
        assert server.proc is not None
        return {"port": server.port, "dir": str(d)}, [server.proc.pid]

    record = shared.server("redis", started)
    return RedisServer(ensure_redis_server(), Path(record["dir"]), port=record["port"])


def redis_ping(port: int) -> bool:
    """A Redis (or Sentinel) on 127.0.0.1:port answers PING."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class SentinelGroup:
    """A primary, ``replicas`` replicas and ``sentinels`` Sentinels (quorum: a majority) on
    127.0.0.1, each a real process in ``directory``. Failure detection is quick on purpose
    (down-after ``down_after_ms``), as a loopback test can afford."""

    def __init__(
        self, directory: Path, *, master: str = "af", replicas: int = 1, sentinels: int = 3, down_after_ms: int = 1000
    ) -> None:
        self.dir = directory
        self.master = master
        binary = ensure_redis_server()
        self.sentinel_binary = ensure_redis_sentinel()
        # Full syncs start at once (the default waits 5 s for more replicas), on every node: any
        # of them may be the primary after a failover.
        quick = ("--repl-diskless-sync-delay", "0")
        primary = RedisServer(binary, directory / "r0", fsync="everysec", extra=quick)
        self.servers = [primary] + [
            RedisServer(
                binary,
                directory / f"r{i}",
                fsync="everysec",
                extra=(*quick, "--replicaof", "127.0.0.1", str(primary.port)),
            )
            for i in range(1, replicas + 1)
        ]
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self.quorum = sentinels // 2 + 1
        self.down_after_ms = down_after_ms
        self.sentinel_procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """The runtime's redis+sentinel:// URL (agentfleet_contract.redis_sentinel)."""
        return "redis+sentinel://" + ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports) + f"/{self.master}/0"

    def start(self) -> None:
        for server in self.servers:
            server.start()
        for i, port in enumerate(self.sentinel_ports):
            d = self.dir / f"s{i}"
            d.mkdir(parents=True, exist_ok=True)
            conf = d / "sentinel.conf"  # Sentinel rewrites its own file: one each
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndaemonize no\ndir {d}\nlogfile {d / 'sentinel.log'}\n"
                f"sentinel monitor {self.master} 127.0.0.1 {self.servers[0].port} {self.quorum}\n"
                f"sentinel down-after-milliseconds {self.master} {self.down_after_ms}\n"
                f"sentinel failover-timeout {self.master} 10000\nsentinel parallel-syncs {self.master} 1\n"
            )
            self.sentinel_procs.append(Proc([self.sentinel_binary, str(conf)], python_path=False).proc)
        poll(
            lambda: all(redis_ping(p) for p in self.sentinel_ports) and self.replicas_in_sync(),
            20,
            "the Sentinel group (sentinels answering, replicas in sync)",
            0.1,
        )

    def replicas_in_sync(self) -> bool:
        import redis

        r = redis.Redis(port=self.primary_port() or self.servers[0].port, socket_timeout=1)
        try:
            info = r.info("replication")
            online = [
                k
                for k, v in info.items()
                if k.startswith("slave") and isinstance(v, dict) and v.get("state") == "online"
            ]
            return len(online) >= len(self.servers) - 1
        except redis.RedisError:
            return False
        finally:
            r.close()

    def primary_port(self) -> int | None:
        """The primary the Sentinels name now (the first that answers)."""
        import redis

        for port in self.sentinel_ports:
            r = redis.Redis(port=port, socket_timeout=1)
            try:
                got = r.sentinel_get_master_addr_by_name(self.master)
                if got:
                    return int(got[1])
            except redis.RedisError:
                continue
            finally:
                r.close()
        return None

    def server_on(self, port: int) -> RedisServer:
        return next(s for s in self.servers if s.port == port)

    def stop(self) -> None:
        for proc in self.sentinel_procs:
            terminate(proc, kill=True)
        self.sentinel_procs = []
        for server in self.servers:
            server.stop(kill=True)
