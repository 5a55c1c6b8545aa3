"""The AgentFleet controller's Redis probe against real sockets: whatever answers (or not) at
spec.redis.url, status says the same thing, and never what the remote end said. Otherwise anyone
who may create an AgentFleet could use the operator to scan ports and read service banners inside
the cluster (issue 39)."""

from __future__ import annotations

import copy
import shutil
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from agentfleet.controllers import agentfleet as ctl
from agentfleet.reconcile.events import EventRecorder
from e2e.harness.ports import free_port, port_open
from e2e.harness.procs import Proc

BANNER = b"-ERR internal-billing-db v9.1 ready; secret-hint=hunter2\r\n"


@pytest.fixture
def banner_server() -> Iterator[int]:
    """A TCP service that is not Redis: it answers every connection with its own banner."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    conn.recv(1024)
                    conn.sendall(BANNER)
                except OSError:
                    pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join(2)
    srv.close()


@pytest.fixture
def redis_with_password(tmp_path) -> Iterator[int]:
    binary = shutil.which("redis-server")
    if binary is None:
        from e2e.harness.installers import ensure_redis_server

        binary = ensure_redis_server()
    port = free_port()
    proc = Proc(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--requirepass",
            "right",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        python_path=False,
    )
    proc.wait_ready(lambda: port_open(port), 10, f"redis-server on {port}", interval=0.05)
    yield port
    proc.end()


class Kube:
    def __init__(self) -> None:
        self.status: dict[str, Any] = {}
        self.events: list[str] = []

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        if kind == "ModelReplicaSet":
            return {"metadata": {"name": name}, "spec": {"model": {"name": "org/m"}}, "status": {"conditions": []}}
        if kind == "Secret":
            import base64

            return {
                "metadata": {"name": name, "labels": {"agentfleet.io/consent": "true"}},
                "data": {"pw": base64.b64encode(b"wrong").decode()},
            }
        return None

    def apply(self, obj: dict[str, Any], *, force: bool = True) -> dict[str, Any]:
        return obj

    def apply_status(self, obj: dict[str, Any], *, manager: str) -> dict[str, Any]:
        self.status = obj["status"]
        return obj

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        return body

    def event(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append(message)


def redis_ready_message(url: str, *, password: bool = False) -> tuple[str, list[str]]:
    kube = Kube()
    spec: dict[str, Any] = {"modelRef": {"name": "m"}, "redis": {"url": url}}
    if password:
        spec["redis"]["passwordSecretRef"] = {"name": "pw", "key": "pw"}
    obj = {
        "apiVersion": "agentfleet.io/v1alpha1",
        "kind": "AgentFleet",
        "metadata": {"name": "f", "namespace": "ns", "uid": "u", "generation": 1},
        "spec": spec,
    }
    ctl.AgentFleetPass(kube, EventRecorder(kube), copy.deepcopy(obj)).run()  # type: ignore[arg-type]
    cond = next(c for c in kube.status["conditions"] if c["type"] == "RedisReady")
    assert cond["status"] == "False" and cond["reason"] == "RedisUnreachable"
    return cond["message"].replace(url, "URL"), kube.events


def test_status_is_the_same_for_a_closed_port_a_foreign_service_and_a_wrong_password(
    banner_server: int, redis_with_password: int
) -> None:
    closed, _ = redis_ready_message(f"redis://127.0.0.1:{free_port()}/0")
    foreign, events = redis_ready_message(f"redis://127.0.0.1:{banner_server}/0")
    wrong, _ = redis_ready_message(f"redis://127.0.0.1:{redis_with_password}/0", password=True)
    assert closed == foreign == wrong, (closed, foreign, wrong)
    for text in (foreign, *events):
        assert "billing" not in text and "hunter2" not in text and "ERR" not in text
