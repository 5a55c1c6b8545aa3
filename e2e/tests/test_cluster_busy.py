"""E2E check of e2e/cluster/cluster.sh itself on a busy machine.

Pins: `up` identifies the processes it starts by (pid, start time), not by their command line,
so a child that has not yet exec'd its binary when the first health poll runs (seconds, on a
loaded machine) is neither declared dead nor left running after `down`.

How the slow exec is made to happen on any machine: a CPU hog (HOGS_PER_CPU busy processes in
the test's own session, so in cluster.sh's scheduling group) loads the cores as the issue saw,
and the kube-apiserver's log file is a FIFO that gets its reader only EXEC_DELAY_S after the
apiserver was forked: the forked shell blocks opening its log (the `>>` redirection, before
the exec) exactly as a starved child sits before its exec. The reader then copies the log on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from e2e.harness.cluster import CLUSTER_SH, Cluster
from e2e.harness.ports import free_ports

pytestmark = pytest.mark.e2e

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
PORT_VARS = (
    "AGENTFLEET_APISERVER_PORT",
    "AGENTFLEET_ETCD_PORT",
    "AGENTFLEET_ETCD_PEER_PORT",
    "AGENTFLEET_KCM_PORT",
    "AGENTFLEET_SCHEDULER_PORT",
    "AGENTFLEET_KWOK_PORT",
)
HOGS_PER_CPU = 4
EXEC_DELAY_S = 3.0


class SlowExec:
    """Makes the kube-apiserver's fork-to-exec take EXEC_DELAY_S (see the module doc)."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.reader: subprocess.Popen | None = None
        self.error: str | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        logs, run = self.state / "logs", self.state / "run"
        fifo = logs / "kube-apiserver.log"
        deadline = time.monotonic() + 300
        while not logs.is_dir() and time.monotonic() < deadline:
            time.sleep(0.005)
        try:
            os.mkfifo(fifo)  # before etcd is healthy, so before the apiserver is forked
        except OSError as e:
            self.error = f"could not make {fifo} a FIFO: {e}"
            return
        while not (run / "kube-apiserver.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(EXEC_DELAY_S)
        with open(logs / "kube-apiserver.copy.log", "ab") as out:
            self.reader = subprocess.Popen(["cat", str(fifo)], stdout=out)

    def released(self) -> None:
        """Returns once the apiserver's log has its reader (the fork may go on to its exec)."""
        self.thread.join(300)

    def close(self) -> None:
        if self.reader is not None:
            self.reader.kill()
            self.reader.wait()


def _processes_naming(path: str) -> dict[int, str]:
    """Every live process whose command line mentions path (the state dir is
    in each component's flags), so an orphan is found without any pid file."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(") ", 1)[1][0]
        except (OSError, IndexError):
            continue
        if path in cmdline and state not in "ZX":
            found[int(entry.name)] = cmdline[:200]
    return found


def _run(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLUSTER_SH), *args], capture_output=True, text=True, env=env, timeout=timeout)


def test_cluster_starts_and_stops_beside_a_cpu_hog(cluster: Cluster, tmp_path: Path) -> None:
    # `cluster` is requested so the binaries are built; this test starts a
    # second cluster of its own in its own state dir and on free ports.
    state = str(tmp_path / "busy-cluster")
    # No real node in this second cluster: the session's cluster runs one already, and what this
    # test checks is the control plane's start and stop under load (e2e/tests/test_realnode.py owns the
    # node; a second kubelet beside the first exited while waiting to be Ready).
    env = dict(os.environ, AGENTFLEET_CLUSTER_DIR=state, AGENTFLEET_PYTHON=sys.executable, AGENTFLEET_REAL_NODE="0")
    env.update({var: str(port) for var, port in zip(PORT_VARS, free_ports(len(PORT_VARS)), strict=True)})
    hogs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(HOGS_PER_CPU * (os.cpu_count() or 1))
    ]
    up = None
    slow = SlowExec(Path(state))
    try:
        time.sleep(1)  # let the hogs take the cores before cluster.sh forks anything
        up = _run(["up"], env, timeout=900)
        started = {c: int(Path(state, "run", f"{c}.pid").read_text()) for c in COMPONENTS} if up.returncode == 0 else {}
        runs = {c: Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode() for c, pid in started.items()}
        status = _run(["status"], env, timeout=120)
    finally:
        for hog in hogs:
            hog.send_signal(signal.SIGKILL)
        for hog in hogs:
            hog.wait()
        slow.released()  # a start that `up` gave up on execs now, as it did in the issue
        down = _run(["down"], env, timeout=300)
        time.sleep(2)  # what `down` missed has exec'd by now
        orphans = _processes_naming(state)
        for pid in orphans:  # what `down` could not find: stop it so it does not outlive the test
            os.kill(pid, signal.SIGKILL)
        slow.close()
    assert slow.error is None, slow.error
    assert up is not None
    assert up.returncode == 0, f"cluster.sh up failed beside a CPU hog:\n{up.stderr[-4000:]}"
    # The recorded pids are the binaries themselves (their exec was waited for).
    assert runs == {c: str(Path(cluster.bin_dir) / c) for c in COMPONENTS}, runs
    assert status.returncode == 0 and all(f"{c}: running" in status.stdout for c in COMPONENTS), status.stdout
    assert down.returncode == 0, down.stderr[-4000:]
    # `down` stopped everything `up` started: nothing naming the state dir ran on after it.
    assert not orphans, f"processes of the stopped cluster still ran: {orphans}"
