"""The order of a step's checkpoints (loop.py). The observations are stored while the next model
call runs, and the next step is asked for only once they are stored. Tools without effects run while
their step's reply is stored; tools with effects (side effects, sub-agents) only after it is. A
failure or a cancel seen by a store stops the task before anything of the next step is stored."""

from __future__ import annotations

import asyncio
import time

from agentfleet_runtime.core.budget import Prices, TreeUsage
from agentfleet_runtime.core.errors import Cancelled, LeaseLost
from agentfleet_runtime.core.types import Limits, ModelReply, Observation, Status, Step, TaskRecord, ToolCall, Usage
from agentfleet_runtime.loop.agent import LoopSettings, TaskRun
from agentfleet_runtime.store.tasks import Acquired


class Store:
    """Logs every checkpoint. The one named in `hold` ("reply 0", "complete 0") takes 30 ms, then
    fails with `fail` if given; `cancel` is the cancel flag that checkpoint returns. With `fold`,
    observations ready while their reply is being stored go with it (TaskStore.fold_observations)."""

    def __init__(self, hold: str, fail: Exception | None = None, cancel: bool = False, fold: bool = False) -> None:
        self.log: list[str] = []
        self.hold, self.fail, self.cancel, self.fold = hold, fail, cancel, fold

    async def _store(self, what: str) -> bool:
        self.log.append(f"{what} sent")
        if what == self.hold:
            await asyncio.sleep(0.03)
            if self.fail is not None:
                raise self.fail
        self.log.append(f"{what} stored")
        return self.cancel and what == self.hold

    def send_reply(self, rec, lease, step, cost):
        return asyncio.ensure_future(self._store(f"reply {step.n}"))

    def fold_observations(self, saving_reply, step):
        if self.fold and not saving_reply.done():
            self.log.append(f"fold {step.n}")
            return True
        return False

    @staticmethod
    def reply_saved(rec, n, cancel):
        return TreeUsage(), cancel

    async def complete(self, rec, lease, step):
        return await self._store(f"complete {step.n}")

    async def finish(self, rec, lease, msg_id, **kw):
        self.log.append(f"finish {kw['status'].value}")
        return True

    async def children(self, task_id):
        return []


class Model:
    """Asks for one tool call per step for `steps` steps (each such call takes 50 ms), then
    answers at once."""

    def __init__(self, log: list[str], steps: int) -> None:
        self.log, self.steps, self.calls = log, steps, 0

    async def complete(self, request):
        n = self.calls
        self.calls += 1
        self.log.append(f"model {n}")
        if n < self.steps:
            await asyncio.sleep(0.05)
            return ModelReply(content="", tool_calls=(ToolCall(f"c{n}", "echo", {}),), usage=Usage(10, 5))
        return ModelReply(content="done", usage=Usage(10, 5))


class Tools:
    spawners: frozenset[str] = frozenset()
    read_only: frozenset[str] = frozenset()
    cite_sources: frozenset[str] = frozenset()

    def __init__(self, log: list[str], acts: bool) -> None:
        self.log, self._acts = log, acts
        self.names = ["echo"]

    def schemas(self):
        return []

    def acts(self, calls):
        return self._acts

    async def run_step(self, task, step, calls, deadline):
        self.log.append(f"tools {step}")
        return [Observation(c.id, c.name, True, "ok") for c in calls]


def run(store: Store, *, steps: int = 2, acts: bool = False, done: list[Step] | None = None) -> tuple[TaskRun, object]:
    now = time.time()
    rec = TaskRecord(
        id="t1", goal="g", status=Status.RUNNING, limits=Limits(), created_at=now, deadline=now + 60, root="t1"
    )
    acquired = Acquired(
        record=rec, steps=list(done or []), root_limits=rec.limits, root_deadline=rec.deadline, tree=TreeUsage()
    )
    task_run = TaskRun(
        acquired,
        lease="L",
        msg_id="m",
        store=store,
        model=Model(store.log, steps),
        tools=Tools(store.log, acts),
        prices=Prices(),
        settings=LoopSettings(system_prompt="s"),
    )

    async def go():
        try:
            return await asyncio.wait_for(task_run.execute(), 5)
        except Exception as e:  # noqa: BLE001 - the test looks at what was raised
            return e

    return task_run, asyncio.run(go())


def before(log: list[str], *entries: str) -> bool:
    return all(log.index(a) < log.index(b) for a, b in zip(entries, entries[1:], strict=False))


def test_observations_are_stored_during_the_next_call_and_before_the_next_reply() -> None:
    store = Store(hold="complete 0")
    _, outcome = run(store)
    assert outcome == (Status.DONE, "final_answer")
    assert before(store.log, "complete 0 sent", "complete 0 stored", "reply 1 sent"), store.log
    assert before(store.log, "model 1", "complete 0 stored"), store.log
    assert before(store.log, "complete 1 stored", "finish done"), store.log


def test_tools_without_effects_run_while_their_reply_is_stored() -> None:
    store = Store(hold="reply 0")
    _, outcome = run(store, acts=False)
    assert outcome == (Status.DONE, "final_answer")
    # The tools and the next call go ahead; the observations are stored after the reply they complete.
    assert before(
        store.log, "tools 0", "model 1", "reply 0 stored", "complete 0 sent", "complete 0 stored", "reply 1 sent"
    ), store.log


def test_observations_ready_before_their_reply_is_stored_go_with_it() -> None:
    store = Store(hold="reply 0", fold=True)
    _, outcome = run(store, acts=False)
    assert outcome == (Status.DONE, "final_answer")
    assert not any(e.startswith("complete") for e in store.log), store.log  # one checkpoint per step
    assert before(store.log, "tools 0", "fold 0", "model 1", "reply 0 stored", "reply 1 sent"), store.log
    assert before(store.log, "reply 1 stored", "finish done"), store.log


def test_a_cancel_seen_storing_a_reply_with_its_observations_stops_before_the_next_reply() -> None:
    store = Store(hold="reply 0", cancel=True, fold=True)
    _, outcome = run(store, acts=False)
    assert isinstance(outcome, Cancelled)
    assert "fold 0" in store.log and "reply 1 sent" not in store.log, store.log


def test_tools_with_effects_wait_for_their_reply() -> None:
    store = Store(hold="reply 0")
    _, outcome = run(store, acts=True)
    assert outcome == (Status.DONE, "final_answer")
    assert before(store.log, "reply 0 stored", "tools 0", "complete 0 sent"), store.log


def test_a_lost_lease_seen_storing_observations_stops_before_the_next_reply() -> None:
    store = Store(hold="complete 0", fail=LeaseLost("t1"))
    task_run, outcome = run(store)
    assert isinstance(outcome, LeaseLost)
    assert "reply 1 sent" not in store.log and not any(e.startswith("finish") for e in store.log), store.log
    assert task_run._saving is None


def test_a_lost_lease_seen_storing_the_reply_stores_no_observations() -> None:
    store = Store(hold="reply 0", fail=LeaseLost("t1"))
    _, outcome = run(store, acts=False)
    assert isinstance(outcome, LeaseLost)
    assert "complete 0 sent" not in store.log and "reply 1 sent" not in store.log, store.log


def test_a_cancel_seen_storing_observations_stops_before_the_next_reply() -> None:
    store = Store(hold="complete 0", cancel=True)
    _, outcome = run(store)
    assert isinstance(outcome, Cancelled)
    assert "complete 0 stored" in store.log and "reply 1 sent" not in store.log, store.log


def test_a_task_ends_only_after_its_last_observations_are_stored() -> None:
    store = Store(hold="complete 0")
    _, outcome = run(store, steps=1)  # one tool step; the final answer comes back before the store ends
    assert outcome == (Status.DONE, "final_answer")
    assert before(store.log, "model 1", "complete 0 stored", "finish done"), store.log


def test_a_resumed_task_runs_the_incomplete_steps_tools_before_the_next_call() -> None:
    # Pins the resume path: a task reclaimed after its reply for step 0 was stored but before its
    # observations were (the worker died in the tool call) runs step 0's tools again and stores
    # their observations before it asks the model anything; it never asks past a step whose
    # tools did not run.
    store = Store(hold="none")
    planned = Step(n=0, content="", tool_calls=[ToolCall("c0", "echo", {})], usage=Usage(10, 5))
    task_run, outcome = run(store, steps=0, done=[planned])
    assert outcome == (Status.DONE, "final_answer")
    assert store.log[:3] == ["tools 0", "complete 0 sent", "complete 0 stored"], store.log
    assert before(store.log, "complete 0 stored", "model 0", "finish done"), store.log
    assert [o.output for o in task_run.steps[0].observations] == ["ok"]
