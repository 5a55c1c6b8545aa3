"""Answer first (spec.tools[].retrieval.answerFirst): after searchFirst, one call without tools
answers from those passages; the loop goes on with tools only when that answer fails the check.
Model, store and tools are the fakes of test_runtime_decisions (the logic under test is ours)."""

from __future__ import annotations

import json

import pytest

from agentfleet_runtime.answering.answercheck import (
    ANSWER_FIRST,
    ANSWER_FIRST_UNANSWERED,
    DECLINE,
    answer_names,
    decline_other,
    other_subject,
    says_unanswered,
    supporting_sources,
)
from agentfleet_runtime.answering.policies import Cascade, Loop, OneShot
from agentfleet_runtime.core.types import ModelReply, Usage
from agentfleet_runtime.loop.agent import LoopSettings
from agentfleet_runtime.loop.decisions import AnswerCheckSettings, DecisionSettings
from agentfleet_runtime.worker import oneshot
from tests.unit.runtime.test_runtime_decisions import ANSWER, FIRST_SEARCH, SEARCH, ScriptedModel, Tools, run_task

# The answer-first call is plain text, as one-shot RAG's; the loop's own calls are JSON decisions.
FIRST_ANSWER = "ACCESS EXCLUSIVE [source: explicit-locking.html]"
INVENTED_FIRST = "VACUUM FULL takes a lock for 30 seconds [source: explicit-locking.html]"
DECLINED = "The passages do not say which lock it takes."


def first(on: bool = True, **kw) -> LoopSettings:
    """The Cascade policy (on), or the loop from the first call."""
    kw.setdefault("decisions", FIRST_SEARCH)
    return LoopSettings("s", answering=Cascade("search") if on else Loop(), **kw)


def actions(request) -> str:
    return json.dumps(request.response_format)


def test_a_supported_first_answer_ends_the_task_in_one_call_without_tools():
    model = ScriptedModel([FIRST_ANSWER])
    outcome, finished, tools, task_run = run_task(model, first())
    assert finished["reason"] == "final_answer" and finished["answer"] == FIRST_ANSWER
    assert len(model.requests) == 1 and len(tools.calls) == 1  # the searchFirst search only
    request = model.requests[0]
    # One-shot RAG's request itself: the passages and the question, no tools, no protocol.
    passages = [
        {"source": "explicit-locking.html", "score": 0.9, "text": "VACUUM FULL takes an ACCESS EXCLUSIVE lock (0)"}
    ]
    assert request.messages == oneshot.messages("rag", "Which lock does VACUUM FULL take?", passages)
    assert request.tools == [] and request.response_format is None
    assert finished["final_step"].usage == Usage(100, 10, calls=1)  # the call's tokens are the task's


def test_an_unsupported_first_answer_goes_on_with_tools_and_counts_both_calls():
    model = ScriptedModel([INVENTED_FIRST, SEARCH, ANSWER])
    outcome, finished, tools, task_run = run_task(model, first())
    assert finished["answer"].startswith("ACCESS EXCLUSIVE") and len(tools.calls) == 2
    second = model.requests[1]
    assert '"search"' in actions(second)  # the loop offers its tools again
    assert "VACUUM FULL takes a lock for 30 seconds" in second.messages[-2]["content"]
    assert "'30 seconds'" in second.messages[-1]["content"]
    assert ANSWER_FIRST not in str(second.messages)  # the one-shot request is not part of the history
    assert task_run.steps[1].usage == Usage(200, 20, calls=2)  # the answer-first call rides on the first loop step


def test_a_first_answer_saying_the_passages_do_not_answer_goes_on_with_tools():
    model = ScriptedModel([DECLINED, SEARCH, ANSWER])
    outcome, finished, tools, _ = run_task(model, first())
    assert finished["answer"].startswith("ACCESS EXCLUSIVE") and len(tools.calls) == 2
    assert ANSWER_FIRST_UNANSWERED in model.requests[1].messages[-1]["content"]


def test_a_first_answer_that_searches_anyway_goes_on_and_a_failed_call_too():
    model = ScriptedModel(['<tool_call>{"name": "search", "arguments": {"query": "q"}}</tool_call>', SEARCH, ANSWER])
    outcome, finished, tools, _ = run_task(model, first())
    assert finished["answer"].startswith("ACCESS EXCLUSIVE") and len(model.requests) == 3
    model = ScriptedModel([TimeoutError(), ANSWER])
    outcome, finished, tools, _ = run_task(model, first())
    assert finished["answer"].startswith("ACCESS EXCLUSIVE") and len(model.requests) == 2


def test_the_loop_policy_offers_tools_from_the_first_call():
    model = ScriptedModel([SEARCH, ANSWER])
    outcome, finished, tools, _ = run_task(model, first(on=False))  # the loop's first call, a JSON decision
    assert ANSWER_FIRST not in str(model.requests[0].messages) and '"search"' in actions(model.requests[0])
    assert len(model.requests) == 2 and len(tools.calls) == 1  # no search before the first call


def test_native_tool_calls_get_no_tools_on_the_first_answer():
    settings = first(tool_calling="native")
    settings.decisions = type(FIRST_SEARCH)(rules=FIRST_SEARCH.rules)
    model = ScriptedModel([ModelReply(content=FIRST_ANSWER, usage=Usage(1, 1))])
    outcome, finished, _, _ = run_task(model, settings)
    assert finished["answer"] == FIRST_ANSWER and model.requests[0].tools == []


@pytest.mark.parametrize(
    "text",
    [
        "The passages do not say what the default is.",
        "The documentation doesn't mention a retries parameter for urlopen().",
        "This is not specified in the provided passages.",
        "I cannot determine this from the passages.",
        "There is no information about deque.sort() in the passages.",
        "When asked about the default, the documentation does not say.",  # the condition is another clause's
        "If the passages are right, they do not mention it.",
        "",
    ],
)
def test_answers_that_say_the_passages_lack_the_answer(text):
    assert says_unanswered(text)


@pytest.mark.parametrize(
    "text",
    [
        "The default is 5min [source: runtime-config-wal.html].",
        "VACUUM FULL takes an ACCESS EXCLUSIVE lock.",
        "No, TRUNCATE does not scan the table.",
        "Sources: the passages do not say anything else",  # a sources line is no statement
        # The documentation's own conditions, in right answers the cascade had read as declines:
        "This is the default if the CREATE FUNCTION command does not specify a category: VOLATILE.",
        "When `fmt` is not specified in `plistlib.dump()`, the property list is written in XML format.",
        "Unless a port is specified, port 5432 is used.",
    ],
)
def test_answers_that_answer(text):
    assert not says_unanswered(text)


def test_an_uncited_first_answer_cites_the_passages_that_state_its_values():
    model = ScriptedModel(["VACUUM FULL takes an ACCESS EXCLUSIVE lock."])
    outcome, finished, _, _ = run_task(model, first())
    assert finished["answer"] == "VACUUM FULL takes an ACCESS EXCLUSIVE lock.\n\nSources: explicit-locking.html"
    model = ScriptedModel([FIRST_ANSWER])  # cited already: left as written
    outcome, finished, _, _ = run_task(model, first())
    assert finished["answer"] == FIRST_ANSWER


def test_supporting_sources_are_the_passages_stating_the_values_else_the_closest_one():
    shown = [
        ("runtime-config-locks.html", "log_lock_waits ... the default is 10 seconds"),
        ("runtime-config-wal.html", "checkpoint_timeout: the default is five minutes (5min)."),
        ("sql-vacuum.html", "VACUUM FULL rewrites the whole table"),
    ]
    question = "What is the default checkpoint_timeout?"
    assert supporting_sources("It is 300 seconds.", shown, question) == ["runtime-config-wal.html"]
    assert supporting_sources("It rewrites the whole table.", shown, "What does VACUUM FULL do?") == ["sql-vacuum.html"]
    assert supporting_sources("Nobody knows.", shown, question) == []


# -- declineOtherSubjects: a value of another thing -------------------------------------------------
# Passages and answers as the 1.5B's fleet recorded them (e2e/eval/python-library-tasks.yaml).
SQLITE = [
    ("sqlite3.html", "cached_statements (int) - The number of statements that sqlite3 should internally cache for "
     "this connection, to avoid parsing overhead. By default, 128 statements."),
    ("audit_events.html", "| sqlite3.connect | database | [1] |\n| sqlite3.connect/handle | connection_handle | [1] |"),
    ("concurrent.futures.html", "Changed in version 3.8: Default value of max_workers is changed to "
     "min(32, os.cpu_count() + 4). This default value preserves at least 5 workers for I/O bound tasks."),
]  # fmt: skip
DEQUE = [
    ("functions.html", "The key argument specifies a one-argument ordering function like that used for list.sort()."),
    ("stdtypes.html", "sort() accepts two arguments that can only be passed by keyword (keyword-only arguments):\n\n"
     "key specifies a function of one argument that is used to extract a comparison key from each list element "
     "(for example, key=str.lower). The default value (None) means that list items are sorted directly."),
]  # fmt: skip
DEADLOCK = [
    ("runtime-config-locks.html", "## 20.12. Lock Management\n\ndeadlock_timeout (integer)\nThis is the amount of "
     "time to wait on a lock before checking to see if there is a deadlock condition."),
    ("runtime-config-locks.html", "If this value is specified without units, it is taken as milliseconds. The "
     "default is one second (1s), which is probably about the smallest value you would want in practice."),
]  # fmt: skip


def test_a_value_no_passage_naming_the_questions_subject_holds_is_another_things():
    q = "How many worker threads does sqlite3.connect() start for parallel queries by default?"
    answer = (
        "The default number of worker threads that sqlite3.connect() starts is 32.\n\nSources: concurrent.futures.html"
    )
    assert other_subject(answer, SQLITE, q) == ["sqlite3.connect()"]
    q = "What is the default key of collections.deque.sort()?"
    assert other_subject("The default key of collections.deque.sort() is None. [source: stdtypes.html]", DEQUE, q) == [
        "collections.deque.sort()"
    ]
    # The chunk stating the default is cut from the heading naming the setting: the page names it.
    q = "What is the default deadlock_timeout?"
    assert other_subject("The default deadlock_timeout is one second (1s).", DEADLOCK, q) == []
    assert other_subject("It has no such setting.", SQLITE, "What is sqlite3.connect()'s pool size?") == []  # no value
    assert other_subject("It is 32.", SQLITE, "How many workers does it start?") == []  # the question names nothing


def test_a_first_answer_with_another_things_value_is_declined():
    model = ScriptedModel(["The default is 30 [source: explicit-locking.html]"])

    class Sqlite(Tools):
        async def run_step(self, task, n, calls, deadline):
            out = await super().run_step(task, n, calls, deadline)
            # The question's name is on a page (no unknown name), the value on another.
            found = "[1] (x.html, score 0.9)\nThe default timeout is 30 s"
            found += "\n\n[2] (sqlite3.html, score 0.8)\nsqlite3.connect()"
            return [type(o)(o.call_id, o.name, True, found) for o in out]

    settings = first()
    outcome, finished, _, _ = run_task(model, settings, goal="What is the default timeout of sqlite3.connect()?",
                                       tools=Sqlite())  # fmt: skip
    assert finished["answer"] == decline_other(["sqlite3.connect()"]) and len(model.requests) == 1
    goal = "What is the default timeout of sqlite3.connect()?"
    one_shot = LoopSettings("s", decisions=FIRST_SEARCH, answering=OneShot("search"))
    outcome, finished, _, _ = run_task(ScriptedModel(["The default is 30 [source: x.html]"]), one_shot, goal=goal,
                                       tools=Sqlite())  # fmt: skip
    assert finished["answer"] == "The default is 30 [source: x.html]"  # OneShot: the answer stands


# -- the code names an answer states ---------------------------------------------------------------
# Held-out py-none-yaml: the Python documents have no yaml module, and the 1.5B answered with a name.
YAML_Q = "Which function of the standard library's yaml module parses a YAML file safely?"
YAML_FIRST = "Use yaml.safe_load() to parse a YAML file safely. [source: json.html]"
YAML_DECLINE = '{"action": "answer", "answer": "The documentation does not say.", "sources": ["json.html"]}'
NAMED = (
    "[1] (json.html, score 0.9)\njson.loads(s) deserializes s to a Python object.\n\n"
    "[2] (pickle.html, score 0.8)\nThe pickle module is not secure."
)


class Named(Tools):
    async def run_step(self, task, n, calls, deadline):
        out = await super().run_step(task, n, calls, deadline)
        # YAML is mentioned (the question names nothing unknown), yaml.safe_load() is not.
        return [type(o)(o.call_id, o.name, True, NAMED + "\n\n[3] (netrc.html, score 0.7)\nNot YAML.") for o in out]


def test_the_code_names_an_answer_states():
    assert answer_names(YAML_FIRST, YAML_Q) == ["yaml.safe_load()"]
    # A call with arguments names the function; a name the question gives is no claim of the answer's.
    assert answer_names("Call yaml.safe_load(stream, Loader) on it.", YAML_Q) == ["yaml.safe_load()"]
    assert answer_names("Yes: list.sort() is stable.", "Is list.sort() stable?") == []
    # File names, abbreviations, a code block's own variables and citations are not names it states.
    body = "See stdtypes.html, e.g. the key.\n```python\nmy_list.sort(key=None)\n```\n"
    body += "max_wal_size is 1GB [source: a_b.html]"
    assert answer_names(body, "x?") == ["max_wal_size"]


def test_the_loops_answer_after_an_escalated_decline_is_held_to_the_names_too():
    """Held-out py-none-yaml: the first answer declined rightly, the cascade went on, and the loop
    named yaml.safe_load(). With answerCheck (Decline) that answer goes back once, then the hold
    declines it (test_runtime_cascade_hold)."""
    invented = '{"action": "answer", "answer": "Use `yaml.safe_load()`.", "sources": ["json.html"]}'
    check = DecisionSettings(mode="JSONSchema", rules=FIRST_SEARCH.rules, answer_check=AnswerCheckSettings(1, True))
    both = first(decisions=check)
    model = ScriptedModel(["The passages do not say.", invented, invented])
    _, finished, _, _ = run_task(model, both, goal=YAML_Q, tools=Named())
    assert finished["answer"] == DECLINE and len(model.requests) == 3
    # Sent back once, naming it once (in backticks it is a quoted value and a name: one claim).
    assert model.requests[2].messages[-1]["content"].count("'yaml.safe_load()'") == 1
