"""One server of each kind for a whole test run: the first test process (a pytest-xdist worker, or the
one pytest) that asks for a kind starts it, every later one reuses it, and the run's controller ends
them all when the run ends.

Why run-wide and not per worker: a worker is ended as soon as the scheduler has no group left for it
(pytest-xdist shuts idle workers down while others still run), so a server owned by one worker's
session could not serve another's tests, and one per worker is one start per kind per worker. So a
server here is started in its own session, outside any worker's teardown, and recorded in the run's
directory (``AGENTFLEET_RUN_DIR``): its kind, its process groups and what a test needs to reach it.
The controller (the process without ``workerinput``) makes that directory before the workers start,
which inherit it through the environment, and ends every recorded server at the end of the run.

A test isolates itself on a shared server by what it names: its own namespace on the API server, its
own fleet name (key prefix) on Redis, its own collection on Milvus. A test that stops, fills or
reconfigures a server starts its own (``own_redis`` and the like), never the shared one.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from e2e.harness.procs import alive

RUN_DIR_ENV = "AGENTFLEET_RUN_DIR"
END_SECONDS = 15

# What a starter returns: the record a test reads (addresses, paths; JSON) and the server's pids,
# each the leader of its own process group (Proc(..., group=True)) or a lone process.
Started = tuple[dict[str, Any], list[int]]


def run_dir() -> Path:
    """The run's directory of shared servers. Outside a pytest run (a bench, a script) the process
    gets a directory of its own and ends its servers when it exits."""
    d = os.environ.get(RUN_DIR_ENV)
    if not d:
        d = tempfile.mkdtemp(prefix="agentfleet-run-")
        os.environ[RUN_DIR_ENV] = d
        atexit.register(end_all, Path(d))
    path = Path(d)
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (made if missing) among this machine's processes."""
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def server(kind: str, start: Callable[[Path], Started]) -> dict[str, Any]:
    """The run's server of ``kind`` (its record): started with ``start(directory)`` by the first
    process to ask, under a lock, so two workers asking at once start one. A server found dead (one
    of its pids gone) is ended and started afresh: a test never gets an address nobody answers."""
    root = run_dir()
    record_path = root / f"{kind}.json"
    with locked(root / f"{kind}.lock"):
        found = _read(record_path)
        if found is not None and all(alive(p) for p in found["pids"]):
            return found["server"]
        if found is not None:
            _end(found["pids"])
        directory = root / kind
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        record, pids = start(directory)
        record_path.write_text(json.dumps({"kind": kind, "pids": pids, "server": record, "started": time.time()}))
        return record


def kinds() -> list[str]:
    """The kinds this run has started so far."""
    return sorted(p.stem for p in run_dir().glob("*.json"))


def _signal(pid: int, sig: int) -> None:
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)  # a group leader: its children (an engine's workers) too
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _end(pids: list[int]) -> None:
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + END_SECONDS
    for pid in pids:
        while alive(pid) and time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)  # reap it when it is this process's own child
            except ChildProcessError:
                pass
            time.sleep(0.1)
        if alive(pid):
            _signal(pid, signal.SIGKILL)


def end_all(root: Path) -> None:
    """Ends every server recorded in ``root`` and removes the directory."""
    for record_path in sorted(root.glob("*.json")):
        found = _read(record_path)
        if found is not None:
            _end(found["pids"])
    shutil.rmtree(root, ignore_errors=True)


def register(config: pytest.Config) -> None:
    """On the controller (or the one pytest): make the run's directory before any worker starts, and
    end its servers when the run ends. A worker inherits the directory through the environment. A
    pytest that a test starts in turn (the tier guard's own tests do) makes a directory of its own,
    so its end never ends the servers of the run around it."""
    if hasattr(config, "workerinput") or getattr(config, "_agentfleet_shared", False):
        return
    config._agentfleet_shared = True  # type: ignore[attr-defined]  # both conftests call this
    root = Path(tempfile.mkdtemp(prefix="agentfleet-run-"))
    os.environ[RUN_DIR_ENV] = str(root)
    config.add_cleanup(lambda: end_all(root))
