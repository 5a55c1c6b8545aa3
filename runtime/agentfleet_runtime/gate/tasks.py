"""One task of the gate's sample on one version: submitted to that version's task stream through
the store layer (as the task API submits), waited for, read back as the task API's views of the
task and its sub-agents, and scored by agentfleet_eval: the same Outcome and the same score as
``agentfleet eval`` gives the same answer through the API.

Every gate task is filed under the reserved tenant GATE_TENANT, which no token maps to: no caller
of the task API lists, reads or cancels it. Its Idempotency-Key is derived from the gate's run (its
results ConfigMap) and the task id, so a restarted Job finds the task it submitted before, whether
it is still running or done, instead of asking again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from agentfleet_contract.fleet_keys import Keys
from agentfleet_contract.gate import SIDE_EFFECTS_METADATA, GateTaskResult, SideEffects, Version
from agentfleet_contract.runtime_config import GATE_TENANT, RuntimeConfig
from agentfleet_eval.outcome import outcome_of
from agentfleet_eval.scoring import Outcome, score
from agentfleet_eval.taskset import EvalTask

from agentfleet_runtime.core.config import limits_of
from agentfleet_runtime.core.types import Status
from agentfleet_runtime.server.submission import SubmitError, new_task, parse_submission, task_view
from agentfleet_runtime.store.connection import connect
from agentfleet_runtime.store.tasks import NotReplicated, TaskStore

log = logging.getLogger("agentfleet_runtime.gate")

SUBMITTER = "agentfleet-gate/runner"  # recorded on each gate task as its submitter
POLL_SECONDS = 0.5
SUBMIT_TRIES = 5  # a submission not yet on enough replicas is sent again with the same key


def idempotency_key(run: str, task_id: str) -> str:
    """The key of one task of one gate run: the same on every start of the Job, another for the
    next gate (a new results ConfigMap), whatever the lengths of the names."""
    return "gate-" + hashlib.sha256(f"{run}\n{task_id}".encode()).hexdigest()[:40]


def decimal_text(d: Decimal) -> str:
    """A cost as GateTaskResult holds it: plain digits, at most nine decimals."""
    q = max(d, Decimal(0)).quantize(Decimal("1e-9")).normalize()
    return format(q, "f")


def gate_result(version: Version, task: EvalTask, outcome: Outcome) -> GateTaskResult:
    """The scored result of one answer, as the results ConfigMap holds it."""
    s = score(task, outcome)
    unanswerable = task.expect == "decline"
    return GateTaskResult(
        task_id=task.id,
        version=version,
        success=s.success,
        grounded=None if unanswerable else s.grounded,
        unanswerable=unanswerable,
        tokens=max(0, outcome.tokens),
        cost=decimal_text(outcome.cost),
    )


def reached_a_model(outcome: Outcome) -> bool:
    """Whether the version answered the task or got as far as a model call: an answer (status
    ``done``) is the version's own whatever made it, a model or a stage that needs none (the
    Cascade's decline when its search finds nothing: on the real node a candidate searching an
    empty index declined every task with no call, and each was left out as not run)."""
    return outcome.status == Status.DONE or outcome.model_calls > 0 or outcome.tokens > 0


def not_run(version: Version, task: EvalTask, outcome: Outcome) -> GateTaskResult:
    """A task the version never answered: left out of the comparison (GateTaskResult.not_run)."""
    return GateTaskResult(
        task_id=task.id,
        version=version,
        success=False,
        unanswerable=task.expect == "decline",
        not_run=True,
        tokens=max(0, outcome.tokens),
        cost=decimal_text(outcome.cost),
    )


@dataclass
class Side:
    """One version's fleet: its runtime configuration and its store."""

    version: Version
    config: RuntimeConfig
    store: TaskStore
    side_effects: SideEffects = "Skip"  # what the workers do with a side-effect tool's call

    @classmethod
    def open(cls, version: Version, config: RuntimeConfig, side_effects: SideEffects = "Skip") -> Side:
        r = connect(config.redis_url, config.redis_password, min(config.redis_max_connections, 32))
        store = TaskStore(r, Keys(config.fleet, config.namespace), config.result_ttl_seconds)
        return cls(version, config, store, side_effects)

    @property
    def retrieval_tools(self) -> frozenset[str]:
        return frozenset(t.name for t in self.config.tools if t.type == "Retrieval")

    async def submit(self, run: str, task: EvalTask) -> str | Outcome:
        """The id of the task answering ``task`` (submitted now, or before by an earlier start of
        the Job); an Outcome of status error when this version refuses the question."""
        metadata = {"gate": run, "gateTask": task.id, SIDE_EFFECTS_METADATA: self.side_effects}
        body = {"goal": task.question, "metadata": metadata}
        key = idempotency_key(run, task.id)
        try:
            sub = parse_submission(body, key, self.config.api.max_goal_chars, limits_of(self.config))
        except SubmitError as e:
            return Outcome(status="error", reason="refused", error=str(e))
        record = new_task(uuid.uuid4().hex, sub, time.time(), GATE_TENANT, SUBMITTER)
        for attempt in range(1, SUBMIT_TRIES + 1):
            try:
                _, task_id = await self.store.submit(
                    record,
                    idempotency_key=key,
                    request_hash=sub.request_hash,
                    replicas=self.config.redis_ack_replicas,
                    wait_ms=self.config.redis_ack_timeout_ms,
                )
                return task_id
            except NotReplicated:
                if attempt == SUBMIT_TRIES:
                    raise
                await asyncio.sleep(attempt)
        raise AssertionError("unreachable")

    async def ended(self, task_id: str, stop: asyncio.Event) -> bool:
        """Wait until the task has ended (True) or ``stop`` is set (False)."""
        while not stop.is_set():
            got = await self.store.get(task_id)
            if got is not None and got[0].status.terminal:
                return True
            if got is None:
                return True  # expired or never stored: read back as what it is, an error
            try:
                await asyncio.wait_for(stop.wait(), POLL_SECONDS)
            except TimeoutError:
                pass
        return False

    async def views(self, task_id: str) -> list[dict[str, Any]]:
        """The task API's views (with steps) of the task and every sub-agent, the root first."""
        out: list[dict[str, Any]] = []
        frontier, seen = [task_id], set()
        currency = self.config.pricing.currency
        while frontier:
            tid = frontier.pop(0)
            if tid in seen:
                continue
            seen.add(tid)
            got = await self.store.get(tid)
            if got is None:
                continue
            steps = await self.store.steps(tid)
            children = await self.store.children(tid)
            out.append(task_view(got[0], got[1], steps, len(steps), children, currency, self.retrieval_tools))
            frontier += children
        return out

    async def outcome(self, task_id: str) -> Outcome:
        tree = await self.views(task_id)
        if not tree:
            return Outcome(task_id=task_id, status="error", reason="missing", error="the task's record is gone")
        return outcome_of(tree)

    async def run(self, run: str, task: EvalTask, stop: asyncio.Event) -> GateTaskResult | None:
        """Ask ``task``, wait for its end and score it; None when ``stop`` came first (the task is
        cancelled: the gate has stopped on its budget). A task that ended without reaching a model
        (its worker lost, its time spent queued) is asked once more; twice so, it is reported as
        not run, never scored as a failure of this version."""
        outcome: Outcome | None = None
        for attempt in (run, f"{run}#again"):
            got = await self.submit(attempt, task)
            if isinstance(got, Outcome):
                return gate_result(self.version, task, got)
            if not await self.ended(got, stop):
                await self.store.cancel_tree(got)
                return None
            outcome = await self.outcome(got)
            if reached_a_model(outcome):
                return gate_result(self.version, task, outcome)
            log.info("a gate task never reached a model", extra={"task": task.id, "version": self.version})
        assert outcome is not None
        return not_run(self.version, task, outcome)

    async def close(self) -> None:
        await self.store.close()
