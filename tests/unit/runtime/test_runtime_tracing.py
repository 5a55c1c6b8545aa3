"""tracing.py's pure parts: what tracing off leaves untouched, and which stored contexts are used."""

from __future__ import annotations

import pytest
from agentfleet_contract.runtime_config import TracingSettings

from agentfleet_runtime.core import tracing
from agentfleet_runtime.core.types import Limits, Status, TaskRecord


def test_tracing_off_wraps_nothing_and_costs_a_shared_nullcontext() -> None:
    model, tools = object(), [object()]
    assert tracing.configure(None, "f") is None and tracing.configure(TracingSettings(), "f") is None
    assert tracing.traced_model(model, None, "m") is model and tracing.traced_tools(tools, None) is tools
    assert tracing.task(None, object()) is tracing.task(None, object())  # one shared no-op, nothing built per task
    assert tracing.attempt("r", "http://r:8000/v1") is tracing.task(None, None)  # outside a chat span


@pytest.mark.parametrize(
    ("value", "used"),
    [
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", True),
        ("00-00000000000000000000000000000000-b7ad6b7169203331-01", False),  # invalid trace id
        ("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", False),  # invalid span id
        ("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01", False),  # upper case is not W3C
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\n", False),  # "$" would let a newline through
        ("", False),
    ],
)
def test_only_a_well_formed_traceparent_is_continued(value: str, used: bool) -> None:
    assert bool(tracing.TRACEPARENT.match(value)) is used
    assert (tracing._parent(value) is not None) is used


def test_the_trace_travels_with_the_task_record() -> None:
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    rec = TaskRecord("t1", "g", Status.QUEUED, Limits(), 1.0, 2.0, "t1", trace=tp)
    assert TaskRecord.from_hash(rec.to_hash()).trace == tp
    assert (
        TaskRecord.from_hash({k: v for k, v in rec.to_hash().items() if k != "trace"}).trace == ""
    )  # records written before tracing


def test_collector_headers_come_from_a_json_object_of_strings(tmp_path) -> None:
    good = tmp_path / "h"
    good.write_text('{"Authorization": "Bearer x"}')
    assert tracing.read_headers(str(good)) == {"Authorization": "Bearer x"}
    bad = tmp_path / "b"
    bad.write_text('{"n": 1}')
    with pytest.raises(ValueError, match="JSON object of strings"):
        tracing.read_headers(str(bad))
