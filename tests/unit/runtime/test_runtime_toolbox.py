"""ToolBox: concurrent calls, timeouts, failures as observations, breaker, recorded results."""

from __future__ import annotations

import asyncio
import time

from agentfleet_runtime.core.breaker import BreakerState
from agentfleet_runtime.core.types import Limits, Observation, Status, TaskRecord, ToolCall
from agentfleet_runtime.model.prompt import tool_schema
from agentfleet_runtime.tools import ToolBox, ToolError

# The deadline is computed at import, i.e. when pytest collects, which in a full run is minutes
# before these tests execute: keep it far away so the task's time budget never runs out here.
TASK = TaskRecord(
    id="t1", goal="g", status=Status.RUNNING, limits=Limits(), created_at=0, deadline=time.time() + 86400, root="t1"
)


class Fake:
    def __init__(self, name, *, delay=0.0, fail=None, side_effects=False, timeout=5.0):
        self.name, self.delay, self.fail, self.side_effects, self.timeout = name, delay, fail, side_effects, timeout
        self.description = name
        self.calls = 0

    def schema(self):
        return tool_schema(self.name, self.description, None)

    async def run(self, arguments, ctx):
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        return f"{self.name}:{ctx.idempotency_key}:{arguments}"


class Results:
    def __init__(self):
        self.saved = {}

    async def recorded_results(self, task_id, step, calls):
        return [self.saved.get((task_id, step, i)) for i in range(calls)]

    async def record_result(self, task_id, step, call, obs):
        self.saved[(task_id, step, call)] = obs


def run(coro):
    return asyncio.run(coro)


def test_calls_run_concurrently_and_failures_become_observations():
    slow_a, slow_b = Fake("a", delay=0.5), Fake("b", delay=0.5)
    bad = Fake("bad", fail=ToolError("HTTP 503"))
    boom = Fake("boom", fail=RuntimeError("bug"))
    box = ToolBox([slow_a, slow_b, bad, boom])
    calls = [
        ToolCall("1", "a", {}),
        ToolCall("2", "b", {}),
        ToolCall("3", "bad", {}),
        ToolCall("4", "boom", {}),
        ToolCall("5", "nope", {}),
    ]

    async def timed():
        t0 = time.monotonic()
        out = await box.run_step(TASK, 0, calls, TASK.deadline)
        return out, time.monotonic() - t0

    obs, took = run(timed())
    assert took < 0.9  # concurrent: 0.5 s, not 1.0 s
    assert [o.ok for o in obs] == [True, True, False, False, False]
    assert obs[0].output == "a:t1:0:0:{}"
    assert "HTTP 503" in obs[2].output and "RuntimeError: bug" in obs[3].output
    assert "unknown tool 'nope'" in obs[4].output and "available tools: a, b, bad, boom" in obs[4].output


def test_timeout_is_an_observation():
    box = ToolBox([Fake("hang", delay=10, timeout=0.1)])
    (obs,) = run(box.run_step(TASK, 0, [ToolCall("1", "hang", {})], TASK.deadline))
    assert not obs.ok and "timed out after 0.1s" in obs.output


def test_task_deadline_bounds_tool_time():
    box = ToolBox([Fake("hang", delay=10, timeout=60)])
    t0 = time.monotonic()
    (obs,) = run(box.run_step(TASK, 0, [ToolCall("1", "hang", {})], time.time() + 0.1))
    assert time.monotonic() - t0 < 1 and "timed out" in obs.output


def test_breaker_opens_and_stops_calls():
    clock = [0.0]
    bad = Fake("bad", fail=ToolError("down"))
    states = []
    box = ToolBox(
        [bad], failure_threshold=2, cooldown=30, clock=lambda: clock[0], on_breaker=lambda n, s: states.append(s)
    )
    for _ in range(3):
        run(box.run_step(TASK, 0, [ToolCall("1", "bad", {})], TASK.deadline))
    assert bad.calls == 2
    assert states[-1] is BreakerState.OPEN
    (obs,) = run(box.run_step(TASK, 0, [ToolCall("1", "bad", {})], TASK.deadline))
    assert "temporarily unavailable" in obs.output and bad.calls == 2
    clock[0] = 31
    run(box.run_step(TASK, 0, [ToolCall("1", "bad", {})], TASK.deadline))
    assert bad.calls == 3  # the half-open probe


def test_caller_errors_do_not_open_the_breaker():
    t = Fake("t", fail=ToolError("bad arguments", unhealthy=False))
    box = ToolBox([t], failure_threshold=1)
    for _ in range(3):
        run(box.run_step(TASK, 0, [ToolCall("1", "t", {})], TASK.deadline))
    assert t.calls == 3


def test_side_effect_results_are_recorded_and_reused():
    eff = Fake("eff", side_effects=True)
    results = Results()
    box = ToolBox([eff], results=results)
    calls = [ToolCall("1", "eff", {"x": 1}), ToolCall("2", "eff", {"x": 2})]
    first = run(box.run_step(TASK, 3, calls, TASK.deadline))
    assert eff.calls == 2 and set(results.saved) == {("t1", 3, 0), ("t1", 3, 1)}
    again = run(box.run_step(TASK, 3, calls, TASK.deadline))  # a resumed step
    assert eff.calls == 2 and again == first
    # Only the call without a record runs again.
    del results.saved[("t1", 3, 1)]
    run(box.run_step(TASK, 3, calls, TASK.deadline))
    assert eff.calls == 3


def test_output_is_truncated():
    class Big(Fake):
        async def run(self, arguments, ctx):
            return "x" * 1000

    box = ToolBox([Big("big")], max_observation_chars=300)
    (obs,) = run(box.run_step(TASK, 0, [ToolCall("1", "big", {})], TASK.deadline))
    assert obs.output.startswith("x" * 300) and "700 more characters cut" in obs.output


def test_observation_json_round_trip():
    o = Observation("c", "n", False, "out", 1.5)
    assert Observation.from_json(o.to_json()) == o


def test_a_spawn_tool_waits_for_its_sub_agents_as_long_as_the_task_may_run():
    # A sub-agent runs a whole agent loop: on a CPU model one step alone took over 30 s, and the old
    # 30 s default cancelled every sub-agent before its first answer.
    import math

    from agentfleet_contract.agentfleet import Tool

    assert Tool(name="delegate", type="Spawn").call_timeout() == math.inf
    assert Tool(name="delegate", type="Spawn", timeoutSeconds=120).call_timeout() == 120.0
    assert Tool(name="search", type="Retrieval").call_timeout() == 30.0
    assert "timeoutSeconds" not in Tool(name="delegate", type="Spawn").wire()  # unset stays unset on the wire
