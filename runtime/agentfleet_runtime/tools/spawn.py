"""Spawn tool: start sub-agents, wait for them (fan-in) and return their answers.

Child ids are derived from (parent, step, call, index), so a resumed step finds the children it
already started instead of starting them again. The fan-in deadline counts from the children's
creation, so a resume does not restart it either. Children still running at the deadline are
cancelled and reported as partial.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Sequence
from typing import Any, Protocol

from agentfleet_runtime.core import tracing
from agentfleet_runtime.core.budget import child_deadline
from agentfleet_runtime.core.types import Status, TaskRecord
from agentfleet_runtime.model.prompt import tool_schema
from agentfleet_runtime.store.tasks import TaskStore
from agentfleet_runtime.tools.base import ToolContext, ToolError
from agentfleet_runtime.tools.fanout import child_id, goals_of

PARAMETERS = {
    "type": "object",
    "properties": {
        "goals": {
            "type": "array",
            "items": {"type": "string"},
            "description": "One goal per sub-agent; they run in parallel and their answers come back together.",
        }
    },
    "required": ["goals"],
}


class FanIn(Protocol):
    async def wait_for_tasks(self, task_ids: Sequence[str], until: float) -> None:
        """Return when every task has ended or at ``until`` (wall clock), whichever is first."""
        ...

    def released_slot(self) -> contextlib.AbstractAsyncContextManager[None]:
        """While a parent waits, its worker slot is lent out: otherwise parents waiting for
        children could fill every slot and the children would never run."""
        ...


class SpawnTool:
    side_effects = False
    spawns = True  # the ToolBox splits a step's fan-out among such tools

    def __init__(
        self, name: str, store: TaskStore, fan_in: FanIn, *, description: str = "", timeout: float = 300.0
    ) -> None:
        self.name = name
        self.store = store
        self.fan_in = fan_in
        self.description = (
            description or "Starts sub-agents that work on sub-goals in parallel and returns their answers."
        )
        self.timeout = timeout  # the fan-in timeout

    def schema(self) -> dict[str, Any]:
        return tool_schema(self.name, self.description, PARAMETERS)

    async def run(self, arguments: dict[str, Any], ctx: ToolContext, quota: int | None = None) -> str:
        parent = ctx.task
        limits = parent.limits
        if parent.depth >= limits.max_depth:
            raise ToolError(
                (
                    f"sub-agents are not allowed here: this task is at depth {parent.depth} and maxDepth is "
                    f"{limits.max_depth}"
                ),
                unhealthy=False,
            )
        goals = goals_of(arguments)
        if not goals:
            raise ToolError(f'{self.name} needs "goals": a list of sub-goal strings', unhealthy=False)
        allowed = limits.max_fan_out if quota is None else max(0, quota)
        refused = goals[allowed:]
        goals = goals[:allowed]
        if not goals:
            raise ToolError(
                f"no sub-agents started: this step already used its fan-out of {limits.max_fan_out}", unhealthy=False
            )

        now = time.time()
        ids = [child_id(parent.id, ctx.step, ctx.call_index, i) for i in range(len(goals))]
        children = []
        for cid, goal in zip(ids, goals, strict=True):
            children.append(
                TaskRecord(
                    id=cid,
                    goal=goal,
                    status=Status.QUEUED,
                    limits=limits,
                    created_at=now,
                    deadline=child_deadline(parent.deadline, now, limits.timeout_seconds),
                    root=parent.root,
                    parent=parent.id,
                    depth=parent.depth + 1,
                    tenant=parent.tenant,  # its spend and rate limit are the tenant's
                    submitter=parent.submitter,  # whoever submitted the root cannot approve a child's call
                    trace=tracing.traceparent(),  # its spans join the parent's trace under this call's span
                )
            )
        # Sequential on purpose: the children list keeps the order of the goals.
        for child in children:
            await self.store.submit(child, parent_children_key=self.store.keys.children(parent.id))

        created = await self.store.r.hget(self.store.keys.task(ids[0]), "created_at")
        until = min(float(created or now) + self.timeout, parent.deadline)
        async with self.fan_in.released_slot():
            await self.fan_in.wait_for_tasks(ids, until)
        states = await self.store.statuses(ids)

        results = []
        late = []
        for cid, goal, st in zip(ids, goals, states, strict=True):
            status = (st or {}).get("status", "missing")
            if status in (Status.DONE, Status.CANCELLED, Status.DEAD):
                results.append(
                    {
                        "task": cid,
                        "goal": goal,
                        "status": status,
                        "reason": st.get("reason"),
                        "answer": st.get("answer", ""),
                        "partial": status != Status.DONE,
                    }
                )
            else:
                late.append(cid)
                results.append({"task": cid, "goal": goal, "status": "timeout", "answer": "", "partial": True})
        for cid in late:
            await self.store.cancel_tree(cid)
        done = sum(1 for r in results if not r["partial"])
        head = f"{done} of {len(results)} sub-agents finished"
        if late:
            within = f"within {self.timeout:.0f}s" if math.isfinite(self.timeout) else "before the task's deadline"
            head += f"; {len(late)} did not finish {within} and were cancelled (partial results)"
        if refused:
            head += f"; {len(refused)} goal(s) refused: at most {limits.max_fan_out} sub-agents per step"
        return head + "\n" + json.dumps(results, ensure_ascii=False)
