"""What `agentfleet eval` reads from the task API's views: the model calls a task made."""

from __future__ import annotations

from agentfleet_eval.outcome import outcome_of

from agentfleet_runtime.core.types import Limits, Observation, Status, Step, ToolCall, Usage
from agentfleet_runtime.server.submission import new_task, parse_submission, task_view
from agentfleet_runtime.tools.retrieval import format_passages
from agentfleet_runtime.worker import oneshot

FLEET = Limits(max_steps=10, max_tokens=5000, timeout_seconds=60, max_cost=None)
PASSAGE = {"source": "sql-vacuum.html", "score": 0.8, "text": "VACUUM FULL requires an ACCESS EXCLUSIVE lock."}


def _search_step(n: int) -> Step:
    """The loop's own search: a step with a tool call and no model call (Usage(), no model time)."""
    call = ToolCall(f"c{n}", "search_docs", {"query": "VACUUM FULL lock"})
    found = Observation(call.id, call.name, True, format_passages([PASSAGE]))
    return Step(n, "", [call], Usage(), observations=[found])


def _answered(steps: list[Step]) -> dict:
    rec = new_task("t1", parse_submission({"goal": "VACUUM FULL lock?"}, None, 100, FLEET), 1000.0)
    rec.status, rec.answer = Status.DONE, "ACCESS EXCLUSIVE [source: sql-vacuum.html]"
    return task_view(rec, {}, steps, len(steps), [], "USD", frozenset({"search_docs"}))


def test_a_task_that_ends_on_its_first_answer_made_one_model_call_not_two():
    first = Step(1, "ACCESS EXCLUSIVE [source: sql-vacuum.html]", [], Usage(600, 20, calls=1), model_seconds=4.0)
    out = outcome_of([_answered([_search_step(0), first])])
    assert out.steps == 2 and out.model_calls == 1 and out.tool_calls == {"search_docs": 1}


def test_the_unknown_names_search_and_the_loops_calls_are_counted_apart():
    calls = [Step(2, "", [ToolCall("c9", "search_docs", {"query": "q"})], Usage(700, 30, calls=1), model_seconds=5.0)]
    calls.append(Step(3, "ACCESS EXCLUSIVE [source: sql-vacuum.html]", [], Usage(900, 25, calls=1), model_seconds=6.0))
    out = outcome_of([_answered([_search_step(0), _search_step(1), *calls])])
    assert out.model_calls == 2


def test_a_model_call_that_reported_no_tokens_still_counts():
    # A server that returns no usage block: the reply is still one call (parse_chat_completion's).
    step = Step(1, "ACCESS EXCLUSIVE", [], Usage(calls=1), model_seconds=2.5)
    assert outcome_of([_answered([_search_step(0), step])]).model_calls == 1


def test_a_second_reading_on_one_step_counts_as_two_calls():
    # The answer-first call and its second reading end the task on one step whose usage is both
    # calls': counting steps with tokens said 1 (the PostgreSQL fresh-b run's 0.8 calls per task).
    read_twice = Step(1, "ACCESS EXCLUSIVE [source: sql-vacuum.html]", [], Usage(1200, 40, calls=2), model_seconds=8.0)
    assert outcome_of([_answered([_search_step(0), read_twice])]).model_calls == 2


def test_a_view_from_before_model_calls_counts_its_steps_with_tokens_or_time():
    first = Step(1, "ACCESS EXCLUSIVE [source: sql-vacuum.html]", [], Usage(600, 20, calls=1), model_seconds=4.0)
    view = _answered([_search_step(0), first])
    for step in view["steps"]:
        del step["modelCalls"]
    assert outcome_of([view]).model_calls == 1


def test_a_one_shot_baselines_view_counts_its_one_call_and_a_tree_sums_its_tasks():
    view = oneshot.view(
        "q1", "VACUUM FULL lock?", answer="ACCESS EXCLUSIVE", passages=[PASSAGE], usage=Usage(500, 9),
        cost_nanos=0, seconds=1.0, tool="search_docs",
    )  # fmt: skip
    assert outcome_of([view]).model_calls == 1
    first = Step(1, "x", [], Usage(600, 20, calls=1), model_seconds=4.0)
    assert outcome_of([_answered([_search_step(0), first]), _answered([_search_step(0), first])]).model_calls == 2
