"""e2e/harness/shared.py: one server of each kind per test run, whichever process asks first, ended by
the run's controller. The "server" here is a sleeping process: what is checked is the harness's
bookkeeping (one start under concurrent asks, a dead one replaced, every one ended), not a server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from e2e.harness import shared
from e2e.harness.procs import alive


def sleeper(d: Path) -> shared.Started:
    """Starts a process in its own session, and counts the starts in ``d``'s parent."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    with open(d.parent / "starts", "a") as f:
        f.write(f"{proc.pid}\n")
    time.sleep(0.3)  # a start takes a while: a second ask meanwhile must wait, not start another
    return {"pid": proc.pid}, [proc.pid]


def ask(run_dir: str) -> int:
    os.environ[shared.RUN_DIR_ENV] = run_dir
    return shared.server("sleeper", sleeper)["pid"]


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "run"
    d.mkdir()
    monkeypatch.setenv(shared.RUN_DIR_ENV, str(d))
    yield d
    shared.end_all(d)


def starts(run_dir: Path) -> list[int]:
    path = run_dir / "starts"
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def test_processes_asking_at_once_start_one_server(run_dir: Path) -> None:
    with ProcessPoolExecutor(4) as pool:
        pids = list(pool.map(ask, [str(run_dir)] * 8))
    assert len(set(pids)) == 1 and starts(run_dir) == pids[:1]
    assert alive(pids[0]), "the server outlives the process that started it"
    assert shared.kinds() == ["sleeper"]


def test_a_dead_server_is_started_afresh(run_dir: Path) -> None:
    first = ask(str(run_dir))
    os.kill(first, 9)
    while alive(first):
        time.sleep(0.05)
    second = ask(str(run_dir))
    assert second != first and starts(run_dir) == [first, second]


def test_the_run_ends_every_server_and_its_directory(run_dir: Path) -> None:
    pid = ask(str(run_dir))
    shared.end_all(run_dir)
    assert not alive(pid) and not run_dir.exists()


class Config:
    """What register reads of pytest's config: workerinput on a worker, add_cleanup."""

    def __init__(self, worker: bool = False) -> None:
        if worker:
            self.workerinput = {"workerid": "gw0"}
        self.cleanups: list = []

    def add_cleanup(self, fn) -> None:  # type: ignore[no-untyped-def]
        self.cleanups.append(fn)


def test_a_pytest_inside_a_run_gets_its_own_directory_and_ends_only_its_servers(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outer = ask(str(run_dir))
    worker = Config(worker=True)
    shared.register(worker)  # type: ignore[arg-type]
    assert os.environ[shared.RUN_DIR_ENV] == str(run_dir) and worker.cleanups == []
    nested = Config()
    shared.register(nested)  # type: ignore[arg-type]
    inner_dir = Path(os.environ[shared.RUN_DIR_ENV])
    assert inner_dir != run_dir
    inner = shared.server("sleeper", sleeper)["pid"]
    for fn in nested.cleanups:
        fn()
    assert not alive(inner) and not inner_dir.exists()
    assert alive(outer), "the nested run ended the outer run's server"
