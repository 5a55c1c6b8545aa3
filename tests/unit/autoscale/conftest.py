"""Fixtures shared by the autoscale unit tests."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest


@pytest.fixture(scope="module")
def bench() -> Any:
    """The autoscale benchmark: its parts (e2e/bench/autoscale/) and its command line
    (e2e/bench/autoscale_bench.py), as one namespace."""
    from e2e.bench import autoscale_bench
    from e2e.bench.autoscale import fleet, policies, report, run, workload

    parts = (workload, fleet, policies, run, report, autoscale_bench)
    return SimpleNamespace(**{k: v for m in parts for k, v in vars(m).items() if not k.startswith("__")})
