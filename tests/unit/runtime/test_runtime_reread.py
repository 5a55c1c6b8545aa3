"""Cascade's ``reread`` variant: a first answer that fails its check is read again once over the same
passages, without tools, as a fresh request in the fleet's form. Its answer ends the task when it passes
the check; one that fails ends held to the passages (no loop). Model, store and tools are the fakes of
test_runtime_decisions (the logic under test is ours)."""

from __future__ import annotations

import pytest

from agentfleet_runtime.answering.answercheck import (
    ANSWER_FIRST,
    DECLINE,
    passage_numbers,
    tidy_citations,
)
from agentfleet_runtime.answering.policies import Cascade
from agentfleet_runtime.core.citations import parse_citations
from agentfleet_runtime.core.types import Observation, Usage
from agentfleet_runtime.loop.agent import LoopSettings
from tests.unit.runtime.test_runtime_decisions import ANSWER, FIRST_SEARCH, SEARCH, ScriptedModel, Tools, run_task

RIGHT = "ACCESS EXCLUSIVE [source: explicit-locking.html]"
DECLINED = "The passages do not say which lock it takes."
INVENTED = "VACUUM FULL takes a lock for 30 seconds [source: explicit-locking.html]"


def settings(reread: bool = True) -> LoopSettings:
    return LoopSettings("s", decisions=FIRST_SEARCH, answering=Cascade("search", reread=reread))


def test_a_right_answer_on_the_second_reading_ends_the_task_without_the_loop():
    model = ScriptedModel([DECLINED, RIGHT])
    _, finished, tools, _ = run_task(model, settings())
    assert finished["answer"].startswith("ACCESS EXCLUSIVE")
    assert len(model.requests) == 2 and [c.name for c in tools.calls] == ["search"]  # no search after the first
    first, second = model.requests
    # A fresh request over the same passages, without tools: the model is not shown the decline it
    # would repeat, and nothing is searched again.
    assert second.tools == [] and DECLINED not in str(second.messages)
    passage = "VACUUM FULL takes an ACCESS EXCLUSIVE lock"  # the first search's passage, read again
    assert passage in first.messages[-1]["content"] and passage in second.messages[-1]["content"]
    step = finished["final_step"]
    # Both calls are the task's usage; the first answer is kept, so the eval counts what the reading won.
    assert step.usage == Usage(200, 20, calls=2) and step.first_answer == DECLINED


def test_a_corrected_value_on_the_second_reading_stands():
    model = ScriptedModel([INVENTED, RIGHT])
    _, finished, _, _ = run_task(model, settings())
    assert finished["answer"].startswith("ACCESS EXCLUSIVE") and finished["final_step"].first_answer == INVENTED


def test_with_the_loop_off_a_failed_second_reading_ends_held_to_the_passages():
    # An invented value after a decline becomes the decline, never the answer.
    model = ScriptedModel([DECLINED, INVENTED])
    _, finished, tools, _ = run_task(model, settings())
    assert finished["answer"] == DECLINE and len(model.requests) == 2 and len(tools.calls) == 1
    assert finished["final_step"].first_answer == DECLINED
    # A second decline stands in its own words.
    _, finished, _, _ = run_task(ScriptedModel([INVENTED, DECLINED]), settings())
    assert finished["answer"] == DECLINED


def test_a_right_first_answer_is_never_read_again():
    model = ScriptedModel([RIGHT])
    _, finished, _, _ = run_task(model, settings())
    assert finished["answer"].startswith("ACCESS EXCLUSIVE") and len(model.requests) == 1


def test_after_a_decline_a_code_name_no_passage_mentions_is_held_on_the_second_reading_too():
    # The first answer's value check reads values; after a decline the hold reads code names as well.
    named = "Call pg_vacuum_lock() first [source: explicit-locking.html]"
    model = ScriptedModel([DECLINED, named])
    _, finished, _, _ = run_task(model, settings())
    assert finished["answer"] == DECLINE


def test_off_by_default_the_loop_follows_a_failed_first_answer_directly():
    model = ScriptedModel([DECLINED, SEARCH, ANSWER])
    _, finished, _, _ = run_task(model, settings(reread=False))
    assert len(model.requests) == 3 and "Decide one action" in str(model.requests[1].messages)  # the loop's call
    assert finished["answer"].startswith("ACCESS EXCLUSIVE")


def test_a_fresh_reading_asks_anew_in_the_fleets_form_without_the_first_answer():
    model = ScriptedModel([DECLINED, RIGHT])
    _, finished, _, _ = run_task(model, settings())
    first, second = model.requests
    # Not the first request continued: the model is not shown the decline it would repeat. The Fleet
    # form: the fleet's system prompt, then the answer-first instruction.
    assert DECLINED not in str(second.messages) and first.messages[0] != second.messages[0]
    assert second.messages[0] == {"role": "system", "content": "s"}
    assert ANSWER_FIRST in second.messages[1]["content"]
    assert finished["answer"].startswith("ACCESS EXCLUSIVE") and finished["final_step"].first_answer == DECLINED


class ThreePassages(Tools):
    """A search that returns three passages of three documents: only the second states the lock."""

    async def run_step(self, task, n, calls, deadline):
        self.calls += calls
        out = (
            "[1] (routine-vacuuming.html, score 0.9)\nVACUUM reclaims storage.\n\n"
            "[2] (explicit-locking.html, score 0.8)\nVACUUM FULL takes an ACCESS EXCLUSIVE lock.\n\n"
            "[3] (sql-vacuum.html, score 0.7)\nVACUUM FULL rewrites the table."
        )
        return [Observation(c.id, c.name, True, out) for c in calls]


@pytest.mark.parametrize("replies", [["{said}"], [DECLINED, "{said}"]], ids=["first reading", "second reading"])
def test_a_passage_cited_by_its_number_alone_is_cited_as_its_document(replies):
    # A Python fresh set's right answer ended "The source of this information is [3]." and cited no
    # document: the number is the request's, and the request numbered the passages.
    said = "Its lock is exclusive. The source of this information is [2]."  # no value to cite it by
    model = ScriptedModel([r.format(said=said) for r in replies])
    _, finished, _, _ = run_task(model, settings(), tools=ThreePassages())
    assert finished["answer"].startswith("Its lock is exclusive")
    assert parse_citations(finished["answer"]) == ["explicit-locking.html"], finished["answer"]


def test_passage_numbers_are_the_requests_own():
    one = "[1] (a.html, score 0.9)\nA.\n\n[2] (b.html, score 0.8)\nB."
    two = "[1] (c.html, score 0.9)\nC.\n\n[2] (b.html, score 0.8)\nB again."
    # One-shot RAG's request numbers every passage from 1 in order; the Fleet form shows each search
    # as written, so a number two searches give to different documents names neither.
    assert passage_numbers([one, two], "OneShot") == {1: "a.html", 2: "b.html", 3: "c.html", 4: "b.html"}
    assert passage_numbers([one, two], "Fleet") == {2: "b.html"}
    numbered = {1: "a.html", 2: "b.html"}
    assert tidy_citations("It is A [1], and B [1, 2].", numbered) == (
        "It is A [source: a.html], and B [source: a.html, b.html]."
    )
    # An index, an unknown number and a head line copied whole are not a number cited alone.
    assert tidy_citations("Use argv[1]; see [7].", numbered) == "Use argv[1]; see [7]."
    assert tidy_citations("A [1] (a.html, score 0.900)", numbered) == "A [source: a.html]"
    assert tidy_citations("It is A [1].") == "It is A [1]."  # no numbering given: as written


def test_after_a_first_decline_a_second_decline_that_describes_first_ends_as_the_decline():
    # A PostgreSQL fresh-e answer about a setting no page names: the first reading declined, the
    # second described the setting, then declined; the task ended with the description.
    described = "Setting it to direct starts the handshake at once. The manual does not say."
    _, finished, _, _ = run_task(ScriptedModel([DECLINED, described]), settings())
    assert finished["answer"] == DECLINE and finished["final_step"].first_answer == DECLINED
