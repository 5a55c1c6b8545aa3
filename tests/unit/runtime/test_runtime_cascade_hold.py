"""The cascade's loop never undoes a right decline (issue 59, item 2): after a first answer that
says the passages do not answer, the loop's final answer is held to the passages by default, a
value or a code name no retrieved passage holds turns it into the decline; and a final answer
states the answer, never a passage in its place (item 3). The model is the project's scripted
model (testing/scripted_model.py, in process), scripted per turn: turn 0 is the answer-first
call, later turns are the loop's."""

from __future__ import annotations

import json

from agentfleet_runtime.answering.answercheck import CITATION_PROBLEM, DECLINE, citation_in_place, tidy_citations
from agentfleet_runtime.answering.policies import Cascade
from agentfleet_runtime.core.types import Observation
from agentfleet_runtime.loop.agent import LoopSettings
from agentfleet_runtime.loop.decisions import DecisionSettings
from agentfleet_runtime.testing.scripted_model import ScriptedClient, ScriptedModel
from tests.unit.runtime.test_runtime_decisions import FIRST_SEARCH, Tools, run_task
from tests.unit.runtime.test_runtime_decisions import ScriptedModel as ScriptedList

GOAL = "What is the default port of PostgreSQL's built-in HTTP REST API server?"
FIRST_DECLINES = "The passages do not say which port it listens on."


def loop_answers(answer: str, first: str = FIRST_DECLINES) -> ScriptedClient:
    final = json.dumps({"action": "answer", "answer": answer, "sources": ["explicit-locking.html"]})
    turns = [{"content": first}, {"content": final}]
    return ScriptedClient(ScriptedModel(rules=[{"match": "REST API", "turns": turns}]))


def settings() -> LoopSettings:
    return LoopSettings("s", answering=Cascade("search"), decisions=FIRST_SEARCH)


class Rest(Tools):
    """The search's passage names what the question does (no unknown name to decline), and no port."""

    async def run_step(self, task, n, calls, deadline):
        text = "[1] (explicit-locking.html, score 0.9)\nVACUUM FULL takes an ACCESS EXCLUSIVE lock (0). "
        text += "PostgreSQL has no built-in HTTP REST API server."
        return [Observation(c.id, c.name, True, text) for c in calls]


def test_a_value_the_loop_invents_after_a_decline_becomes_the_decline():
    model = loop_answers("The REST API server listens on port 8080.")
    _, finished, _, _ = run_task(model, settings(), goal=GOAL, tools=Rest())
    assert finished["answer"] == DECLINE
    assert model.model.total_calls == 2  # the first answer, then the loop's one call
    # A code name no passage mentions is held as a value is (held-out py-none-yaml).
    _, finished, _, _ = run_task(
        loop_answers("Use `pg_rest_listen()` on port 5432."), settings(), goal=GOAL, tools=Rest()
    )
    assert finished["answer"] == DECLINE


def test_what_the_passages_hold_and_a_decline_stand():
    for answer in ("VACUUM FULL takes an ACCESS EXCLUSIVE lock (0).", "The documentation does not say."):
        _, finished, _, _ = run_task(loop_answers(answer), settings(), goal=GOAL, tools=Rest())
        assert finished["answer"].startswith(answer)
        # The escalated first answer rides on the loop's first step (the task API's firstAnswer).
        assert finished["final_step"].first_answer == FIRST_DECLINES


def test_without_a_declined_first_answer_the_answer_stands():
    invented = "The REST API server listens on port 8080."
    # The first answer failed the value check (it did not decline): no hold.
    _, finished, _, _ = run_task(
        loop_answers(invented, first="It listens on 9999."), settings(), goal=GOAL, tools=Rest()
    )
    assert finished["answer"].startswith(invented)


# -- a passage in the answer's place (issue 59, item 3) ---------------------------------------------
CITED = "The function that schedules the closure is [3] (asyncio-eventloop.html, score 0.030)"


def test_an_answer_that_gives_a_passage_in_its_place_is_detected():
    assert citation_in_place(CITED)
    assert citation_in_place("Answer: [3]") and citation_in_place("[2] (x.html, score 0.5)")
    assert citation_in_place("The default is score 0.030.")
    # A source tag where the name belongs (the 1.5B on the PostgreSQL fresh-c set, 2026-11-28).
    assert citation_in_place("... leaving only its lexemes is [source: textsearch-controls.html, score 0.030].")
    assert citation_in_place("The function is [source: textsearch-controls.html].")
    assert not citation_in_place("The function is `strip` [source: textsearch-controls.html].")
    assert not citation_in_place("It is `strip`. The source of this information is [source: textsearch-controls.html].")
    # A citation after what the answer states is a citation, not the answer; its head line is tidied.
    stated = "VACUUM FULL takes an ACCESS EXCLUSIVE lock [1] (explicit-locking.html, score 0.912)."
    assert not citation_in_place(stated) and not citation_in_place("It is 128 [2].")
    assert tidy_citations(stated) == "VACUUM FULL takes an ACCESS EXCLUSIVE lock [source: explicit-locking.html]."


def decision(answer: str) -> str:
    return json.dumps({"action": "answer", "answer": answer, "sources": ["explicit-locking.html"]})


def test_the_loops_answer_that_gives_a_passage_goes_back_once_then_is_declined():
    plain = LoopSettings("s", decisions=DecisionSettings(mode="JSONSchema"))  # the Loop policy
    right = "VACUUM FULL takes an ACCESS EXCLUSIVE lock."
    model = ScriptedList([decision(CITED), decision(right)])
    _, finished, _, _ = run_task(model, plain)
    assert finished["answer"].startswith(right) and len(model.requests) == 2
    assert CITATION_PROBLEM in model.requests[1].messages[-1]["content"]
    model = ScriptedList([decision(CITED), decision(CITED)])
    _, finished, _, _ = run_task(model, plain)
    assert finished["answer"] == DECLINE and len(model.requests) == 2


def test_a_first_answer_that_gives_a_passage_goes_on_to_the_loop():
    model = ScriptedList([CITED, decision("VACUUM FULL takes an ACCESS EXCLUSIVE lock.")])
    _, finished, _, _ = run_task(model, settings())
    assert len(model.requests) == 2 and CITATION_PROBLEM in model.requests[1].messages[-1]["content"]
