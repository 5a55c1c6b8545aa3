"""The harness's pure helpers that every bench and the demo's report read figures through."""

from __future__ import annotations

import math
import socket

import numpy as np
import pytest

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
