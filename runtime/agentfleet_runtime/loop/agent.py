"""The agent loop of one task: prompt -> model -> tool calls -> observations, checkpointed per step.

A step is checkpointed twice: once with the model's reply (``save_reply``) and once with its tools'
observations (``complete``). A worker that resumes a task after a crash therefore never asks the
model again for a step it already has, and re-runs only the tools of an unfinished step (with
recorded results and idempotency keys for tools with side effects).

Neither checkpoint holds up the loop unless it must. The observations are stored while the next
model call runs: the call needs only the observations in hand, and its reply is checkpointed only
after they are stored. A step whose tools change nothing outside the task (no side effects, no
sub-agents) also runs them while its model reply is being stored; a step whose tools act waits for
that store first, so a resumed task replays the stored reply and its idempotency keys. A crash
in between loses at most what a crash during a model call always lost (that call; tools without
effects run again), never a side effect. With 1000 tasks a worker, the two Redis round trips per
step leave the path of every task.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from agentfleet_runtime.answering import answercheck, citing
from agentfleet_runtime.answering.policy import Asked, Ended, Handoff, Searched
from agentfleet_runtime.answering.policy import Opening as AnswerOpening
from agentfleet_runtime.core import metrics, timeouts, tracing
from agentfleet_runtime.core.budget import Prices, TreeUsage, exhausted
from agentfleet_runtime.core.citations import parse_citations
from agentfleet_runtime.core.errors import Cancelled, Released
from agentfleet_runtime.core.logs import StepRef, step_var, task_id_var
from agentfleet_runtime.core.types import ModelReply, Status, Step, StopReason, TaskRecord, ToolCall, Usage
from agentfleet_runtime.loop.decisions import (
    Offer,
    offer,
    own_goal_delegation,
    problem,
    read_decision,
    repair_messages,
    request_extras,
)
from agentfleet_runtime.loop.opening import (
    LoopSettings,
    Opening,
    calls_text,
    open_task,
    search_first_call,
)
from agentfleet_runtime.model.client import ModelClient, ModelRequest
from agentfleet_runtime.model.prompt import best_answer
from agentfleet_runtime.model.textcalls import parse_text_reply
from agentfleet_runtime.model.wire import ContextOverflow
from agentfleet_runtime.store.tasks import Acquired, TaskStore
from agentfleet_runtime.tools import ToolBox
from agentfleet_runtime.tools.a2a import a2a_sources
from agentfleet_runtime.tools.retrieval import parse_passages

log = logging.getLogger("agentfleet_runtime.loop.agent")


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
        self._saving: asyncio.Future[Any] | None = None  # the last step's observations, being stored
        self._saving_reply: int | None = (
            None  # set: _saving is the raw reply of this step's saved reply, which carries them
        )
        check = settings.decisions.answer_check
        self._checks_left = check.retries if check is not None else 0  # answers the check may still send back
        self.hold = False  # the answer policy's first answer declined: the loop's answer is held to the passages
        self._citation_repairs = 1  # a final answer that gives a passage in its place goes back once
        self.escalated = ""  # the answer policy's first answer, until the loop's first step carries it

    # -- the loop ----------------------------------------------------------------------------------
    async def execute(self) -> tuple[Status, str]:
        try:
            async with tracing.task(self.settings.tracer, self):  # the attempt's invoke_agent span
                return await self._execute()
        finally:
            if self._saving is not None:
                # Leaving early (an error, a release, a kill): the observations are kept if they can be.
                await asyncio.gather(self._saving, return_exceptions=True)
                self._saving, self._saving_reply = None, None

    async def _execute(self) -> tuple[Status, str]:
        """The task's opening (prompt, then the answer policy's), then one step after another (model
        call with its repair turns, checkpoint, tools) until the task ends."""
        task_id_var.set(self.rec.id)
        step_ref = StepRef()
        step_var.set(step_ref)
        rec = self.rec
        if rec.cancel:
            return await self.finish_cancelled()
        session_ctx: list[tuple[str, str]] = []
        if rec.session and rec.depth == 0:
            history = self.settings.session_history
            session_ctx = await self.store.session_context(rec.session, rec.id, history, rec.tenant)
        opening = open_task(self.settings, self.tools.schemas(), rec.goal, session_ctx)
        # What the answer policy's opening leaves to the first step: its calls' usage, their model time,
        # and the turn that says why its answer did not end the task.
        carried: tuple[Usage, float, list[dict[str, Any]]] = (Usage(), 0.0, [])
        if not self.steps and self.settings.answering.tool is not None:
            ended, carried = await self._open(opening)
            if ended is not None:
                return ended
        while True:
            if self.draining():
                await self._saved()
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
                return await self._finish(Status.DONE, stop.value, self._best_answer())
            decided, carried = await self._decide(opening, carried), (Usage(), 0.0, [])
            if not isinstance(decided, Step):
                return decided
            step = decided
            self.escalated = ""
            cost = self._account(step.usage)
            if not step.tool_calls:
                answer = self._checked(step.content.strip())
                done = StopReason.FINAL_ANSWER.value
                return await self._finish(Status.DONE, done, answer, final_step=step, cost=cost)
            tool_s = await self._act(step, cost)
            metrics.STEP_OVERHEAD.observe(max(0.0, time.monotonic() - step_started - step.model_seconds - tool_s))

    async def _open(
        self, opening: Opening
    ) -> tuple[tuple[Status, str] | None, tuple[Usage, float, list[dict[str, Any]]]]:
        """The answer policy's opening: the task's end if it ends it, else what it leaves to the first step."""
        policy = self.settings.answering
        tool, json_mode, text_tools = policy.tool, opening.json_mode, opening.text_tools
        assert tool is not None

        async def search(query: str) -> Searched:
            ok = await self._search_step(tool, query, json_mode, text_tools)
            shown = [obs.output for obs in self.steps[-1].observations or [] if obs.ok and obs.output]
            return Searched(ok, "\n".join(shown))

        result = await policy.open(AnswerOpening(self.rec.goal, self.settings.system_prompt, search, self._ask))
        done = StopReason.FINAL_ANSWER.value
        if isinstance(result, Ended):
            if result.usage is None:  # no model call made it: the task ends without a final step
                return await self._finish(Status.DONE, done, result.answer), (Usage(), 0.0, [])
            first = result.first_answer
            step = Step(len(self.steps), result.answer, [], result.usage, result.seconds, first_answer=first)
            cost = self._account(step.usage)
            return await self._finish(Status.DONE, done, step.content, final_step=step, cost=cost), (Usage(), 0.0, [])
        return None, self._handed(result)

    def _handed(self, handoff: Handoff) -> tuple[Usage, float, list[dict[str, Any]]]:
        """What the loop takes over from the policy's hand-off: the answer hold, the first answer its first
        step records, and the repair turn its first call is shown."""
        self.hold = handoff.hold
        self.escalated = handoff.first_answer
        turn = repair_messages(handoff.reply, handoff.problem, self.settings.decisions) if handoff.problem else []
        return handoff.usage, handoff.seconds, turn

    async def _ask(self, messages: list[dict[str, str]]) -> tuple[Asked | None, float]:
        """One tool-less call of the policy's opening, held to the task's deadline: the reply as the loop
        reads it (None when the deadline or the context ran out: the loop's own call meets them) and its
        model seconds."""
        left = self.rec.deadline - time.time()
        t0 = time.monotonic()
        try:
            with timeouts.timeout(left):
                reply = await self.model.complete(self.request(messages, left))
        except (TimeoutError, ContextOverflow) as e:
            log.info("answer-first call failed", extra={"error": str(e)[:300]})
            return None, time.monotonic() - t0
        seconds = time.monotonic() - t0
        content, calls, why = self.interpret(reply, False, Offer((), True), [])
        return Asked(reply.content, content, why, bool(calls), reply.usage), seconds

    async def _decide(
        self, opening: Opening, carried: tuple[Usage, float, list[dict[str, Any]]]
    ) -> Step | tuple[Status, str]:
        """The step's model call, asked again with a repair turn while its decision is unusable: the
        step (not yet checkpointed), or the task's end when the time or the context runs out."""
        rec, decide, schemas = self.rec, opening.decide, opening.schemas
        messages = opening.prompt.messages(self.steps)
        unavailable = self.tools.spawners if rec.depth >= rec.limits.max_depth else ()
        choice = offer(decide, self.tools.names, self.steps, unavailable, self.tools.read_only)
        extras = request_extras(decide, schemas, choice, send_tools=opening.native)
        (usage, model_s, repair), repairs = carried, 0
        while True:
            left = rec.deadline - time.time()
            request = self.request(
                messages + repair if repair else messages,
                left,
                tools=extras.get("tools", []),
                tool_choice=extras.get("tool_choice", "auto"),
                response_format=extras.get("response_format"),
            )
            t0 = time.monotonic()
            try:
                with timeouts.timeout(left):  # shared timers (timeouts.py), no extra task per call
                    reply = await self.model.complete(request)
            except TimeoutError:
                if time.time() >= rec.deadline - 0.01:
                    return await self._finish(Status.DONE, StopReason.TIMEOUT.value, self._best_answer())
                raise
            except ContextOverflow as e:
                # The history no longer fits the served context; every retry would send the
                # same prompt, so the task ends with its best answer, as at a budget.
                log.warning("context exhausted", extra={"error": str(e)[:300]})
                return await self._finish(Status.DONE, StopReason.MAX_CONTEXT.value, self._best_answer())
            model_s += time.monotonic() - t0
            usage += reply.usage
            content, calls, why = self.interpret(reply, opening.json_mode, choice, schemas)
            if why is None and not calls:
                # Each its own budget (one citation repair, answerCheck.retries), not repairAttempts.
                why = self._citation_problem(content) or self._answer_problem(content)
            elif why is not None:
                if repairs == decide.repair_attempts:
                    break
                repairs += 1
            if why is None:
                break
            # A repair turn: the unusable reply and the reason, shown once, never checkpointed.
            metrics.DECISION_REPAIRS.inc()
            log.info("repairing a decision", extra={"problem": why[:300]})
            repair = repair_messages(reply.content or calls_text(calls), why, decide)
        return Step(len(self.steps), content, calls, usage, model_s, first_answer=self.escalated)

    async def _act(self, step: Step, cost: int) -> float:
        """Checkpoint the step's reply (after the previous step's observations), account its usage,
        and run its tools; the seconds the tools held the loop."""
        rec, usage, calls = self.rec, step.usage, step.tool_calls
        await self._saved()  # the previous step's observations are stored before this step is
        saving_reply = self.store.send_reply(rec, self.lease, step, cost)
        self.steps.append(step)
        rec.prompt_tokens += usage.prompt_tokens
        rec.completion_tokens += usage.completion_tokens
        rec.cost_nanos += cost
        if self.tools.acts(calls):
            if await self._store_reply(step, saving_reply):
                raise Cancelled(rec.id)
            return await self._run_tools(step, behind=True)
        # Until the store answers, the tree's usage is what it was plus this step's own.
        self.tree = TreeUsage(self.tree.tokens + usage.total, self.tree.cost_nanos + cost)
        return await self._run_tools(step, behind=True, saving_reply=saving_reply)

    def request(self, messages: list[dict[str, Any]], timeout: float, **extras: Any) -> ModelRequest:
        """A model request of this task's next step."""
        rec = self.rec
        return ModelRequest(
            messages=messages,
            task_id=rec.id,
            root_id=rec.root,
            session=rec.session,
            tenant=rec.tenant,
            step=len(self.steps),
            timeout=timeout,
            **extras,
        )

    def _account(self, usage: Usage) -> int:
        """A step's cost, counted in the metrics."""
        cost = self.prices.cost_nanos(usage)
        metrics.TOKENS_IN.inc(usage.prompt_tokens)
        metrics.TOKENS_OUT.inc(usage.completion_tokens)
        if cost:
            metrics.spent(self.prices.currency, cost / 1e9, self.rec.tenant)
        return cost

    def cited(self, answer: str, shown: list[tuple[str, str]] | None = None) -> str:
        """The answer the task ends with, every value it states cited (citing.cite), and citing the
        remote agents' answers it asked for (A2A tools: recorded by the runtime, not copied by the model)."""
        if shown is None:
            shown = [(p["source"], p["text"]) for out in self.seen_outputs() for p in parse_passages(out)]
        answer = citing.cite(answer, shown, self.rec.goal)
        remote = self._remote_sources()
        if not remote or answercheck.says_unanswered(answer):
            return answer
        return citing.with_sources(answer, [*parse_citations(answer), *remote])

    def _remote_sources(self) -> list[str]:
        """The artifacts of the remote agents this task's A2A tools asked, as sources (tools/a2a.py)."""
        # Only their observations: any other tool's text (an HTTP endpoint's body) is not ours to read sources from.
        citing_tools = self.tools.cite_sources
        if not citing_tools:
            return []
        outputs = [o.output for s in self.steps for o in (s.observations or []) if o.ok and o.name in citing_tools]
        return a2a_sources(outputs)

    def interpret(
        self, reply: ModelReply, json_mode: bool, choice: Offer, schemas: list[dict[str, Any]]
    ) -> tuple[str, list[ToolCall], str | None]:
        """The reply as (content, tool calls, why it cannot be used or None). A JSON decision's
        raw text stays the step's content: the history shows the model its own decision."""
        if json_mode and not reply.tool_calls:
            d = read_decision(reply.content, self._numbered_sources(), self.seen_outputs())
            if d.problem is not None:
                return d.content, [], d.problem
            content = reply.content.strip() if d.calls else d.content
            return content, d.calls, problem(d.calls, d.content, choice, schemas) or self._own_goal(d.calls)
        content, calls = reply.content, list(reply.tool_calls)
        if not calls and self.settings.tool_calling != "native":
            parsed_content, calls = parse_text_reply(reply.content, self.tools.names)
            if not calls:
                content = parsed_content
        if not calls and content.lstrip().startswith("{"):
            # A model that writes a JSON decision without being asked for one (its history or
            # training shows it the form): its answer is the answer's text, not the JSON.
            said = read_decision(content, self._numbered_sources())
            if not said.calls and said.content:
                content = said.content
        return content, calls, problem(calls, content, choice, schemas) or self._own_goal(calls)

    def _own_goal(self, calls: list[ToolCall]) -> str | None:
        return own_goal_delegation(calls, self.tools.spawners, self.rec.goal) if calls else None

    async def _search_step(self, tool: str, query: str, json_mode: bool, text_tools: bool) -> bool:
        """One search as a step without a model call; whether it answered (any passages or none)."""
        n = len(self.steps)
        call, content = search_first_call(tool, query, json_mode=json_mode, text_tools=text_tools, n=n)
        step = Step(n=n, content=content, tool_calls=[call], usage=Usage())
        saving_reply = self.store.send_reply(self.rec, self.lease, step, 0)
        self.steps.append(step)
        await self._run_tools(step, behind=True, saving_reply=saving_reply)
        return all(obs.ok for obs in step.observations or [])

    def _answer_problem(self, answer: str) -> str | None:
        """Why a final answer goes back to the model (spec.decisions.answerCheck): values no
        retrieved passage holds, while this run has check retries left; spends one."""
        if self._checks_left <= 0:
            return None
        values = self._unsupported(answer)
        if not values:
            return None
        self._checks_left -= 1
        metrics.DECISION_REPAIRS.inc()
        return answercheck.check_problem(values)

    def _checked(self, answer: str) -> str:
        """The answer the task ends with: a decline when it still states unsupported values and
        answerCheck.onUnsupported is Decline, or, after a first answer that declined, when it
        states a value or a code name no retrieved passage holds (the policy's hold)."""
        if not answer:
            return answer
        if answercheck.citation_in_place(answer):
            log.info("declined: the answer gives a passage in its place", extra={"answer": answer[:300]})
            return answercheck.DECLINE
        answer = answercheck.tidy_citations(answer, self._numbered_sources())
        if self.held_after_decline(answer):
            metrics.ANSWER_FIRST.labels("held").inc()
            log.info("declined after a first decline: no passage holds it", extra={"answer": answer[:300]})
            return answercheck.DECLINE
        check = self.settings.decisions.answer_check
        if check is not None and check.decline and self._unsupported(answer):
            return answercheck.DECLINE
        return self.cited(answer)

    def _citation_problem(self, answer: str) -> str | None:
        """Why a final answer that gives a passage in its place goes back to the model, once."""
        if self._citation_repairs <= 0 or not answercheck.citation_in_place(answer):
            return None
        self._citation_repairs -= 1
        metrics.DECISION_REPAIRS.inc()
        return answercheck.CITATION_PROBLEM

    def _best_answer(self) -> str:
        """What a task a budget ends answers: its best answer so far, held as a final answer is."""
        answer = best_answer(self.steps)
        if not answer:
            return answer
        return answercheck.DECLINE if self.held_after_decline(answer) else self.cited(answer)

    def held_after_decline(self, answer: str) -> bool:
        """Whether the loop's answer, after a first answer that declined, states a value (or a code
        name) that no passage the task retrieved holds."""
        if not self.hold or answercheck.says_unanswered(answer):
            return False
        return bool(answercheck.unsupported_claims(answer, self.seen_outputs(), self.rec.goal))

    def _unsupported(self, answer: str) -> list[str]:
        """What answerCheck holds against a final answer: the values no retrieved passage holds."""
        return answercheck.unsupported_claims(answer, self.seen_outputs(), self.rec.goal, names=False)

    def _numbered_sources(self) -> dict[int, str]:
        """Rank -> source of the latest search's passages: what "[1]" in an answer's sources means."""
        read_only = self.tools.read_only
        for step in reversed(self.steps):
            for obs in reversed(step.observations or []):
                if obs.ok and obs.name in read_only:
                    found = parse_passages(obs.output)
                    if found:
                        return {p["rank"]: p["source"] for p in found}
        return {}

    def seen_outputs(self) -> list[str]:
        """What this task's tool calls returned (passages, sub-agents' answers): what its
        answer's sources may name."""
        return [obs.output for step in self.steps for obs in (step.observations or []) if obs.ok and obs.output]

    async def _run_tools(
        self, step: Step, *, behind: bool = False, saving_reply: asyncio.Future | None = None
    ) -> float:
        """Run a step's tool calls and store their observations; with ``behind``, the store
        completes while the loop goes on (after ``saving_reply``, the step's own reply, when that is
        still being stored), and ``_saved`` waits for it."""
        t0 = time.monotonic()
        try:
            step.observations = await self.tools.run_step(self.rec, step.n, step.tool_calls, self.rec.deadline)
        except BaseException:
            if saving_reply is not None:
                self._saving = asyncio.ensure_future(self._store_reply(step, saving_reply))
            raise
        tool_s = time.monotonic() - t0
        if behind and saving_reply is not None and self.store.fold_observations(saving_reply, step):
            # The reply carries the observations: its own reply is the checkpoint to wait for.
            self._saving, self._saving_reply = saving_reply, step.n
            return tool_s
        save = self._store_observations(step, saving_reply)
        if behind:
            self._saving = asyncio.ensure_future(save)
        elif await save:
            raise Cancelled(self.rec.id)
        return tool_s

    async def _store_reply(self, step: Step, saving_reply: asyncio.Future) -> bool:
        self.tree, cancel = self.store.reply_saved(self.rec, step.n, await saving_reply)
        return cancel

    async def _store_observations(self, step: Step, saving_reply: asyncio.Future | None) -> bool:
        # After the reply: the observations are spliced into the stored step.
        cancel = await self._store_reply(step, saving_reply) if saving_reply is not None else False
        return await self.store.complete(self.rec, self.lease, step) or cancel

    async def _saved(self) -> None:
        """Wait until the last step's observations are stored; raises what storing raised
        (a lost lease, a conflict) and Cancelled when the task was cancelled meanwhile."""
        saving, self._saving = self._saving, None
        if saving is None:
            return
        n, self._saving_reply = self._saving_reply, None
        if n is not None:
            self.tree, cancel = self.store.reply_saved(self.rec, n, await saving)
        else:
            cancel = await saving
        if cancel:
            raise Cancelled(self.rec.id)

    # -- endings -----------------------------------------------------------------------------------
    async def _finish(
        self,
        status: Status,
        reason: str,
        answer: str,
        *,
        final_step: Step | None = None,
        cost: int = 0,
        error: str = "",
    ) -> tuple[Status, str]:
        if status is not Status.CANCELLED:
            await self._saved()  # a task ends only after all its steps are stored
        finished = await self.store.finish(
            self.rec,
            self.lease,
            self.msg_id,
            status=status,
            reason=reason,
            answer=answer,
            error=error,
            final_step=final_step,
            cost_nanos=cost,
        )
        steps = len(self.steps) + (1 if final_step else 0)
        if finished:
            metrics.TASKS.labels(reason).inc()
            metrics.TASK_SECONDS.observe(max(0.0, time.time() - self.rec.created_at))
            metrics.TASK_STEPS.observe(steps)
            log.info("task ended", extra={"status": status.value, "reason": reason, "steps": steps})
        self.outcome = (status, reason)
        return status, reason

    async def end_at_budget(self, reason: str) -> tuple[Status, str]:
        """End as a budget ends a task, with its best answer so far: the worker's answer to a call
        the spend guard refused (model/spend.py)."""
        return await self._finish(Status.DONE, reason, self._best_answer())

    async def finish_cancelled(self) -> tuple[Status, str]:
        """End as cancelled with the best answer so far, and cancel the children too."""
        for child in await self.store.children(self.rec.id):
            await self.store.cancel_tree(child)
        return await self._finish(Status.CANCELLED, StopReason.CANCELLED.value, best_answer(self.steps))
