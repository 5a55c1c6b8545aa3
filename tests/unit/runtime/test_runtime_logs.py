"""Structured logs carry the task id and step set by the loop."""

from __future__ import annotations

import json
import logging

from agentfleet_contract.fleet_keys import Keys

from agentfleet_runtime.core.logs import JsonFormatter, step_var, task_id_var


def test_json_lines_with_task_context():
    fmt = JsonFormatter("worker")
    rec = logging.LogRecord("agentfleet_runtime.loop.agent", logging.INFO, __file__, 1, "step done %s", ("x",), None)
    rec.tokens = 42
    t1, s1 = task_id_var.set("task-1"), step_var.set(3)
    try:
        out = json.loads(fmt.format(rec))
    finally:
        task_id_var.reset(t1)
        step_var.reset(s1)
    assert out["msg"] == "step done x" and out["task_id"] == "task-1" and out["step"] == 3
    assert out["tokens"] == 42 and out["component"] == "worker" and out["level"] == "info"
    assert "task_id" not in json.loads(fmt.format(rec))


def test_keys_are_prefixed_and_caller_keys_hashed():
    k = Keys("f")
    assert k.stream == "af:f:tasks" and k.task("x") == "af:f:t:x" and k.tool_result("x", 1, 2) == "af:f:t:x:r:1:2"
    assert k.submission("a" * 10_000).startswith("af:f:submit:") and len(k.submission("a" * 10_000)) < 60


def test_step_reference_is_read_when_the_record_is_formatted():
    from agentfleet_runtime.core.logs import StepRef

    fmt = JsonFormatter("worker")
    ref = StepRef(0)
    token = step_var.set(ref)
    try:
        ref.n = 4  # the loop moves on without setting the context variable again
        out = json.loads(fmt.format(logging.makeLogRecord({"msg": "x", "levelname": "INFO", "name": "t"})))
        assert out["step"] == 4
        ref.n = None  # before the first step: no step field
        assert "step" not in json.loads(
            fmt.format(logging.makeLogRecord({"msg": "x", "levelname": "INFO", "name": "t"}))
        )
    finally:
        step_var.reset(token)
