"""Fixtures shared by the autoscale unit tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[3] / "e2e" / "bench" / "autoscale_bench.py"


@pytest.fixture(scope="module")
def bench() -> Any:
    """e2e/bench/autoscale_bench.py, loaded as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("autoscale_bench_under_test", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
