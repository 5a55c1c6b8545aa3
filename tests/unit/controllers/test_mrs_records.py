"""The typed records a ModelReplicaSet pass hands between its steps: a status.placements record
passes through unchanged unless a step changes it, and what decide returns is frozen."""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import pytest

from agentfleet.controllers.modelreplicaset.deciding import Plan
from agentfleet.controllers.modelreplicaset.judging import Judged
from agentfleet.controllers.modelreplicaset.records import Acted, Observed, ReplicaRecord

WIRE = {
    "name": "llama-abc12-0",
    "nodes": ["gpu-1", "gpu-2"],
    "gpus": 16,
    "gpusPerNode": 8,
    "block": "rack-a",
    "phase": "Ready",
    "endpoint": "10.0.0.7:8000",
    "restarts": 2,
    "adapters": [],
    "failedAt": "2026-11-26T10:00:00.000000Z",
    "fromANewerOperator": {"kept": True},
}


def test_a_record_passes_through_unchanged() -> None:
    rec = ReplicaRecord.from_wire(WIRE)
    assert rec.nodes == ("gpu-1", "gpu-2") and rec.gpus_per_node == 8 and rec.adapters == ()
    assert rec.wire() == WIRE


def test_unrecorded_fields_stay_unrecorded_and_a_step_changes_only_its_fields() -> None:
    sparse = {"name": "llama-abc12-1", "phase": "Pending", "zone": None}
    assert ReplicaRecord.from_wire(sparse).wire() == {"name": "llama-abc12-1", "phase": "Pending"}
    drained = replace(ReplicaRecord.from_wire(WIRE), phase="Draining", endpoint=None)
    assert drained.wire() == {**{k: v for k, v in WIRE.items() if k != "endpoint"}, "phase": "Draining"}


@pytest.mark.parametrize("record", [Observed, Judged, Plan, Acted, ReplicaRecord])
def test_what_the_steps_hand_on_is_frozen(record: type) -> None:
    assert dataclasses.is_dataclass(record) and record.__dataclass_params__.frozen  # type: ignore[attr-defined]
