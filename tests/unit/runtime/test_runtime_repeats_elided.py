"""A task's history shows a passage once (issue 59's token goal): a follow-up search's passages that
an earlier search of the task already showed keep their head lines and lose their text
(tools.retrieval.RepeatsElided, the loop's observation view)."""

from __future__ import annotations

import json

from agentfleet_runtime.core.types import Observation, Step, ToolCall, Usage
from agentfleet_runtime.loop.agent import LoopSettings
from agentfleet_runtime.model.prompt import PromptCache, build_messages, head_messages
from agentfleet_runtime.tools.retrieval import SHOWN_ABOVE, RepeatsElided, format_passages, parse_passages
from tests.unit.runtime.test_runtime_decisions import FIRST_SEARCH, ScriptedModel, Tools, run_task

A = {"source": "a.html", "score": 0.9, "text": "autovacuum_naptime: the default is one minute (1min)."}
B = {"source": "b.html", "score": 0.8, "text": "The launcher starts a worker every autovacuum_naptime/N seconds."}
C = {"source": "c.html", "score": 0.7, "text": "VACUUM FULL takes an ACCESS EXCLUSIVE lock."}


def test_a_passage_shown_before_keeps_its_head_line_and_loses_its_text():
    view = RepeatsElided()
    first = format_passages([A, B])
    assert view(first) == first
    again = view(format_passages([B, C, A]))
    assert again == (
        f"[1] (b.html, score 0.800)\n{SHOWN_ABOVE}\n\n[2] (c.html, score 0.700)\n{C['text']}"
        f"\n\n[3] (a.html, score 0.900)\n{SHOWN_ABOVE}"
    )
    # The head lines still parse: "[3]" in an answer still names a.html.
    assert [p["source"] for p in parse_passages(again)] == ["b.html", "c.html", "a.html"]
    # Nothing new: the first passage stays whole (a small model answers from what it read last).
    assert (
        view(format_passages([C, A]))
        == f"[1] (c.html, score 0.700)\n{C['text']}\n\n[2] (a.html, score 0.900)\n{SHOWN_ABOVE}"
    )
    # Another passage of a shown document is new; output that is no search result is as it was.
    other = {**A, "text": "autovacuum_max_workers: the default is three."}
    assert view(format_passages([other])) == format_passages([other])
    assert view("No passages found.") == "No passages found." and view("42") == "42"


def steps_with(outputs: list[str]) -> list[Step]:
    return [
        Step(
            n,
            "",
            [ToolCall(f"c{n}", "search", {"query": "q"})],
            Usage(1, 1),
            observations=[Observation(f"c{n}", "search", True, out)],
        )
        for n, out in enumerate(outputs)
    ]


def test_the_prompt_cache_and_a_rebuild_show_the_same_history():
    """A resumed task rebuilds its prompt from the checkpointed steps: the same text, so the same prefix."""
    steps = steps_with([format_passages([A, B]), format_passages([B, C]), format_passages([A])])
    cache = PromptCache(head_messages(system_prompt="s", goal="g"), RepeatsElided)
    for n in range(len(steps) + 1):
        assert cache.messages(steps[:n]) == build_messages(
            system_prompt="s", goal="g", steps=steps[:n], view=RepeatsElided()
        )
    assert cache.messages(steps[:1]) == build_messages(
        system_prompt="s", goal="g", steps=steps[:1], view=RepeatsElided()
    )
    assert cache.messages(steps)[-1]["content"] == format_passages([A])  # all it has, whole


class SameSearch(Tools):
    """Every search returns A and B: the model searches again and reads nothing new."""

    async def run_step(self, task, n, calls, deadline):
        self.calls += calls
        return [Observation(c.id, c.name, True, format_passages([A, B])) for c in calls]


def test_the_loop_sends_a_repeated_passage_once():
    search = json.dumps({"action": "search", "arguments": {"query": "autovacuum naptime"}})
    answer = json.dumps({"action": "answer", "answer": "One minute (1min).", "sources": ["a.html"]})
    model = ScriptedModel([search, search, answer])
    _, finished, _, _ = run_task(model, LoopSettings("s", decisions=FIRST_SEARCH), tools=SameSearch())
    last = json.dumps(model.requests[-1].messages)
    # The second result's first passage stays whole: nothing in it is new.
    assert last.count("the default is one minute") == 2 and last.count(B["text"]) == 1 and last.count(SHOWN_ABOVE) == 1
    assert finished["answer"].startswith("One minute (1min).")
