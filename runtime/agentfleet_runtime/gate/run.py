"""The gate's run: the sample (read back, or drawn and written first), what is still missing, and
the tasks run ``concurrency`` at a time on both versions until done or out of budget."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import agentfleet_eval
from agentfleet_contract.gate import (
    JUDGE_KEY,
    JUDGE_MAC_KEY,
    SAMPLE_KEY,
    SAMPLE_MAC_KEY,
    GateTaskResult,
    Version,
    result_key,
    sign_result,
    sign_value,
    verified_results,
)
from agentfleet_eval.sampling import gate_sample
from agentfleet_eval.taskset import EvalTask, TaskSet

from agentfleet_runtime.gate.results import Conflict, ResultsMap
from agentfleet_runtime.gate.tasks import Side

log = logging.getLogger("agentfleet_runtime.gate")


MAX_TASK_ID = GateTaskResult.model_fields["task_id"].metadata[0].max_length


class GateError(RuntimeError):
    """The gate cannot run as asked; the message names what to fix."""


@dataclass(frozen=True)
class Budget:
    deadline: float  # time.time() at which the gate stops (its ConfigMap's creation + timeoutSeconds)
    max_tokens: int  # tokens of both versions together


def deadline_of(created: datetime | None, timeout_seconds: float, now: float) -> float:
    """When the gate's time is up: it started when the operator created its results ConfigMap, so
    a restarted Job keeps the first start's clock (``now`` when the creation time is unknown)."""
    start = created.timestamp() if created is not None else now
    return start + timeout_seconds


def by_task(missing: list[tuple[Version, str]]) -> list[tuple[str, list[Version]]]:
    """The missing (version, task) pairs grouped by task, in order: both versions of a task run
    together, so a partial run compares the same tasks."""
    out: dict[str, list[Version]] = {}
    for version, task_id in missing:
        out.setdefault(task_id, []).append(version)
    return list(out.items())


async def settle_sample(
    results: ResultsMap, taskset: TaskSet, part: str, n: int, seed: int, key: bytes
) -> tuple[list[str], list[GateTaskResult], datetime | None]:
    """The gate's sample and the results written so far that verify under the gate's ``key``. A
    first start draws the sample and writes it signed, guarded by the ConfigMap's resourceVersion,
    before any task runs; a Job that lost that race (or any later start) uses the sample that is
    there, if it verifies. A sample or result that does not verify was not written by the gate's
    Job: the sample is drawn again over it, the result is run again and written over."""
    gate = results.name
    seen = await results.read()
    got = verified_results(seen.data, key, gate)
    if got.rejected:
        log.warning("values in the results ConfigMap do not verify: run again", extra={"keys": list(got.rejected)})
    sample, done = got.sample, got.results
    if sample is None:
        drawn = gate_sample(taskset, part, n, seed)
        raw = json.dumps(drawn)
        signed = {SAMPLE_KEY: raw, SAMPLE_MAC_KEY: sign_value(key, gate, SAMPLE_KEY, raw)}
        try:
            await results.add(signed, resource_version=seen.resource_version)
        except Conflict:
            seen = await results.read()
            got = verified_results(seen.data, key, gate)
            sample, done = got.sample, got.results
            if sample is None:
                raise GateError(
                    "the results ConfigMap changed while the sample was written, and has no sample that verifies"
                ) from None
        else:
            sample = drawn
            done = [r for r in done if r.task_id in set(drawn)]
            log.info("sample written", extra={"tasks": len(drawn)})
    return sample, done, seen.created


def judge_of(task_set: str) -> dict[str, str]:
    """The SHA-256 of the task set's file and of the scorer's sources (agentfleet_eval, in the
    image): what status.gate says judged the change."""
    scorer = hashlib.sha256()
    root = Path(agentfleet_eval.__file__).parent
    for path in sorted(root.rglob("*.py")):
        scorer.update(f"{path.relative_to(root)}\n".encode())
        scorer.update(path.read_bytes())
    return {
        "taskSetSha256": hashlib.sha256(Path(task_set).read_bytes()).hexdigest(),
        "scorerSha256": scorer.hexdigest(),
    }


async def write_judge(results: ResultsMap, key: bytes, judge: dict[str, str]) -> None:
    """What judges (the task set's and the scorer's digests), signed: status.gate records it."""
    raw = json.dumps(judge, sort_keys=True)
    await results.add({JUDGE_KEY: raw, JUDGE_MAC_KEY: sign_value(key, results.name, JUDGE_KEY, raw)})


def tasks_of(taskset: TaskSet, sample: list[str]) -> dict[str, EvalTask]:
    by_id = {t.id: t for t in taskset.tasks}
    too_long = [t for t in sample if len(t) > MAX_TASK_ID]
    if too_long:
        raise GateError(f"task id {too_long[0][:80]!r}... is longer than {MAX_TASK_ID} characters: shorten it")
    unknown = [t for t in sample if t not in by_id]
    if unknown:
        raise GateError(
            f"the gate's sample names {len(unknown)} task(s) the task set {taskset.name} does not hold "
            f"(first: {unknown[0][:80]!r}): the task set changed under a running gate; change the AgentFleet "
            "again (a new gate draws a new sample) or restore the task set"
        )
    return by_id


class Runner:
    def __init__(self, sides: dict[Version, Side], results: ResultsMap, run: str, budget: Budget, key: bytes) -> None:
        self.sides, self.results, self.run_id, self.budget = sides, results, run, budget
        self.key = key  # the gate's key: every result is written signed
        self.stop = asyncio.Event()  # set when a budget is spent: in-flight tasks are cancelled
        self.spent = 0
        self.written = 0

    def out_of_budget(self) -> str | None:
        if self.spent >= self.budget.max_tokens:
            return "tokens"
        if time.time() >= self.budget.deadline:
            return "time"
        return None

    async def _watch_clock(self) -> None:
        while not self.stop.is_set():
            left = self.budget.deadline - time.time()
            if left <= 0:
                log.info("the gate's time is up: stopping", extra={"written": self.written})
                self.stop.set()
                return
            try:
                await asyncio.wait_for(self.stop.wait(), min(left, 5.0))
            except TimeoutError:
                pass

    async def _one(self, task: EvalTask, version: Version) -> None:
        result = await self.sides[version].run(self.run_id, task, self.stop)
        if result is None:
            return
        # Written at once, signed: a Job killed now loses no finished answer.
        signed = sign_result(self.key, self.results.name, result)
        await self.results.add({result_key(version, task.id): signed.model_dump_json(by_alias=True)})
        self.written += 1
        self.spent += result.tokens
        log.info(
            "result written",
            extra={"task": task.id, "version": version, "success": result.success, "tokens": result.tokens},
        )
        if self.spent >= self.budget.max_tokens and not self.stop.is_set():
            log.info("the gate's token budget is spent: stopping", extra={"tokens": self.spent})
            self.stop.set()

    async def _task(self, gate: asyncio.Semaphore, task: EvalTask, versions: list[Version]) -> None:
        async with gate:
            if self.stop.is_set() or self.out_of_budget():
                return
            await asyncio.gather(*(self._one(task, v) for v in versions))

    async def run(self, tasks: dict[str, EvalTask], missing: list[tuple[Version, str]], concurrency: int) -> None:
        if self.out_of_budget():
            log.info("the gate's budget is spent: nothing to run", extra={"why": self.out_of_budget()})
            return
        clock = asyncio.create_task(self._watch_clock())
        gate = asyncio.Semaphore(max(1, concurrency))
        try:
            async with asyncio.TaskGroup() as group:
                for task_id, versions in by_task(missing):
                    group.create_task(self._task(gate, tasks[task_id], versions))
        except ExceptionGroup as failed:
            # The first failure (a refused patch, Redis gone) is what the Job reports.
            raise failed.exceptions[0] from None
        finally:
            clock.cancel()
