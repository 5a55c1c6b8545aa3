"""A private Milvus Lite gRPC server (``python -m milvus_lite server``) on 127.0.0.1."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from e2e.harness import shared
from e2e.harness.installers import INGEST_PACKAGES, InstallError, ensure_ingest_packages
from e2e.harness.ports import free_port
from e2e.harness.procs import Proc

MILVUS_START_SECONDS = 60


class MilvusLiteServer:
    """One Milvus Lite gRPC server process on 127.0.0.1, its data and log beside each other."""

    def __init__(self, data_dir: Path, start_seconds: float = MILVUS_START_SECONDS, own_session: bool = False) -> None:
        self.start_seconds = start_seconds
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / "milvus-lite.log"
        self.log_path.write_bytes(b"")
        self.runner = Proc(
            [
                sys.executable,
                "-m",
                "milvus_lite",
                "server",
                "--data-dir",
                str(data_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            log=self.log_path,
            group=own_session,  # outlives the process that started it (run_wide)
        )
        self.proc = self.runner.proc

    def wait_ready(self) -> None:
        from pymilvus import MilvusClient

        def answers() -> bool:
            probe = MilvusClient(uri=self.uri, timeout=5, dedicated=True)
            probe.get_server_version(timeout=5)
            probe.close()
            return True

        try:
            # Any error of the client is "not up yet" (gRPC's own types among them).
            self.runner.wait_ready(
                answers, self.start_seconds, f"milvus-lite on {self.uri}", interval=0.3, errors=(Exception,)
            )
        except RuntimeError as e:
            self.stop()
            raise InstallError(f"milvus-lite server did not come up: {e}") from None

    def stop(self) -> None:
        self.runner.end(kill=False, timeout=15)


@contextmanager
def milvus_lite(
    data_dir: Path, packages: tuple[str, ...] = tuple(INGEST_PACKAGES), start_seconds: float = MILVUS_START_SECONDS
) -> Iterator[MilvusLiteServer]:
    """A ready Milvus Lite server in ``data_dir`` (``packages`` installed first when missing),
    stopped when the block ends."""
    ensure_ingest_packages(packages)
    server = MilvusLiteServer(data_dir, start_seconds)
    server.wait_ready()
    try:
        yield server
    finally:
        server.stop()


def run_wide() -> str:
    """The test run's one Milvus Lite server's URI (e2e/harness/shared.py): each test works in
    collections (or a database) of its own names."""

    def started(d: Path) -> shared.Started:
        ensure_ingest_packages(tuple(INGEST_PACKAGES))
        server = MilvusLiteServer(d / "data", start_seconds=90, own_session=True)
        server.wait_ready()
        return {"uri": server.uri}, [server.proc.pid]

    return shared.server("milvus-lite", started)["uri"]
