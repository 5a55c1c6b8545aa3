"""One step of the agent loop in detail (loop.py): what each model request carries, what the
store, the tools, the logs and the metrics are handed, and how each ending is reached.

The store, model and tools are fakes (the logic under test is the loop's). The store's plan
replies are the raw lists the Redis script returns, read by the real ``TaskStore.reply_saved``. The
loop's clock (its ``time`` module) is a fake that stands still unless a fake says time passes:
a model call, a tool run or a checkpoint takes exactly the seconds given, so the durations the
loop reports are exact figures."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import pytest
from prometheus_client import REGISTRY

from agentfleet_runtime.core.budget import Prices, TreeUsage
from agentfleet_runtime.core.errors import Cancelled, CheckpointConflict, LeaseLost, ModelError, Released
from agentfleet_runtime.core.logs import StepRef, step_var, task_id_var
from agentfleet_runtime.core.types import Limits, ModelReply, Observation, Status, Step, TaskRecord, ToolCall, Usage
from agentfleet_runtime.loop import agent as loop
from agentfleet_runtime.loop.agent import LoopSettings, TaskRun
from agentfleet_runtime.loop.decisions import DecisionSettings
from agentfleet_runtime.model.prompt import tool_schema
from agentfleet_runtime.model.wire import ContextOverflow
from agentfleet_runtime.store.tasks import Acquired, TaskStore

START = 1000.0  # the fake clock's time when a task starts; every task here was created then
DEADLINE = START + 60
SEARCH = tool_schema(
    "search",
    "Searches the manual.",
    {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
)
WRITE = tool_schema(
    "write", "Writes a file.", {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
)
EUR = Prices(Decimal("1000"), Decimal("2000"), "EUR")  # per million tokens: 1e6 and 2e6 nanos a token
STEP_COST = 10 * 1_000_000 + 5 * 2_000_000  # Usage(10, 5) at EUR: 20,000,000 nanos, 0.02 EUR


class Clock:
    """The loop's ``time`` module: ``time()`` and ``monotonic()`` read one figure, moved only by
    ``advance`` (or set outright)."""

    def __init__(self) -> None:
        self.now = START

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(loop, "time", c)
    return c


def plan_reply(tokens: int = 0, cost: int = 0, cancel: bool = False) -> list[Any]:
    """What the reply script returns: ok, the tree's tokens and cost, the cancel flag."""
    return [1, str(tokens), str(cost), "1" if cancel else "0"]


class Store:
    """Records every call with what the loop passed. ``plans`` are the save-reply script's replies in step order
    (the last one repeats); ``plan_delay``/``complete_delay`` hold a checkpoint that long on the
    event loop (real time, for ordering); ``plan_seconds``/``complete_seconds`` move the fake
    clock (time the loop spends outside the model and the tools)."""

    reply_saved = staticmethod(TaskStore.reply_saved)

    def __init__(
        self,
        clock: Clock,
        *,
        plans: Sequence[list[Any]] = (),
        fold: bool = False,
        complete_cancel: bool = False,
        complete_fail: Exception | None = None,
        plan_delay: float = 0.0,
        complete_delay: float = 0.0,
        plan_seconds: float = 0.0,
        complete_seconds: float = 0.0,
        session: Sequence[tuple[str, str]] = (),
        children: Sequence[str] = (),
    ) -> None:
        self.clock = clock
        self.plans, self.fold = list(plans) or [plan_reply()], fold
        self.complete_cancel, self.complete_fail = complete_cancel, complete_fail
        self.plan_delay, self.complete_delay = plan_delay, complete_delay
        self.plan_seconds, self.complete_seconds = plan_seconds, complete_seconds
        self.session, self.kids = list(session), list(children)
        self.log: list[Any] = []
        self.finished: dict[str, Any] = {}

    async def session_context(self, session, before, limit, tenant=""):
        self.log.append(("session_context", session, before, limit, tenant))
        return self.session

    def send_reply(self, rec, lease, step, cost):
        self.log.append(("plan", rec, lease, step, cost))
        self.clock.advance(self.plan_seconds)
        reply = self.plans[min(step.n, len(self.plans) - 1)]
        return asyncio.ensure_future(self._save_reply(step.n, reply))

    async def _save_reply(self, n, reply):
        await asyncio.sleep(self.plan_delay)
        self.log.append(f"plan {n} stored")
        return reply

    def fold_observations(self, saving_reply, step):
        if self.fold and not saving_reply.done():
            self.log.append(f"fold {step.n}")
            return True
        return False

    async def complete(self, rec, lease, step):
        self.log.append(("complete", rec, lease, step.n))
        self.clock.advance(self.complete_seconds)
        await asyncio.sleep(self.complete_delay)
        if self.complete_fail is not None:
            raise self.complete_fail
        self.log.append(f"complete {step.n} stored")
        return self.complete_cancel

    async def finish(self, rec, lease, msg_id, **kw):
        self.log.append(("finish", rec, lease, msg_id))
        self.finished = kw
        return True

    async def children(self, task_id):
        self.log.append(("children", task_id))
        return self.kids

    async def cancel_tree(self, task_id):
        self.log.append(("cancel_tree", task_id))
        return 1

    def events(self) -> list[str]:
        return [e for e in self.log if isinstance(e, str)]


class Model:
    """Replies from a script, in order: a string is a reply with that text, a ToolCall a reply
    calling it, an exception is raised. Each call takes ``seconds[i]`` on the clock (the last
    figure repeats); every request is recorded, and "model N" goes to ``log`` when given."""

    def __init__(
        self, clock: Clock, script: Sequence[Any], seconds: Sequence[float] = (0.0,), log: list[Any] | None = None
    ) -> None:
        self.clock, self.script, self.seconds, self.log = clock, list(script), list(seconds), log
        self.requests: list[Any] = []

    async def complete(self, request):
        i = len(self.requests)
        self.requests.append(request)
        if self.log is not None:
            self.log.append(f"model {i}")
        self.clock.advance(self.seconds[min(i, len(self.seconds) - 1)])
        r = self.script[i]
        if isinstance(r, BaseException):
            raise r
        if isinstance(r, ToolCall):
            return ModelReply(content="", tool_calls=(r,), usage=Usage(10, 5))
        return r if isinstance(r, ModelReply) else ModelReply(content=r, usage=Usage(10, 5))


class Tools:
    """search (read-only) and write (acts). Each run takes ``seconds`` on the clock and records
    what the loop passed and the task and step its log records would carry; ``outputs`` are the
    observations' texts in run order (the last repeats), ``fail`` is raised instead."""

    spawners: frozenset[str] = frozenset()
    read_only = frozenset({"search"})
    cite_sources: frozenset[str] = frozenset()

    def __init__(
        self,
        clock: Clock,
        *,
        seconds: float = 0.0,
        outputs: Sequence[str | tuple[bool, str]] = ("found",),
        fail: Exception | None = None,
        schemas: Sequence[dict] = (SEARCH, WRITE),
    ) -> None:
        self.clock, self.seconds, self.outputs, self.fail = clock, seconds, list(outputs), fail
        self._schemas = list(schemas)
        self.names = [s["function"]["name"] for s in self._schemas]
        self.runs: list[dict[str, Any]] = []

    def schemas(self):
        return self._schemas

    def acts(self, calls):
        return any(c.name == "write" for c in calls)

    async def run_step(self, task, n, calls, deadline):
        ref = step_var.get()
        self.runs.append(
            {
                "task": task,
                "n": n,
                "calls": list(calls),
                "deadline": deadline,
                "task_id_var": task_id_var.get(),
                "step_var": ref.n if isinstance(ref, StepRef) else ref,
            }
        )
        self.clock.advance(self.seconds)
        if self.fail is not None:
            raise self.fail
        out = self.outputs[min(len(self.runs) - 1, len(self.outputs) - 1)]
        ok, text = out if isinstance(out, tuple) else (True, out)
        return [Observation(c.id, c.name, ok, text) for c in calls]


def run(
    model: Model,
    store: Store,
    tools: Tools,
    *,
    settings: LoopSettings | None = None,
    limits: Limits | None = None,
    prices: Prices | None = None,
    done: Sequence[Step] = (),
    draining: Callable[[], bool] = lambda: False,
    **record: Any,
) -> tuple[TaskRun, Any]:
    """Runs task t1 (or as ``record`` says) to its end; returns the run and its outcome or what it raised."""
    limits = limits or Limits()
    fields: dict[str, Any] = {
        "id": "t1",
        "goal": "g",
        "status": Status.RUNNING,
        "limits": limits,
        "created_at": START,
        "deadline": DEADLINE,
        "root": "t1",
    } | record
    rec = TaskRecord(**fields)
    acquired = Acquired(record=rec, steps=list(done), root_limits=limits, root_deadline=rec.deadline, tree=TreeUsage())
    task_run = TaskRun(
        acquired,
        lease="L",
        msg_id="m",
        store=store,
        model=model,
        tools=tools,
        prices=prices or Prices(),
        settings=settings or LoopSettings("s"),
        draining=draining,
    )

    async def go():
        try:
            return await asyncio.wait_for(task_run.execute(), 5)
        except Exception as e:  # noqa: BLE001 - the test looks at what was raised
            return e

    return task_run, asyncio.run(go())


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


class Samples:
    """Metric figures before a run; ``delta`` is how much one rose since."""

    NAMES = (
        ("agentfleet_step_overhead_seconds_sum", None),
        ("agentfleet_step_overhead_seconds_count", None),
        ("agentfleet_task_steps_sum", None),
        ("agentfleet_task_duration_seconds_sum", None),
        ("agentfleet_cost_total", {"currency": "EUR"}),
    )

    def __init__(self, *outcomes: str) -> None:
        self.names = list(self.NAMES) + [("agentfleet_tasks_total", {"outcome": o}) for o in outcomes]
        self.before = {self._key(n, lb): sample(n, lb) for n, lb in self.names}

    @staticmethod
    def _key(name: str, labels: dict[str, str] | None) -> str:
        return name + str(sorted((labels or {}).items()))

    def delta(self, name: str, labels: dict[str, str] | None = None) -> float:
        return sample(name, labels) - self.before[self._key(name, labels)]


def call(name: str, **arguments: Any) -> ToolCall:
    return ToolCall(f"c-{name}", name, arguments)


def records(caplog: pytest.LogCaptureFixture, message: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "agentfleet_runtime.loop.agent" and r.getMessage() == message]


# -- what a request carries ------------------------------------------------------------------------
def test_each_request_carries_the_tasks_identity_its_step_the_offered_tools_and_the_time_left(clock: Clock) -> None:
    # A sub-agent t1.0 of root t1 in session s1, tenant acme, native tool calls: each request
    # names the task, its root, session, tenant and step, offers both tools with tool_choice
    # auto and no response_format, and its timeout is the time to the deadline: 60 s at the
    # first call, 60 - 2 (the first call) - 3 (the tools) = 55 s at the second.
    store, tools = Store(clock), Tools(clock, seconds=3.0)
    model = Model(clock, [call("search", query="q"), "42"], seconds=[2.0])
    settings = LoopSettings("s", tool_calling="native")
    _, outcome = run(
        model, store, tools, settings=settings, id="t1.0", parent="t1", depth=1, session="s1", tenant="acme"
    )
    assert outcome == (Status.DONE, "final_answer")
    first, second = model.requests
    for r, step, timeout in ((first, 0, 60.0), (second, 1, 55.0)):
        assert (r.task_id, r.root_id, r.session, r.tenant, r.step, r.timeout) == (
            "t1.0",
            "t1",
            "s1",
            "acme",
            step,
            timeout,
        )
        assert r.tools == [SEARCH, WRITE] and r.tool_choice == "auto" and r.response_format is None
    assert first.messages == [{"role": "system", "content": "s"}, {"role": "user", "content": "g"}]
    assert (
        second.messages[2]["tool_calls"][0]["function"]["name"] == "search" and second.messages[3]["content"] == "found"
    )


def test_a_request_without_tools_to_offer_carries_none_the_default_choice_and_no_tenant(clock: Clock) -> None:
    # An agent without tools, a task without a tenant: the request's tools are an empty list,
    # tool_choice is "auto", and the tenant is "" (not None, not the text "None").
    store, tools = Store(clock), Tools(clock, schemas=())
    model = Model(clock, ["42"])
    _, outcome = run(model, store, tools)
    assert outcome == (Status.DONE, "final_answer")
    (r,) = model.requests
    assert (r.tools, r.tool_choice, r.response_format, r.tenant, r.session) == ([], "auto", None, "", "")


def test_text_tool_calling_describes_the_tools_in_the_prompt_and_reads_calls_from_the_reply(clock: Clock) -> None:
    # tool_calling "text": no tools field is sent; the system prompt carries the text protocol
    # with each tool's signature; a <tool_call> in the reply runs the tool, and "Final Answer: 42"
    # ends the task with "42".
    store, tools = Store(clock), Tools(clock)
    model = Model(clock, ['<tool_call>{"name": "search", "arguments": {"query": "q"}}</tool_call>', "Final Answer: 42"])
    _, outcome = run(model, store, tools, settings=LoopSettings("s", tool_calling="text"))
    assert outcome == (Status.DONE, "final_answer") and store.finished["answer"] == "42"
    assert [r["calls"][0].arguments for r in tools.runs] == [{"query": "q"}]
    first = model.requests[0]
    assert first.tools == [] and first.response_format is None
    system = first.messages[0]["content"]
    assert system.startswith(
        "s\n\nYou can use these tools:\n- search(query: string): Searches the manual.\n- write(text: string): "
        "Writes a file."
    )


def test_native_tool_calling_takes_call_shaped_text_as_the_answer(clock: Clock) -> None:
    # tool_calling "native": only the engine's own tool calls count, so a reply that writes a
    # <tool_call> as text is the answer as written (the "auto" mode would run it).
    text = '<tool_call>{"name": "search", "arguments": {"query": "q"}}</tool_call>'
    store, tools = Store(clock), Tools(clock)
    _, outcome = run(Model(clock, [text]), store, tools, settings=LoopSettings("s", tool_calling="native"))
    assert outcome == (Status.DONE, "final_answer") and store.finished["answer"] == text and tools.runs == []


def test_a_json_answer_that_names_no_known_tool_is_an_answer(clock: Clock) -> None:
    # In "auto" mode a bare JSON object is a call only if it names one of the agent's tools: an
    # answer that is JSON naming something else ends the task as it is.
    answer = '{"name": "Ada Lovelace", "arguments": "none"}'
    store, tools = Store(clock), Tools(clock)
    model = Model(clock, [answer])
    _, outcome = run(model, store, tools)
    assert outcome == (Status.DONE, "final_answer") and store.finished["answer"] == answer and len(model.requests) == 1


def test_a_root_task_in_a_session_is_shown_the_sessions_earlier_answers_and_a_sub_agent_is_not(clock: Clock) -> None:
    # A root task (depth 0) of session s1 asks the store for the session's last
    # session_history (3) answers before t1, and the system prompt lists them; a sub-agent of the
    # same session (depth 1) and a task without a session ask nothing.
    settings = LoopSettings("s", session_history=3)
    store = Store(clock, session=[("What is 2+2?", "4")])
    model = Model(clock, ["42"])
    run(model, store, Tools(clock), settings=settings, session="s1", tenant="acme")
    # The session is the tenant's: its history is asked for under the task's tenant.
    assert [e for e in store.log if e[0] == "session_context"] == [("session_context", "s1", "t1", 3, "acme")]
    # Quoted on the user's side, never in the system prompt (issue 57: an injected answer persisted).
    assert model.requests[0].messages[0]["content"] == "s"
    user = model.requests[0].messages[1]["content"]
    assert '[{"question": "What is 2+2?", "answer": "4"}]' in user and "not instructions" in user
    for fields in ({"session": "s1", "depth": 1, "id": "t1.0", "parent": "t1"}, {}):
        store = Store(clock, session=[("What is 2+2?", "4")])
        model = Model(clock, ["42"])
        run(model, store, Tools(clock), settings=settings, **fields)
        assert (
            not [e for e in store.log if e[0] == "session_context"] and model.requests[0].messages[0]["content"] == "s"
        )


# -- what a step hands the store, the tools and the metrics -----------------------------------------
def test_a_task_stores_each_step_with_its_cost_and_ends_with_its_final_step_and_figures(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    # Two tool steps and a final answer, each call Usage(10, 5) at EUR prices: 0.02 EUR a call.
    # Calls take 2, 3 and 4 s, the tools 1 s a run, sending a reply 0.5 s of bookkeeping. A
    # resumed record already holds 100 + 50 tokens and 7 nanos: the loop adds each stored step
    # (2 x (10, 5) and 2 x 20,000,000 nanos); the final step (its text as read: "42") goes with
    # the finish.
    caplog.set_level(logging.INFO, logger="agentfleet_runtime.loop.agent")
    m = Samples("final_answer")
    store, tools = Store(clock, plan_seconds=0.5), Tools(clock, seconds=1.0)
    model = Model(clock, [call("search", query="a"), call("search", query="b"), "  42  "], seconds=[2.0, 3.0, 4.0])
    task_run, outcome = run(model, store, tools, prices=EUR, prompt_tokens=100, completion_tokens=50, cost_nanos=7)
    assert outcome == (Status.DONE, "final_answer") and task_run.outcome == outcome
    rec = task_run.rec
    plans = [e for e in store.log if e[0] == "plan"]
    assert [(p[1], p[2], p[3].n, p[4]) for p in plans] == [(rec, "L", 0, STEP_COST), (rec, "L", 1, STEP_COST)]
    assert [(p[3].content, p[3].usage, p[3].model_seconds) for p in plans] == [
        ("", Usage(10, 5), 2.0),
        ("", Usage(10, 5), 3.0),
    ]
    assert [e for e in store.log if e[0] == "complete"] == [("complete", rec, "L", 0), ("complete", rec, "L", 1)]
    assert (rec.prompt_tokens, rec.completion_tokens, rec.cost_nanos) == (120, 60, 7 + 2 * STEP_COST)
    assert store.log[-1] == ("finish", rec, "L", "m")
    final = store.finished.pop("final_step")
    assert (final.n, final.content, final.tool_calls, final.usage, final.model_seconds) == (
        2,
        "42",
        [],
        Usage(10, 5),
        4.0,
    )
    assert store.finished == {
        "status": Status.DONE,
        "reason": "final_answer",
        "answer": "42",
        "error": "",
        "cost_nanos": STEP_COST,
    }
    # Metrics: 3 calls cost 0.06 EUR; 3 steps; 2 + 1 + 0.5 + 3 + 1 + 0.5 + 4 = 12 s from creation
    # to the end; each tool step spent its 0.5 s of bookkeeping outside the call and the tools.
    assert m.delta("agentfleet_cost_total", {"currency": "EUR"}) == pytest.approx(0.06, abs=1e-12)
    assert m.delta("agentfleet_tasks_total", {"outcome": "final_answer"}) == 1
    assert m.delta("agentfleet_task_steps_sum") == 3
    assert m.delta("agentfleet_task_duration_seconds_sum") == pytest.approx(12.0, abs=1e-9)
    assert m.delta("agentfleet_step_overhead_seconds_count") == 2
    assert m.delta("agentfleet_step_overhead_seconds_sum") == pytest.approx(1.0, abs=1e-9)
    (ended,) = records(caplog, "task ended")
    assert (ended.status, ended.reason, ended.steps) == ("done", "final_answer", 3)


def test_tools_run_with_the_task_its_deadline_and_the_steps_number_in_the_log_context(clock: Clock) -> None:
    # Every tool run is handed the task record, the step's number and calls and the task's
    # deadline; the records the tools log carry task t1 and that step's number.
    store, tools = Store(clock), Tools(clock)
    task_run, _ = run(Model(clock, [call("search", query="a"), call("search", query="b"), "42"]), store, tools)
    assert [
        (r["task"], r["n"], r["calls"][0].arguments, r["deadline"], r["task_id_var"], r["step_var"]) for r in tools.runs
    ] == [
        (task_run.rec, 0, {"query": "a"}, DEADLINE, "t1", 0),
        (task_run.rec, 1, {"query": "b"}, DEADLINE, "t1", 1),
    ]


def test_a_resumed_step_runs_its_tools_as_that_step_and_counts_its_checkpoint_as_overhead(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    # A task resumed with step 0 planned but its tools not run: they run again as step 0 (the
    # log context says step 0, the log names the tools), the observations are stored (0.25 s on
    # the clock) before the next call, and that 0.25 s is the step's overhead: the 3 s of tools
    # are not.
    caplog.set_level(logging.INFO, logger="agentfleet_runtime.loop.agent")
    m = Samples()
    store, tools = Store(clock, complete_seconds=0.25), Tools(clock, seconds=3.0)
    planned = Step(n=0, content="", tool_calls=[call("search", query="a")], usage=Usage(10, 5))
    task_run, outcome = run(Model(clock, ["42"]), store, tools, done=[planned])
    assert outcome == (Status.DONE, "final_answer")
    assert [(r["n"], r["step_var"], r["task_id_var"]) for r in tools.runs] == [(0, 0, "t1")]
    (resumed,) = records(caplog, "resuming step: running its tools again")
    assert resumed.tools == ["search"]
    assert m.delta("agentfleet_step_overhead_seconds_count") == 1
    assert m.delta("agentfleet_step_overhead_seconds_sum") == pytest.approx(0.25, abs=1e-9)


def test_tools_with_effects_store_their_observations_while_the_next_call_runs(clock: Clock) -> None:
    # A step that writes waits for its reply before its tools run, but not for its observations:
    # the next model call starts while they are being stored (30 ms), as for other tools.
    store = Store(clock, complete_delay=0.03)
    model = Model(clock, [call("write", text="x"), "done"], log=store.log)
    _, outcome = run(model, store, Tools(clock))
    assert outcome == (Status.DONE, "final_answer")
    events = store.events()
    assert events.index("plan 0 stored") < events.index("model 1") < events.index("complete 0 stored")


def test_until_the_store_answers_the_budget_counts_the_tree_usage_plus_the_steps_own(clock: Clock) -> None:
    # A step whose tools act on nothing is checked against the budget before the store answers
    # its reply (the store's answer here says 0): the tree's tokens and cost are what they were
    # plus the step's own. One step of Usage(10, 5) at EUR: 15 tokens, 0.02 EUR.
    for limits, reason in ((Limits(max_tokens=15), "max_tokens"), (Limits(max_cost=Decimal("0.02")), "max_cost")):
        store = Store(clock)
        _, outcome = run(
            Model(clock, [call("search", query="a"), "42"]), store, Tools(clock), limits=limits, prices=EUR
        )
        assert outcome == (Status.DONE, reason), limits


# -- endings -----------------------------------------------------------------------------------
def test_a_budget_ends_the_task_with_the_best_answer_no_final_step_and_no_cost(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    # max_steps 1: after one search step the budget stops the task before a second call; it
    # ends done with reason max_steps, the latest observation as its answer, no final step and
    # no cost of its own. One step counted; 0.5 s from creation to the end (the reply's).
    caplog.set_level(logging.INFO, logger="agentfleet_runtime.loop.agent")
    m = Samples("max_steps")
    store, tools = Store(clock, plan_seconds=0.5), Tools(clock, outputs=["VACUUM FULL takes an ACCESS EXCLUSIVE lock"])
    model = Model(clock, [call("search", query="a"), "42"])
    _, outcome = run(model, store, tools, limits=Limits(max_steps=1))
    assert outcome == (Status.DONE, "max_steps") and len(model.requests) == 1
    answer = "(no final answer; last search result) VACUUM FULL takes an ACCESS EXCLUSIVE lock"
    assert store.finished == {
        "status": Status.DONE,
        "reason": "max_steps",
        "answer": answer,
        "error": "",
        "final_step": None,
        "cost_nanos": 0,
    }
    (reached,) = records(caplog, "budget reached")
    assert reached.reason == "max_steps"
    assert m.delta("agentfleet_tasks_total", {"outcome": "max_steps"}) == 1
    assert m.delta("agentfleet_task_steps_sum") == 1
    assert m.delta("agentfleet_task_duration_seconds_sum") == pytest.approx(0.5, abs=1e-9)


@pytest.mark.parametrize(("late_by", "ends"), [(0.01, True), (0.02, False)])
def test_a_call_that_times_out_ends_the_task_only_within_10_ms_of_its_deadline(
    clock: Clock, late_by: float, ends: bool
) -> None:
    # A model call that raises TimeoutError with the clock 10 ms or less before the deadline:
    # the task's time is up, it ends done with reason timeout and its best answer. 20 ms
    # before: the timeout was the call's own, and it is raised for the worker to retry.
    class LateModel(Model):
        async def complete(self, request):
            self.requests.append(request)
            clock.now = DEADLINE - late_by
            raise TimeoutError

    done = [Step(n=0, content="It is probably 42.", tool_calls=[], usage=Usage())]
    store = Store(clock)
    _, outcome = run(LateModel(clock, []), store, Tools(clock), done=done)
    if ends:
        assert outcome == (Status.DONE, "timeout")
        assert store.finished == {
            "status": Status.DONE,
            "reason": "timeout",
            "answer": "It is probably 42.",
            "error": "",
            "final_step": None,
            "cost_nanos": 0,
        }
    else:
        assert isinstance(outcome, TimeoutError) and store.finished == {}


def test_a_context_overflow_is_logged_with_the_first_300_characters_of_its_error(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    # The engine's 400-character refusal: the task ends with max_context and its warning keeps
    # the first 300 characters.
    caplog.set_level(logging.INFO, logger="agentfleet_runtime.loop.agent")
    error = "x" * 299 + "y" + "z" * 100
    store = Store(clock)
    _, outcome = run(Model(clock, [ContextOverflow(error)]), store, Tools(clock))
    assert outcome == (Status.DONE, "max_context") and store.finished["reason"] == "max_context"
    (warned,) = records(caplog, "context exhausted")
    assert warned.levelno == logging.WARNING and warned.error == "x" * 299 + "y"


def test_native_calls_with_bad_arguments_and_no_text_are_shown_back_as_tool_calls(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    # A native reply with no text and two calls, the first failing its schema: the repair turn
    # shows the model its calls written as <tool_call> text, one a line, with the problem; the
    # step is the repaired call, its usage and model time both calls' ((10, 5) x 2; 2 + 3 s).
    caplog.set_level(logging.INFO, logger="agentfleet_runtime.loop.agent")
    store, tools = Store(clock), Tools(clock)
    bad = ModelReply(content="", tool_calls=(call("search", q="x"), call("write", text="y")), usage=Usage(10, 5))
    model = Model(clock, [bad, call("search", query="x"), "42"], seconds=[2.0, 3.0, 0.0])
    task_run, outcome = run(model, store, tools)
    assert outcome == (Status.DONE, "final_answer")
    shown, asked = model.requests[1].messages[-2:]
    written = (
        '<tool_call>{"name":"search","arguments":{"q":"x"}}</tool_call>\n'
        '<tool_call>{"name":"write","arguments":{"text":"y"}}</tool_call>'
    )
    assert shown == {"role": "assistant", "content": written}
    assert asked["content"].startswith("That reply cannot be used: search.arguments.query is required")
    (repairing,) = records(caplog, "repairing a decision")
    assert repairing.problem.startswith("search.arguments.query is required")
    step = task_run.steps[0]
    assert (step.tool_calls, step.usage, step.model_seconds) == ([call("search", query="x")], Usage(20, 10), 5.0)


def test_a_repair_is_logged_with_the_first_300_characters_of_its_problem(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    # A call of a tool named by 300 x's: the problem reads "there is no tool 'xxx...'; the tools
    # are: search, write", and the log keeps its first 300 characters: the 18 of "there is no
    # tool '" and 282 x's.
    caplog.set_level(logging.INFO, logger="agentfleet_runtime.loop.agent")
    _, outcome = run(Model(clock, [call("x" * 300), "42"]), Store(clock), Tools(clock))
    assert outcome == (Status.DONE, "final_answer")
    (repairing,) = records(caplog, "repairing a decision")
    assert repairing.problem == "there is no tool '" + "x" * 282


def test_a_cancelled_task_cancels_its_children_and_ends_with_its_best_answer_unasked(clock: Clock) -> None:
    # A task whose cancel flag is set when it is taken: each child's tree is cancelled, the
    # task ends cancelled with the best answer of its stored steps, and the model is never asked.
    store = Store(clock, children=["t1.0", "t1.1"])
    model = Model(clock, ["42"])
    done = [Step(n=0, content="It is probably 42.", tool_calls=[], usage=Usage())]
    task_run, outcome = run(model, store, Tools(clock), done=done, cancel=True)
    assert outcome == (Status.CANCELLED, "cancelled") and model.requests == []
    assert store.log[:3] == [("children", "t1"), ("cancel_tree", "t1.0"), ("cancel_tree", "t1.1")]
    assert store.log[3] == ("finish", task_run.rec, "L", "m")
    assert store.finished == {
        "status": Status.CANCELLED,
        "reason": "cancelled",
        "answer": "It is probably 42.",
        "error": "",
        "final_step": None,
        "cost_nanos": 0,
    }


def test_a_draining_worker_releases_the_task_after_storing_the_last_observations(clock: Clock) -> None:
    # Draining seen at the top of step 1: the task is released (Released names it) only after
    # step 0's observations, still being stored (30 ms), are stored; nothing more is asked.
    store = Store(clock, complete_delay=0.03)
    model = Model(clock, [call("search", query="a"), "42"])
    _, outcome = run(model, store, Tools(clock), draining=lambda: len(model.requests) == 1)
    assert isinstance(outcome, Released) and outcome.args == ("t1",)
    assert "complete 0 stored" in store.events() and len(model.requests) == 1


# -- leaving early -------------------------------------------------------------------------------
@pytest.mark.parametrize("store_fails", [False, True])
def test_a_failed_call_raises_its_own_error_after_the_last_observations_are_kept_if_they_can_be(
    clock: Clock, store_fails: bool
) -> None:
    # The call of step 1 fails while step 0's observations are being stored (30 ms): the task
    # raises the model's error, not the store's, and only once that store has ended (stored, or
    # failed with a lost lease); nothing is left pending.
    store = Store(clock, complete_delay=0.03, complete_fail=LeaseLost("t1") if store_fails else None)
    boom = ModelError("the engine is down", retryable=True)
    task_run, outcome = run(Model(clock, [call("search", query="a"), boom]), store, Tools(clock))
    assert outcome is boom and task_run._saving is None and task_run._saving_reply is None
    assert ("complete 0 stored" in store.events()) is not store_fails
    assert ("complete", task_run.rec, "L", 0) in store.log


def test_tools_that_fail_while_their_plan_is_stored_leave_after_the_plan_is(clock: Clock) -> None:
    # Tools without effects run while their step's plan is stored (30 ms); when they raise, the
    # task raises their error only after the reply's reply is in (no observations are stored).
    store = Store(clock, plan_delay=0.03)
    tools = Tools(clock, fail=RuntimeError("the tool crashed"))
    _, outcome = run(Model(clock, [call("search", query="a")]), store, tools)
    assert isinstance(outcome, RuntimeError) and str(outcome) == "the tool crashed"
    assert store.events() == ["plan 0 stored"]


@pytest.mark.parametrize(
    ("tool", "fold", "reply", "error", "message"),
    [
        ("write", False, [-2, "3"], CheckpointConflict, "task t1: step 0 does not follow the 3 stored steps"),
        ("write", False, [-1], LeaseLost, "t1"),
        ("search", True, [-2, "5"], CheckpointConflict, "task t1: step 0 does not follow the 5 stored steps"),
        ("search", True, [-1], LeaseLost, "t1"),
    ],
)
def test_a_refused_plan_raises_what_the_store_says_for_the_task_and_step(
    clock: Clock, tool: str, fold: bool, reply: list[Any], error: type, message: str
) -> None:
    # A plan the store refuses (a lost lease, a step that does not follow the stored ones) is
    # raised with the task's id and the step's number, whether the loop waited for the reply
    # (tools with effects) or the observations went with it (folded).
    store = Store(clock, plans=[reply], fold=fold)
    _, outcome = run(Model(clock, [call(tool, query="a", text="x"), "42"]), store, Tools(clock))
    assert type(outcome) is error and str(outcome) == message


@pytest.mark.parametrize("where", ["plan with effects", "folded plan", "resumed observations"])
def test_a_cancel_seen_at_a_checkpoint_raises_cancelled_naming_the_task(clock: Clock, where: str) -> None:
    # The cancel flag, returned by the reply of a step with effects (its tools never run, no
    # second call), by a reply that carries the observations (seen once the second call is in,
    # before that step is planned), or by the observations of a resumed step (before any
    # call): Cancelled, naming t1, and no further step planned.
    done: list[Step] = []
    if where == "plan with effects":
        store, script = Store(clock, plans=[plan_reply(cancel=True)]), [call("write", text="x"), "42"]
    elif where == "folded plan":
        store, script = Store(clock, plans=[plan_reply(cancel=True)], fold=True), [call("search", query="a"), "42"]
    else:
        store, script = Store(clock, complete_cancel=True), ["42"]
        done = [Step(n=0, content="", tool_calls=[call("search", query="a")], usage=Usage(10, 5))]
    tools = Tools(clock)
    model = Model(clock, script)
    _, outcome = run(model, store, tools, done=done)
    assert isinstance(outcome, Cancelled) and outcome.args == ("t1",)
    calls, runs = {"plan with effects": (1, 0), "folded plan": (2, 1), "resumed observations": (0, 1)}[where]
    assert (len(model.requests), len(tools.runs)) == (calls, runs)
    assert [e[3].n for e in store.log if e[0] == "plan"] == ([] if done else [0])


# -- the sources a JSON answer may cite ------------------------------------------------------------
JSON_MODE = LoopSettings("s", decisions=DecisionSettings(mode="JSONSchema"))


def test_passage_numbers_name_the_latest_searchs_passages_not_another_tools_output(clock: Clock) -> None:
    # A search shows [1] a.html; then a tool that is not a search (write) returns text laid out
    # like passages, [1] b.html. An answer citing "[1]" cites the search's passage: a.html.
    outputs = ["[1] (a.html, score 0.9)\nVACUUM FULL locks the table", "[1] (b.html, score 0.8)\nwritten"]
    store, tools = Store(clock), Tools(clock, outputs=outputs)
    script = [
        '{"action": "search", "arguments": {"query": "lock"}}',
        '{"action": "write", "arguments": {"text": "x"}}',
        '{"action": "answer", "answer": "ACCESS EXCLUSIVE", "sources": ["[1]"]}',
    ]
    model = Model(clock, script)
    _, outcome = run(model, store, tools, settings=JSON_MODE)
    assert outcome == (Status.DONE, "final_answer")
    assert store.finished["answer"] == "ACCESS EXCLUSIVE\n\nSources: a.html"
    # The decisions are described after the agent's own prompt, a blank line between.
    protocol = (
        'Decide one action at a time. Reply with one JSON object and nothing else:\n- {"action": "search", '
        '"arguments": {"query": "<string>"}}  (Searches the manual.)'
    )
    assert model.requests[0].messages[0]["content"].startswith("s\n\n" + protocol)


def test_a_failed_tool_calls_output_is_not_a_source_an_answer_may_cite(clock: Clock) -> None:
    # A search that found a.html, then one that failed with an error naming x.html: an answer
    # citing x.html gets a repair turn (x.html was never retrieved); the repaired one stands.
    outputs = [(True, "[1] (a.html, score 0.9)\nVACUUM FULL locks the table"), (False, "could not fetch x.html")]
    store, tools = Store(clock), Tools(clock, outputs=outputs)
    bad = '{"action": "answer", "answer": "ACCESS EXCLUSIVE", "sources": ["x.html"]}'
    good = '{"action": "answer", "answer": "ACCESS EXCLUSIVE", "sources": ["a.html"]}'
    s1, s2 = '{"action": "search", "arguments": {"query": "lock"}}', '{"action": "search", "arguments": {"query": "x"}}'
    model = Model(clock, [s1, s2, bad, good])
    _, outcome = run(model, store, tools, settings=JSON_MODE)
    assert (
        outcome == (Status.DONE, "final_answer") and store.finished["answer"] == "ACCESS EXCLUSIVE\n\nSources: a.html"
    )
    assert "x.html is not one" in model.requests[3].messages[-1]["content"]


def test_a_json_schema_agent_without_tools_asks_for_and_stores_a_plain_answer(clock: Clock) -> None:
    # decisions.mode JSONSchema on an agent with no tools: there is no action to decide, so the
    # loop reads each reply as plain text, and the request must not constrain the reply to the
    # decision's JSON either (the stored answer would be that JSON). The fake engine decodes as
    # a grammar does: the decision object when a response_format is sent, plain text otherwise.
    class Engine(Model):
        async def complete(self, request):
            self.requests.append(request)
            if request.response_format is not None:
                return ModelReply('{"action": "answer", "answer": "4", "sources": []}', usage=Usage(10, 5))
            return ModelReply("4", usage=Usage(10, 5))

    store, model = Store(clock), Engine(clock, [])
    _, outcome = run(model, store, Tools(clock, schemas=()), settings=JSON_MODE)
    assert outcome == (Status.DONE, "final_answer")
    assert model.requests[0].response_format is None and store.finished["answer"] == "4"


# -- a JSON decision never becomes the stored answer -----------------------------------------------
CUT = '{"action": "answer", "answer": "The default is 5min (five minutes) and the checkpoint is spread'


@pytest.mark.parametrize(
    ("replies", "answer"),
    [
        # max_tokens cut both the reply and its repair: the answer's text so far is the answer.
        ([CUT, CUT + " over"], "The default is 5min (five minutes) and the checkpoint is spread over"),
        # a cut inside an escape: the text up to it
        (['{"action": "answer", "answer": "uses \\"fsync\\" and \\u00'] * 2, 'uses "fsync" and'),
        # an empty answer, twice: no answer rather than the decision
        (['{"action": "answer", "answer": " ", "sources": []}'] * 2, ""),
        # the answer field without an action
        (['{"answer": "replica", "sources": ["a.html"]}'] * 2, "replica"),
        # the decision wrapped in the answer's own text
        (['{"action": "answer", "answer": "{\\"action\\": \\"answer\\", \\"answer\\": \\"replica\\"}"}'], "replica"),
    ],
)
def test_an_unusable_json_answer_is_stored_as_its_text(clock: Clock, replies: list[str], answer: str) -> None:
    # Seen in an eval run: an answer stored as '{"action": "answer", "answer": ...}'. A reply the
    # loop cannot read as a decision (cut off by max_tokens, an empty answer, no action) is
    # repaired once; when the repair fails too, the task ends with the answer's text.
    store, model = Store(clock), Model(clock, replies)
    _, outcome = run(model, store, Tools(clock), settings=JSON_MODE)
    assert outcome == (Status.DONE, "final_answer")
    assert store.finished["answer"] == answer
    assert '"action"' not in store.finished["answer"]


def test_a_json_decision_written_unasked_is_stored_as_its_answer(clock: Clock) -> None:
    # ToolCalls mode: nothing asked for a JSON decision, yet the model wrote one as its text. The
    # answer is its text and sources; a JSON answer that is not a decision stays as written.
    decision = '{"action": "answer", "answer": "replica", "sources": ["a.html"]}'
    plain = '{"wal_level": "replica"}'
    for reply, answer in ((decision, "replica\n\nSources: a.html"), (plain, plain)):
        store = Store(clock)
        _, outcome = run(Model(clock, [reply]), store, Tools(clock))
        assert outcome == (Status.DONE, "final_answer") and store.finished["answer"] == answer
