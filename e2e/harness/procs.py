"""Process runners: ``Proc``, one child of a test or bench that is always ended at teardown, and
``Procs``, the demo's local processes: started once, found again by their pid files, stopped by pid.

Each ``Procs`` process has <dir>/<name>.json (pid, command, ports, the settings it was started with) and
<dir>/<name>.log. ``ensure`` reuses a live process started with the same settings and restarts
one whose settings changed, so running the demo twice is cheap and never doubles a process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from e2e.harness.poll import TRANSIENT, PollAbort, poll
from e2e.harness.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
# Where the checkout's packages live (pyproject's setuptools `where`): the project is installed
# editable in CI, and this path makes a plain checkout work too.
SOURCE_DIRS = ("operator", "runtime", "shared", "e2e")


def source_path(extra: str | None = None) -> str:
    """A PYTHONPATH that imports this checkout's packages first, then EXTRA (an existing PYTHONPATH)."""
    return os.pathsep.join(filter(None, [*(str(ROOT / d) for d in SOURCE_DIRS), str(ROOT), extra]))


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (an exited child not yet reaped does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (our own exited child) still answers kill 0.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def terminate(proc: subprocess.Popen, timeout: float = 10, *, kill: bool = False) -> None:
    """Ends a child: SIGTERM (SIGKILL with ``kill``), then SIGKILL if it is still running after
    ``timeout`` seconds; reaped either way."""
    if proc.poll() is not None:
        return
    (proc.kill if kill else proc.terminate)()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def log_tail(path: Path, lines: int = 40, title: str | None = None) -> str:
    """The last ``lines`` lines of a log, headed by ``title`` when given, for a failure message."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError as e:
        return f"(no {title or 'log'}: {e})"
    head = f"--- {title} {path} (last {lines} lines)\n" if title else ""
    return head + "\n".join(text[-lines:])


class ProcExited(PollAbort):
    """A server's process ended while something waited for it."""


class Proc:
    """The one runner of the tests' and benches' servers: a subprocess with this checkout on its
    PYTHONPATH, its output in ``log``, started in the repository root (or ``cwd``); always ended at
    teardown.

    ``env`` is added to os.environ (and the checkout's PYTHONPATH, unless ``python_path=False``: a
    server that is no Python program); ``inherit=False``: the child sees ``env`` only (a rendered
    container's environment). ``new_session`` keeps a Ctrl-C at the terminal from reaching it (the
    operator's graceful stop is tested by our own SIGTERM). ``group``: the child leads its own
    process group and ``end`` signals the whole group (servers that fork workers, such as vLLM's
    engine core)."""

    def __init__(
        self,
        args: list[str],
        env: dict[str, str] | None = None,
        log: Path | None = None,
        *,
        python_path: bool = True,
        new_session: bool = False,
        group: bool = False,
        inherit: bool = True,
        cwd: Path | None = None,
    ) -> None:
        self.args = args
        self.log = log
        self.group = group
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        base = dict(os.environ) if inherit else {}
        if python_path and inherit:
            base["PYTHONPATH"] = source_path(os.environ.get("PYTHONPATH"))
        self.proc = subprocess.Popen(
            args,
            env={**base, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd or ROOT,
            start_new_session=new_session or group,
        )
        if log:
            out.close()  # the child holds its own descriptor

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def alive(self) -> bool:
        return self.proc.poll() is None

    running = alive  # as ports.wait_http watches a server

    def logs(self) -> str:
        return self.log.read_text(errors="replace") if self.log and self.log.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return log_tail(self.log, lines) if self.log else "(no log)"

    def wait_ready(
        self,
        ready: Callable[[], Any],
        timeout: float,
        desc: str,
        *,
        interval: float = 0.2,
        errors: tuple[type[BaseException], ...] = TRANSIENT,
        fail: Callable[[str], Any] | None = None,
    ) -> Any:
        """``poll`` ``ready`` until it holds; ProcExited at once when the process ends meanwhile.
        Both failures carry the log's tail."""

        def check() -> Any:
            if not self.alive():
                raise ProcExited(f"{desc}: {self.args[0]} exited with {self.proc.returncode}\n{self.tail()}")
            return ready()

        return poll(check, timeout, desc, interval, fail, errors=errors, last=self.tail)

    def end(self, kill: bool = True, timeout: float = 30) -> None:
        if not self.group:
            terminate(self.proc, timeout, kill=kill)
            return
        if self.proc.poll() is None:
            _signal_group(self.proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(self.proc.pid, signal.SIGKILL)  # children the leader left behind, too
        self.proc.wait(10)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


class Procs:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)

    def _meta_path(self, name: str) -> Path:
        return self.dir / f"{name}.json"

    def log_path(self, name: str) -> Path:
        return self.dir / f"{name}.log"

    def get(self, name: str) -> dict[str, Any] | None:
        """The record of a live process, or None (a stale record is removed)."""
        path = self._meta_path(name)
        try:
            meta = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if alive(int(meta["pid"])):
            return meta
        path.unlink(missing_ok=True)
        return None

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.dir.glob("*.json"))

    def ensure(
        self,
        name: str,
        settings: dict[str, Any],
        build: Callable[[dict[str, int]], list[str]],
        ports: list[str],
        ready: Callable[[dict[str, Any]], bool],
        *,
        env: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> tuple[dict[str, Any], bool]:
        """(record, reused). ``build`` turns {port name: number} into the command line."""
        meta = self.get(name)
        if meta is not None and meta.get("settings") == settings and ready(meta):
            return meta, True
        if meta is not None:
            self.stop(name)
        chosen = {p: free_port() for p in ports}
        cmd = build(chosen)
        log = open(self.log_path(name), "ab")  # noqa: SIM115 - handed to the child
        log.write(f"\n===== {time.strftime('%H:%M:%S')} {' '.join(cmd)}\n".encode())
        log.flush()
        # Own session: the process outlives this driver (up.sh leaves the fleet running) and a
        # Ctrl-C at the terminal does not reach it.
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
        )
        log.close()
        meta = {
            "name": name,
            "pid": proc.pid,
            "cmd": cmd,
            "ports": chosen,
            "settings": settings,
            "started": time.time(),
        }
        self._meta_path(name).write_text(json.dumps(meta, indent=1))

        def started() -> bool:
            if proc.poll() is not None:
                self._meta_path(name).unlink(missing_ok=True)
                raise ProcExited(
                    f"{name} exited with {proc.returncode} while starting; log "
                    f"{self.log_path(name)}:\n{self.tail(name)}"
                )
            return ready(meta)

        try:
            where = f"log {self.log_path(name)}"
            poll(started, timeout, f"{name} to be ready", 0.2, last=lambda: f"{where}:\n{self.tail(name)}")
        except ProcExited:
            raise
        except RuntimeError:
            self.stop(name)
            raise
        return meta, False

    def stop(self, name: str, timeout: float = 20) -> bool:
        """SIGTERM the process (SIGKILL after ``timeout``); True when one was running."""
        meta = self.get(name)
        self._meta_path(name).unlink(missing_ok=True)
        if meta is None:
            return False
        pid = int(meta["pid"])
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return False

        def ended() -> bool:
            try:
                os.waitpid(pid, os.WNOHANG)  # our own child: reap it
            except ChildProcessError:
                pass
            return not alive(pid)

        try:
            poll(ended, timeout, f"{name} (pid {pid}) to end after SIGTERM", 0.1)
        except RuntimeError:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        return True

    def tail(self, name: str, lines: int = 40) -> str:
        return log_tail(self.log_path(name), lines)
