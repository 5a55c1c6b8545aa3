"""No side effects while judged (issue 76, finding 4): in a task of the evaluation gate (tenant
agentfleet-gate, which only the gate's runner files under), a side-effect tool of either version
is not called, the model reads that it was not and what it would have called, and a call that
needs a person's approval never reaches a reviewer; with spec.rollout.evaluation.sideEffects
DryRunHeader an HTTP tool is called marked as a dry run. A tenant's task calls them as always."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from agentfleet_contract.gate import DRY_RUN_HEADER, SIDE_EFFECTS_METADATA
from agentfleet_contract.runtime_config import GATE_TENANT
from aiohttp import web

from agentfleet_runtime.core.types import Limits, Status, TaskRecord, ToolCall
from agentfleet_runtime.model.prompt import tool_schema
from agentfleet_runtime.tools import ToolBox
from agentfleet_runtime.tools.http import HTTPTool

TENANT_TASK = TaskRecord(
    id="t1",
    goal="Refund order 77",
    status=Status.RUNNING,
    limits=Limits(),
    created_at=0,
    deadline=time.time() + 86400,
    root="t1",
    tenant="acme",
)
GATE_TASK = replace(TENANT_TASK, tenant=GATE_TENANT, metadata={"gate": "f-gate-1", SIDE_EFFECTS_METADATA: "Skip"})
PAY = ToolCall("c1", "pay", {"order": 77, "amount": 5000})


class Tool:
    def __init__(self, name: str, *, side_effects: bool = False) -> None:
        self.name, self.description, self.timeout, self.side_effects = name, name, 5.0, side_effects
        self.calls: list[dict] = []

    def schema(self):
        return tool_schema(self.name, self.description, None)

    async def run(self, arguments, ctx):
        self.calls.append(arguments)
        return f"{self.name} done"


class Reviewers:
    """An approvals gate whose reviewers must never be asked during an evaluation."""

    tools = frozenset({"wire"})

    def gated(self, calls):
        return [i for i, c in enumerate(calls) if c.name in self.tools]

    async def verdicts(self, task, step, calls, gated):
        raise AssertionError("a gate task's call reached the reviewers")


def test_a_gate_task_calls_no_side_effect_tool_and_the_model_reads_what_it_would_have_called():
    pay, lookup = Tool("pay", side_effects=True), Tool("lookup")
    box = ToolBox([pay, lookup])
    obs = asyncio.run(box.run_step(GATE_TASK, 0, [PAY, ToolCall("c2", "lookup", {"order": 77})], GATE_TASK.deadline))
    assert pay.calls == [] and lookup.calls == [{"order": 77}]
    assert not obs[0].ok and "pay was not called" in obs[0].output and "evaluation" in obs[0].output
    assert '"amount": 5000' in obs[0].output and '"order": 77' in obs[0].output  # the intended call
    assert obs[1].ok and obs[1].output == "lookup done"


def test_a_tenants_task_calls_the_side_effect_tool_as_always():
    pay = Tool("pay", side_effects=True)
    (obs,) = asyncio.run(ToolBox([pay]).run_step(TENANT_TASK, 0, [PAY], TENANT_TASK.deadline))
    assert pay.calls == [{"order": 77, "amount": 5000}] and obs.ok


def test_a_call_that_needs_approval_never_reaches_a_reviewer_in_a_gate_task():
    wire = Tool("wire")
    box = ToolBox([wire], gate=Reviewers())
    (obs,) = asyncio.run(box.run_step(GATE_TASK, 0, [ToolCall("c1", "wire", {"to": "x"})], GATE_TASK.deadline))
    assert wire.calls == [] and not obs.ok and "approval" in obs.output


def test_a_sub_agent_of_a_gate_task_without_a_mode_skips():
    pay = Tool("pay", side_effects=True)
    child = replace(GATE_TASK, id="t2", parent="t1", metadata={})
    (obs,) = asyncio.run(ToolBox([pay]).run_step(child, 0, [PAY], child.deadline))
    assert pay.calls == [] and "was not called" in obs.output


def test_dry_run_header_calls_an_http_tool_marked_as_a_dry_run():
    seen: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(text="refund simulated")

    async def body() -> tuple:
        app = web.Application()
        app.router.add_post("/pay", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        tool = HTTPTool("pay", f"http://127.0.0.1:{port}/pay", side_effects=True, denied=())
        box = ToolBox([tool])
        try:
            dry = replace(GATE_TASK, metadata={SIDE_EFFECTS_METADATA: "DryRunHeader"})
            marked = await box.run_step(dry, 0, [PAY], dry.deadline)
            skipped = await box.run_step(GATE_TASK, 1, [PAY], GATE_TASK.deadline)
            plain = await box.run_step(TENANT_TASK, 0, [PAY], TENANT_TASK.deadline)
            return marked, skipped, plain
        finally:
            await box.close()
            await runner.cleanup()

    marked, skipped, plain = asyncio.run(body())
    assert marked[0].ok and marked[0].output == "refund simulated"
    assert "was not called" in skipped[0].output  # Skip: the endpoint is never reached
    assert len(seen) == 2 and seen[0].get(DRY_RUN_HEADER) == "true"
    assert DRY_RUN_HEADER not in seen[1]  # a tenant's call is no dry run
