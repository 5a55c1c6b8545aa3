"""The harness's pure helpers that every bench and the demo's report read figures through."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from e2e.harness.nodenet import forward_into_netns
from e2e.harness.ports import free_ports, port_open


def test_free_ports_are_distinct_and_closed() -> None:
    ports = free_ports(16)
    assert len(set(ports)) == 16
    assert not any(port_open(p) for p in ports)
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[0]))
        s.listen()
        assert port_open(ports[0])


def test_a_forward_carries_a_reply_that_comes_after_the_connect_timeout(tmp_path) -> None:
    # The eval's model calls go through the real-node demo's forwards and answer after tens of
    # seconds; the connect's timeout once stayed on the upstream socket and cut every such reply.
    # This process's own network namespace stands in for the node's.
    server = socket.create_server(("127.0.0.1", 0))
    host, port = server.getsockname()

    def answer_late() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(64)
            time.sleep(0.8)
            conn.sendall(b"late reply")

    threading.Thread(target=answer_late, daemon=True).start()
    with forward_into_netns("/proc/self/ns/net", host, port, connect_timeout=0.3) as local:
        with socket.create_connection(("127.0.0.1", local), timeout=5) as client:
            client.sendall(b"ask")
            assert client.recv(64) == b"late reply"
    server.close()


class _RefusingCore:
    """The CoreV1Api calls LoadingKubelet makes, on one pod; the first pod status report is refused
    (422, as the apiserver refuses a pod address that changes), the way kwok's early report made it."""

    def __init__(self, node: str) -> None:
        from types import SimpleNamespace as NS

        meta = NS(name="chat-0", uid="u1", labels={"agentfleet.io/modelreplicaset": "chat"}, deletion_timestamp=None)
        self.pod = NS(metadata=meta, spec=NS(node_name=node))
        self.reports: list[bool] = []
        self.refused = 0
        self.node_status: list[dict] = []

    def list_namespaced_pod(self, namespace: str, label_selector: str):  # noqa: ANN201 - the client's shape
        from types import SimpleNamespace as NS

        return NS(items=[self.pod])

    def patch_namespaced_pod_status(self, name: str, namespace: str, body: dict) -> None:
        from kubernetes.client.exceptions import ApiException

        if not self.refused:
            self.refused += 1
            raise ApiException(status=422, reason="Unprocessable Entity")
        ready = next(c for c in body["status"]["conditions"] if c["type"] == "Ready")
        self.reports.append(ready["status"] == "True")

    def patch_node_status(self, name: str, body: dict) -> None:
        self.node_status.append(body)

    def delete_namespaced_pod(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        raise AssertionError("nothing is deleted here")


class _Leases:
    def __init__(self) -> None:
        self.created: list[dict] = []

    def patch_namespaced_lease(self, name: str, namespace: str, body: dict) -> None:
        from kubernetes.client.exceptions import ApiException

        if not self.created:
            raise ApiException(status=404, reason="Not Found")

    def create_namespaced_lease(self, namespace: str, body: dict) -> None:
        self.created.append(body)


def test_the_loading_kubelet_loses_nothing_to_a_refused_report(tmp_path) -> None:
    """A status report the API refused is made again on the next poll, and the replica's scrape
    target is written all the same (before, a refusal in the poll that found the pod left it out of
    Prometheus for good: "none of 1 ready replicas reported fresh metrics", the set never slept)."""
    import json

    from e2e.harness.sleepwake import LoadingKubelet

    core, leases = _RefusingCore("n1"), _Leases()
    sd = tmp_path / "chat.json"
    k = LoadingKubelet(core, leases, "ns", "chat", "n1", {}, sd, load_seconds=0.5)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and core.reports[-1:] != [True]:
            time.sleep(0.05)
        assert core.refused == 1 and core.reports == [False, True], core.reports  # not Ready until loaded
        targets = json.loads(sd.read_text())
        assert [t["labels"]["pod"] for t in targets] == ["chat-0"]
        assert targets[0]["targets"] == [k.backing["chat-0"][1].removeprefix("http://")]
        # The node's kubelet: its Lease made where none was, its Ready condition kept.
        assert leases.created and leases.created[0]["spec"]["holderIdentity"] == "n1"
        assert core.node_status[0]["status"]["conditions"][0]["type"] == "Ready"
    finally:
        k.stop()


def test_poll_retries_transient_errors_and_returns_the_first_truthy_value() -> None:
    from e2e.harness.poll import poll

    seen: list[int] = []

    def ready() -> int:
        seen.append(len(seen))
        if len(seen) < 3:
            raise ConnectionRefusedError("not yet")  # an OSError: not yet
        return len(seen)

    assert poll(ready, 5, "three tries", interval=0.001) == 3


def test_poll_times_out_naming_what_it_waited_for_and_what_it_last_saw() -> None:
    from e2e.harness.poll import poll

    with pytest.raises(RuntimeError, match=r"waiting for the answer \(last error: nope\)\nlast: 42"):
        poll(lambda: (_ for _ in ()).throw(OSError("nope")), 0.05, "the answer", 0.01, last=lambda: "last: 42")


def test_a_server_that_exits_fails_its_wait_at_once_with_its_log(tmp_path) -> None:
    import sys

    from e2e.harness.procs import Proc, ProcExited

    log = tmp_path / "server.log"
    proc = Proc([sys.executable, "-c", "import sys; print('bad flag --x'); sys.exit(3)"], log=log)
    t0 = time.monotonic()
    with pytest.raises(ProcExited, match=r"exited with 3[\s\S]*bad flag --x"):
        # Every error counts as not yet here, as for Milvus: the exit must still end the wait.
        proc.wait_ready(lambda: False, 30, "the server", interval=0.01, errors=(Exception,))
    assert time.monotonic() - t0 < 10
