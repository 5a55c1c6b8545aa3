"""The harness's pure helpers that every bench and the demo's report read figures through."""

from __future__ import annotations

import math
import socket
import threading
import time

import numpy as np
import pytest

from e2e.harness.nodenet import forward_into_netns
from e2e.harness.ports import free_ports, port_open
from e2e.harness.stats import interpolated_percentile, percentile


def test_percentile_is_the_nearest_rank_a_value_that_occurred() -> None:
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.0
    assert percentile(list(range(1, 21)), 95) == 19
    assert percentile(list(range(1, 21)), 96) == 20
    assert percentile([5.0], 1) == 5.0
    assert percentile(list(range(1, 101)), 99) == 99
    assert percentile(list(range(1, 101)), 100) == 100


def test_percentile_of_nothing_is_what_the_caller_asks_for() -> None:
    assert math.isnan(percentile([], 95))  # type: ignore[arg-type]
    assert percentile([], 95, empty=None) is None


@pytest.mark.parametrize("q", [0, 5, 50, 90, 95, 99, 100])
def test_interpolated_percentile_is_numpys_linear_method(q: float) -> None:
    values = [0.3, 7.1, 2.2, 9.9, 4.4, 1.0, 5.5]
    assert interpolated_percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert math.isnan(interpolated_percentile([], q))


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
