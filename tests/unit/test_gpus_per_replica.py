"""A replica's GPU count is computed in one place, ``gpus_per_replica`` in the contract's engine.py
(issue 77, item 4): the status column, the pod template overlay's probe, the forecast's price, the Ray
wait, placement and the CLI's assessment each multiplied tensor by pipeline parallel size on their own,
and the capacity model's ServingConfig did too for the layouts it weighs."""

from __future__ import annotations

import re
from pathlib import Path

from agentfleet_contract.modelreplicaset.engine import Engine

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("operator", "runtime", "shared")
# The sizes under any of their names (the spec's ``*_size``, the capacity model's plain ones), either way round.
PRODUCT_OF_SIZES = re.compile(
    r"tensor_parallel\w*\s*\*\s*[\w.]*pipeline_parallel|pipeline_parallel\w*\s*\*\s*[\w.]*tensor_parallel"
    r"|pipeline_parallel_size\s*\*"
)


def test_gpus_per_replica_is_tensor_times_pipeline_parallel():
    assert Engine().gpus_per_replica == 1
    assert Engine(tensorParallelSize=4, pipelineParallelSize=2).gpus_per_replica == 8


def test_no_other_module_multiplies_the_parallel_sizes():
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for top in PRODUCT
        for path in sorted((ROOT / top).rglob("*.py"))
        if path.name != "engine.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if PRODUCT_OF_SIZES.search(line)
    ]
    assert not found, f"use gpus_per_replica (agentfleet_contract.modelreplicaset): {found}"
