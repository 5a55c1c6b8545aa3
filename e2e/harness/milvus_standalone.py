"""A real Milvus standalone server (PyPI ``milvus`` 2.3.5) in a private network namespace.

PyPI ``milvus`` ships the Milvus 2.3.5 standalone Go server (coordinators, query/data/index nodes,
rocksmq, embedded etcd, local storage) xz-compressed with its shared libraries; its Linux wheels stop
at 2.3.5 (../shared/recipes/milvus-standalone.md). It is installed once into a venv under the cache
(a stamp file marks a finished install), and its binaries extracted once beside it.

The server binds 0.0.0.0 and :: for every gRPC port and 9091, with no setting to change that, so each
server gets its own network namespace with a veth pair on a private /30: the host end (.1) stays on
this machine, the server answers on the namespace end (.2), and nothing of it is on the host's own
addresses. It ignores SIGTERM (components keep retrying rootcoord): ``stop`` sends SIGTERM, waits
``STOP_GRACE_SECONDS``, then SIGKILL; data and load state survive a SIGKILL.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from e2e.harness.installers import InstallError
from e2e.harness.procs import Proc

VERSION = "2.3.5"
CACHE = Path(os.environ.get("AGENTFLEET_CACHE", Path.home() / ".cache" / "agentfleet"))
HOME = CACHE / f"milvus-{VERSION}"
GRPC_PORT = 19530
HEALTH_PORT = 9091
START_SECONDS = 240.0  # a cold first start on a busy 2-core machine; warm is about 5 s
STOP_GRACE_SECONDS = 10.0
SUBNET = "10.213"  # 10.213.<k>.0/30 per server; the cluster uses 10.96/16, 10.244/16, 10.201/16


def _run(cmd: list[str], timeout: float = 900) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise InstallError(
            f"`{' '.join(cmd)}` failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        )
    return proc.stdout


def ensure_installed(home: Path = HOME) -> Path:
    """The venv's python with ``milvus==VERSION`` and the extracted ``bin/``; both done once (stamps)."""
    venv, bin_dir = home / "venv", home / "bin"
    python = venv / "bin" / "python"
    if not (venv / ".installed").exists():
        shutil.rmtree(venv, ignore_errors=True)
        home.mkdir(parents=True, exist_ok=True)
        _run([sys.executable, "-m", "venv", str(venv)])
        _run([str(python), "-m", "pip", "install", "-q", f"milvus=={VERSION}"])
        (venv / ".installed").write_text(VERSION)
    if not (bin_dir / ".extracted").exists():
        # The package's own extraction (bin/ under the base dir it is given), once: 246 MB of xz.
        _run([str(python), "-c", f"import milvus; milvus._initialize_data_files({str(home)!r})"])
        (bin_dir / ".extracted").write_text(VERSION)
    return python


def _free_subnet() -> int:
    used = _run(["ip", "-4", "-o", "addr"])
    for k in [*range(os.getpid() % 200 + 1, 255), *range(1, 255)]:
        if f" {SUBNET}.{k}." not in used:
            return k
    raise InstallError(f"no free {SUBNET}.<k>.0/30 for a Milvus netns")


class MilvusStandalone:
    """One Milvus standalone server in its own netns, data in ``data_dir`` (kept across restarts)."""

    def __init__(self, data_dir: Path, *, home: Path = HOME) -> None:
        self.python = ensure_installed(home)
        self.bin = home / "bin" / "milvus"
        self.data_dir = data_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        k = _free_subnet()
        tag = f"{os.getpid() % 100000}{k}"
        self.netns, self.veth = f"afmv{tag}", f"afmv{tag}"[:13]
        self.host_ip, self.ip = f"{SUBNET}.{k}.1", f"{SUBNET}.{k}.2"
        self.uri = f"http://{self.ip}:{GRPC_PORT}"
        self.health_url = f"http://{self.ip}:{HEALTH_PORT}/healthz"
        self.log = data_dir / "server.log"
        self.proc: Proc | None = None
        self.start_seconds: list[float] = []  # each start's time to /healthz OK
        self._make_netns()

    def _make_netns(self) -> None:
        ns, h, n = self.netns, f"{self.veth}h", f"{self.veth}n"
        _run(["ip", "netns", "add", ns])
        try:
            _run(["ip", "-n", ns, "link", "set", "lo", "up"])
            _run(["ip", "link", "add", h, "type", "veth", "peer", "name", n, "netns", ns])
            _run(["ip", "addr", "add", f"{self.host_ip}/30", "dev", h])
            _run(["ip", "link", "set", h, "up"])
            _run(["ip", "-n", ns, "addr", "add", f"{self.ip}/30", "dev", n])
            _run(["ip", "-n", ns, "link", "set", n, "up"])
        except InstallError:
            self._remove_netns()
            raise

    def _remove_netns(self) -> None:
        subprocess.run(["ip", "link", "del", f"{self.veth}h"], capture_output=True)
        subprocess.run(["ip", "netns", "delete", self.netns], capture_output=True)

    def _write_config(self) -> None:
        # The package's config writer fills the data, log and etcd paths under data_dir; it probes the
        # listen ports by binding them, so it runs inside the namespace, where the defaults are free.
        code = f"from milvus import MilvusServerConfig as C; c = C(data_dir={str(self.data_dir)!r}); c.resolve()"
        code += "; c.write_config()"
        _run(["ip", "netns", "exec", self.netns, str(self.python), "-c", code], timeout=120)

    def start(self, timeout: float = START_SECONDS) -> float:
        """Starts the server and waits for /healthz OK; returns the seconds that took."""
        assert self.proc is None or not self.proc.alive(), "already running"
        if not (self.data_dir / "configs" / "milvus.yaml").exists():
            self._write_config()
        bin_dir = str(self.bin.parent)
        began = time.monotonic()
        self.proc = Proc(
            [
                "ip",
                "netns",
                "exec",
                self.netns,
                "env",
                "-i",
                "-C",
                str(self.data_dir),
                "PATH=/usr/bin:/bin",
                f"LD_LIBRARY_PATH={bin_dir}",
                "DEPLOY_MODE=STANDALONE",
                f"METRICS_PORT={HEALTH_PORT}",
                f"MILVUS_RUN_DIR={self.data_dir / 'run'}",
                f"MILVUSCONF={self.data_dir / 'configs'}",
                str(self.bin),
                "run",
                "standalone",
            ],  # fmt: skip
            log=self.log,
        )
        deadline = began + timeout
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise InstallError(f"milvus standalone exited while starting:\n{self.proc.logs()[-3000:]}")
            if self.healthy():
                took = time.monotonic() - began
                self.start_seconds.append(took)
                return took
            time.sleep(0.5)
        self.stop()
        raise InstallError(f"milvus standalone not healthy within {timeout:.0f}s:\n{self.proc.logs()[-3000:]}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.health_url, timeout=2) as resp:  # noqa: S310 - private netns
                return resp.status == 200 and b"OK" in resp.read()
        except OSError:
            return False

    def rss_bytes(self) -> int:
        """Resident memory of the server process now (0 when not running)."""
        if self.proc is None or not self.proc.alive():
            return 0
        for line in Path(f"/proc/{self.proc.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def kill(self) -> None:
        """SIGKILL now (a crash)."""
        if self.proc is not None:
            self.proc.end(kill=True)

    def stop(self) -> None:
        """SIGTERM, STOP_GRACE_SECONDS, then SIGKILL: the server does not finish on SIGTERM."""
        if self.proc is not None:
            from e2e.harness.procs import terminate

            terminate(self.proc.proc, STOP_GRACE_SECONDS)

    def close(self) -> None:
        """Stops the server and removes the namespace (after the process is gone: a namespace with a
        live process outlives its delete)."""
        self.stop()
        self._remove_netns()


@contextmanager
def milvus_standalone(data_dir: Path) -> Iterator[MilvusStandalone]:
    """A healthy Milvus standalone server, stopped and its netns removed when the block ends."""
    server = MilvusStandalone(data_dir)
    try:
        server.start()
        yield server
    finally:
        server.close()


def main() -> None:
    """``python -m e2e.harness.milvus_standalone install``: the cached install (CI runs it before pytest)."""
    if sys.argv[1:] != ["install"]:
        raise SystemExit("usage: python -m e2e.harness.milvus_standalone install")
    print(ensure_installed())


if __name__ == "__main__":
    main()
