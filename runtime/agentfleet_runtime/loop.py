"""The agent loop of one task: prompt -> model -> tool calls -> observations, checkpointed per step.

A step is checkpointed twice: once with the model's reply (``plan``) and once with its tools'
observations (``complete``). A worker that resumes a task after a crash therefore never asks the
model again for a step it already has, and re-runs only the tools of an unfinished step (with
recorded results and idempotency keys for tools with side effects).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from agentfleet_runtime import metrics, timeouts
from agentfleet_runtime.budget import Prices, TreeUsage, exhausted
from agentfleet_runtime.errors import Cancelled, Released
from agentfleet_runtime.logs import StepRef, step_var, task_id_var
from agentfleet_runtime.model import ModelClient, ModelRequest
from agentfleet_runtime.prompt import PromptCache, best_answer, head_messages
from agentfleet_runtime.store import Acquired, TaskStore
from agentfleet_runtime.textcalls import parse_text_reply
from agentfleet_runtime.tools import ToolBox
from agentfleet_runtime.types import Status, Step, StopReason, TaskRecord

log = logging.getLogger("agentfleet.loop")


@dataclass(slots=True)
class LoopSettings:
    system_prompt: str
    tool_calling: Literal["auto", "native", "text"] = "auto"
    session_history: int = 5


class TaskRun:
    """One worker's run of one task, from its lease to its end, release or failure."""

    def __init__(
        self,
        acquired: Acquired,
        *,
        lease: str,
        msg_id: str,
        store: TaskStore,
        model: ModelClient,
        tools: ToolBox,
        prices: Prices,
        settings: LoopSettings,
        draining: Callable[[], bool] = lambda: False,
    ) -> None:
        self.rec: TaskRecord = acquired.record
        self.steps: list[Step] = acquired.steps
        self.root_limits = acquired.root_limits
        self.tree: TreeUsage = acquired.tree
        self.lease = lease
        self.msg_id = msg_id
        self.store = store
        self.model = model
        self.tools = tools
        self.prices = prices
        self.settings = settings
        self.draining = draining
        self.outcome: tuple[Status, str] | None = None

    # -- the loop ----------------------------------------------------------------------------------
    async def execute(self) -> tuple[Status, str]:
        task_id_var.set(self.rec.id)
        step_ref = StepRef()
        step_var.set(step_ref)
        rec = self.rec
        if rec.cancel:
            return await self.finish_cancelled()
        session_ctx = await self.store.session_context(rec.session, rec.id, self.settings.session_history) if rec.session and rec.depth == 0 else []
        schemas = self.tools.schemas()
        text_tools = self.settings.tool_calling == "text"
        native = self.settings.tool_calling != "text"
        tenant = str(rec.metadata.get("tenant", ""))
        prompt = PromptCache(
            head_messages(system_prompt=self.settings.system_prompt, goal=rec.goal, tool_schemas=schemas, text_tools=text_tools, session_context=session_ctx)
        )
        while True:
            if self.draining():
                raise Released(rec.id)
            step_started = time.monotonic()
            last = self.steps[-1] if self.steps else None
            if last is not None and not last.complete:
                step_ref.n = last.n
                log.info("resuming step: running its tools again", extra={"tools": [c.name for c in last.tool_calls]})
                tool_s = await self._run_tools(last)
                metrics.STEP_OVERHEAD.observe(max(0.0, time.monotonic() - step_started - tool_s))
                continue
            step_ref.n = len(self.steps)
            now = time.time()
            stop = exhausted(rec.limits, self.root_limits, len(self.steps), self.tree, now, rec.deadline)
            if stop is not None:
                log.info("budget reached", extra={"reason": stop.value})
                return await self._finish(Status.DONE, stop.value, best_answer(self.steps))
            messages = prompt.messages(self.steps)
            left = rec.deadline - now
            request = ModelRequest(
                messages=messages,
                tools=schemas if native else [],
                task_id=rec.id,
                root_id=rec.root,
                session=rec.session,
                tenant=tenant,
                step=len(self.steps),
                timeout=left,
            )
            t0 = time.monotonic()
            try:
                with timeouts.timeout(left):  # shared timers (timeouts.py), no extra task per call
                    reply = await self.model.complete(request)
            except TimeoutError:
                if time.time() >= rec.deadline - 0.01:
                    return await self._finish(Status.DONE, StopReason.TIMEOUT.value, best_answer(self.steps))
                raise
            model_s = time.monotonic() - t0
            content, calls = reply.content, list(reply.tool_calls)
            if not calls and self.settings.tool_calling != "native":
                parsed_content, calls = parse_text_reply(reply.content, self.tools.names)
                if not calls:
                    content = parsed_content
            step = Step(n=len(self.steps), content=content, tool_calls=calls, usage=reply.usage, model_seconds=model_s)
            cost = self.prices.cost_nanos(reply.usage)
            metrics.TOKENS_IN.inc(reply.usage.prompt_tokens)
            metrics.TOKENS_OUT.inc(reply.usage.completion_tokens)
            if cost:
                metrics.spent(self.prices.currency, cost / 1e9)
            if not calls:
                return await self._finish(Status.DONE, StopReason.FINAL_ANSWER.value, content.strip(), final_step=step, cost=cost)
            self.tree, cancel = await self.store.plan(rec, self.lease, step, cost)
            self.steps.append(step)
            rec.prompt_tokens += reply.usage.prompt_tokens
            rec.completion_tokens += reply.usage.completion_tokens
            rec.cost_nanos += cost
            if cancel:
                raise Cancelled(rec.id)
            tool_s = await self._run_tools(step)
            metrics.STEP_OVERHEAD.observe(max(0.0, time.monotonic() - step_started - model_s - tool_s))

    async def _run_tools(self, step: Step) -> float:
        t0 = time.monotonic()
        step.observations = await self.tools.run_step(self.rec, step.n, step.tool_calls, self.rec.deadline)
        tool_s = time.monotonic() - t0
        if await self.store.complete(self.rec, self.lease, step):
            raise Cancelled(self.rec.id)
        return tool_s

    # -- endings -----------------------------------------------------------------------------------
    async def _finish(self, status: Status, reason: str, answer: str, *, final_step: Step | None = None, cost: int = 0, error: str = "") -> tuple[Status, str]:
        finished = await self.store.finish(
            self.rec, self.lease, self.msg_id, status=status, reason=reason, answer=answer, error=error, final_step=final_step, cost_nanos=cost
        )
        steps = len(self.steps) + (1 if final_step else 0)
        if finished:
            metrics.TASKS.labels(reason).inc()
            metrics.TASK_SECONDS.observe(max(0.0, time.time() - self.rec.created_at))
            metrics.TASK_STEPS.observe(steps)
            log.info("task ended", extra={"status": status.value, "reason": reason, "steps": steps})
        self.outcome = (status, reason)
        return status, reason

    async def finish_cancelled(self) -> tuple[Status, str]:
        """End as cancelled with the best answer so far, and cancel the children too."""
        for child in await self.store.children(self.rec.id):
            await self.store.cancel_tree(child)
        return await self._finish(Status.CANCELLED, StopReason.CANCELLED.value, best_answer(self.steps))
