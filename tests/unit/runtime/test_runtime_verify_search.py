"""The verifying search (answering.verifySearch): a first answer stating values no first passage
holds searches once with its own words, without a model call, and ends the task when what that search
finds holds them; else the task goes on as it would have. Model, store and tools are the fakes of
test_runtime_decisions (the logic under test is ours)."""

from __future__ import annotations

from agentfleet_runtime.core.types import Observation, Usage
from agentfleet_runtime.loop.agent import LoopSettings
from agentfleet_runtime.loop.answercheck import DECLINE
from agentfleet_runtime.loop.answerfirst import VERIFY_READ_AROUND, verify_query
from tests.unit.runtime.test_runtime_decisions import FIRST_SEARCH, ScriptedModel, Tools, run_task

GOAL = "How long does VACUUM FULL wait for its lock?"
RIGHT_FROM_MEMORY = "VACUUM FULL waits 30 seconds for its lock [source: explicit-locking.html]"
RIGHT = "ACCESS EXCLUSIVE [source: explicit-locking.html]"
DECLINED = "The passages do not say how long it waits."
FIRST_PAGE = "[1] (explicit-locking.html, score 0.9)\nVACUUM FULL takes an ACCESS EXCLUSIVE lock."
HOLDS_IT = "[1] (sql-vacuum.html, score 0.8)\nVACUUM FULL waits up to 30 seconds for the lock."
ANOTHER_THING = "[1] (runtime-config-client.html, score 0.7)\nlock_timeout aborts a statement after 30 seconds."


class Searches(Tools):
    """The first search returns FIRST_PAGE; later ones what ``later`` gives (or fail), by query."""

    def __init__(self, later: str | None = HOLDS_IT) -> None:
        super().__init__()
        self.later = later

    async def run_step(self, task, n, calls, deadline):
        self.calls += calls
        first = len(self.calls) == len(calls)
        if not first and self.later is None:
            return [Observation(c.id, c.name, False, "search failed: timeout") for c in calls]
        return [Observation(c.id, c.name, True, FIRST_PAGE if first else self.later) for c in calls]


def settings(**kw) -> LoopSettings:
    kw = {"search_first": "search", "answer_first": True, "answer_first_prompt": "OneShot", "verify_search": True, **kw}
    return LoopSettings("s", decisions=FIRST_SEARCH, **kw)


def test_a_right_value_from_memory_that_the_manual_states_elsewhere_ends_the_task_cited_there():
    """Held-out cmp-smallint-vs-bigint and fresh nntp: the 1.5B's right value was on no first page."""
    model = ScriptedModel([RIGHT_FROM_MEMORY])
    _, finished, tools, task_run = run_task(model, settings(), goal=GOAL, tools=Searches())
    assert len(model.requests) == 1  # the search is not a model call
    assert [c.arguments["query"] for c in tools.calls] == [GOAL, "VACUUM FULL waits 30 seconds for its lock"]
    # The verifying search joins a neighbouring chunk a side (the value is often beside what ranks).
    assert [c.arguments.get("read_around") for c in tools.calls] == [None, VERIFY_READ_AROUND] == [None, 1]
    # Cited where the value is (citing.cite adds the page the model's own citation missed).
    assert finished["answer"].startswith(RIGHT_FROM_MEMORY) and "sql-vacuum.html" in finished["answer"]
    step = finished["final_step"]
    assert step.usage == Usage(100, 10, calls=1) and step.first_answer == finished["answer"]
    assert [s.usage for s in task_run.steps[:2]] == [Usage(), Usage()]  # two searches, no model calls


def test_an_answer_the_second_search_does_not_hold_goes_on_as_before():
    model = ScriptedModel([RIGHT_FROM_MEMORY, RIGHT])
    _, finished, tools, _ = run_task(model, settings(reread="Fleet"), goal=GOAL, tools=Searches(FIRST_PAGE))
    assert len(tools.calls) == 2 and len(model.requests) == 2  # searched, then read again
    assert (
        finished["answer"].startswith("ACCESS EXCLUSIVE") and finished["final_step"].first_answer == RIGHT_FROM_MEMORY
    )
    # The second reading reads the first passages only, as without the setting.
    assert "waits up to" not in model.requests[1].messages[-1]["content"]
    model = ScriptedModel([RIGHT_FROM_MEMORY, RIGHT_FROM_MEMORY])
    _, finished, _, _ = run_task(model, settings(reread="Fleet", escalate=False), goal=GOAL, tools=Searches(FIRST_PAGE))
    assert finished["answer"] == DECLINE  # held to the passages, as before


def test_a_failed_search_verifies_nothing():
    model = ScriptedModel([RIGHT_FROM_MEMORY, RIGHT_FROM_MEMORY])
    _, finished, tools, _ = run_task(model, settings(reread="Fleet", escalate=False), goal=GOAL, tools=Searches(None))
    assert len(tools.calls) == 2 and finished["answer"] == DECLINE


def test_values_another_things_page_holds_verify_nothing_with_decline_other_subjects():
    goal, said = "How long does sqlite3.connect() wait for a lock?", "It waits 30 seconds [source: sqlite3.html]"
    on = settings(reread="Fleet", escalate=False, decline_other_subjects=True)
    model = ScriptedModel([said, said])
    _, finished, _, _ = run_task(model, on, goal=goal, tools=Searches(ANOTHER_THING))
    assert finished["answer"] == DECLINE and len(model.requests) == 2
    # Without it, any page holding the value does (the first answer's own rule).
    model = ScriptedModel([said])
    _, finished, _, _ = run_task(model, settings(), goal=goal, tools=Searches(ANOTHER_THING))
    assert "runtime-config-client.html" in finished["answer"] and len(model.requests) == 1


def test_no_verifying_search_for_a_decline_a_supported_answer_or_with_the_setting_off():
    for reply, on in ((DECLINED, True), (RIGHT, True), (RIGHT_FROM_MEMORY, False)):
        model = ScriptedModel([reply, RIGHT])
        _, _, tools, _ = run_task(model, settings(verify_search=on, reread="Fleet"), goal=GOAL, tools=Searches())
        assert len(tools.calls) == 1, reply


def test_the_query_is_the_answers_words_and_the_question_before_a_short_one():
    assert verify_query("NNTP's default port is 119 [source: nntplib.html].", "q") == "NNTP's default port is 119 ."
    assert verify_query("119 [source: nntplib.html]\nSources: nntplib.html", "What port?\n") == "What port? 119"
