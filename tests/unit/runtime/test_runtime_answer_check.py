"""The answer check (spec.decisions.answerCheck, answercheck.py) and the search-first step
(spec.tools[].retrieval.searchFirst), pure and in the loop. Model, store and tools are the fakes of
test_runtime_decisions (the logic under test is ours); tests/integration drives a real worker."""

from __future__ import annotations

from agentfleet_contract.agentfleet import AgentFleetSpec

from agentfleet_runtime.answering.answercheck import (
    DECLINE,
    decline_unknown,
    mentioned,
    quantities,
    question_names,
    quoted,
    unknown_names,
    unsupported,
)
from agentfleet_runtime.answering.policies import Cascade, OneShot
from agentfleet_runtime.core.types import Observation, Status
from agentfleet_runtime.loop.agent import LoopSettings, search_first_call
from agentfleet_runtime.loop.decisions import AnswerCheckSettings, DecisionSettings
from tests.unit.runtime.test_runtime_decisions import ANSWER, FIRST_SEARCH, SCHEMAS, SEARCH, ScriptedModel, run_task

PASSAGE = (
    "[1] (runtime-config-wal.html, score 0.612)\ncheckpoint_timeout (integer) "
    "Maximum time between automatic WAL checkpoints. The default is five minutes (5min). "
    "wal_level: the default value is replica. min_wal_size defaults to 80 MB."
)
QUESTION = "What is the default checkpoint_timeout in PostgreSQL 15?"


# -- pure ------------------------------------------------------------------------------------------
def test_quantities_carry_units_and_compare_in_base_units():
    five, three_hundred = quantities("5min")[0], quantities("300 seconds")[0]
    assert five.same(three_hundred) and quantities("five minutes")[0].same(five)
    assert quantities("128MB")[0].same(quantities("128 megabytes")[0])
    assert not quantities("4GB")[0].same(quantities("4 s")[0])
    assert not quantities("1 s")[0].same(quantities("1 byte")[0])  # equal in base units, but another dimension
    assert quantities("4GB")[0].same(quantities("4")[0])  # a bare number: the unit may stand in another column
    assert [q.text for q in quantities("1,000 rows, 0.9, 10%, 1 GB")] == ["1,000", "0.9", "10%", "1 GB"]


def test_numbers_inside_names_citations_and_sections_are_not_values():
    text = "See [2] and sql-vacuum.html, postgresql-doc-15, int8, Section 20.5.1 and v15.2."
    assert quantities(text) == []
    assert quantities("only one of them") == []  # a number word counts only with a unit
    assert quoted('The mode is `ACCESS EXCLUSIVE`, not "SHARE".') == ["ACCESS EXCLUSIVE", "SHARE"]


def test_correct_paraphrases_are_supported():
    for answer in (
        "The default is 5min [1].",
        "It is 300 seconds.",
        "five minutes",
        "5 minutes",
        "It defaults to `replica`.",
    ):
        assert unsupported(answer, [PASSAGE], QUESTION) == [], answer
    # Numbers of the question itself and of the sources line are not the answer's values.
    assert (
        unsupported(
            "In PostgreSQL 15 it is 5 min.\n\nSources: runtime-config-wal.html, part2-15.html", [PASSAGE], QUESTION
        )
        == []
    )


def test_invented_and_hedged_values_are_unsupported():
    assert unsupported("There is no fixed default: max_cluster_ram is 4GB", [PASSAGE], "What is max_cluster_ram?") == [
        "4GB"
    ]
    assert unsupported("It is 10 minutes, or 5min.", [PASSAGE], QUESTION) == ["10 minutes"]
    assert unsupported("It defaults to `minimal`.", [PASSAGE], QUESTION) == ["minimal"]
    assert unsupported("80 seconds", [PASSAGE], QUESTION) == ["80 seconds"]  # the passage's 80 is megabytes
    assert unsupported("80", [PASSAGE], QUESTION) == []  # a bare number: the check is against invention, not misreading
    assert unsupported("The manual does not say.", [PASSAGE], QUESTION) == []


# -- in the loop -----------------------------------------------------------------------------------
INVENTED = (
    '{"action": "answer", "answer": "VACUUM FULL takes a lock for 30 seconds", "sources": ["explicit-locking.html"]}'
)


def checked(retries: int = 1, decline: bool = True, repairs: int = 1) -> LoopSettings:
    d = DecisionSettings(
        mode="JSONSchema",
        repair_attempts=repairs,
        rules=FIRST_SEARCH.rules,
        answer_check=AnswerCheckSettings(retries, decline),
    )
    return LoopSettings("s", decisions=d)


def test_an_unsupported_answer_goes_back_and_the_model_searches_again():
    model = ScriptedModel([SEARCH, INVENTED, SEARCH.replace("lock", "locks"), ANSWER])
    outcome, finished, tools, _ = run_task(model, checked(repairs=0))
    assert finished["reason"] == "final_answer" and finished["answer"].startswith("ACCESS EXCLUSIVE")
    assert len(tools.calls) == 2  # the second search came after the check, with no repair attempts configured
    back = model.requests[2].messages[-1]["content"]
    assert "'30 seconds'" in back and "Search again" in back


def test_an_answer_still_unsupported_after_the_retries_becomes_a_decline_or_stands():
    model = ScriptedModel([SEARCH, INVENTED, INVENTED])
    outcome, finished, tools, _ = run_task(model, checked(retries=1))
    assert finished["reason"] == "final_answer" and finished["answer"] == DECLINE and len(model.requests) == 3
    model = ScriptedModel([SEARCH, INVENTED, INVENTED])
    outcome, finished, tools, _ = run_task(model, checked(retries=1, decline=False))
    assert finished["answer"].startswith("VACUUM FULL takes a lock for 30 seconds")
    model = ScriptedModel([SEARCH, INVENTED])
    outcome, finished, tools, _ = run_task(model, checked(retries=0))  # no retries: declined at once
    assert finished["answer"] == DECLINE and len(model.requests) == 2


def test_without_the_check_answers_are_given_as_written():
    model = ScriptedModel([SEARCH, INVENTED])
    outcome, finished, tools, _ = run_task(model, LoopSettings("s", decisions=FIRST_SEARCH))
    assert finished["answer"].startswith("VACUUM FULL takes a lock for 30 seconds") and len(model.requests) == 2


def test_the_answer_check_is_read_from_the_fleet_spec():
    spec = {
        "modelRef": {"name": "m"},
        "redis": {"url": "redis://r:6379"},
        "decisions": {"answerCheck": {"onUnsupported": "Answer"}},
    }
    wire = AgentFleetSpec.model_validate(spec).decisions.wire()
    assert DecisionSettings.from_spec(wire).answer_check == AnswerCheckSettings(retries=1, decline=False)
    assert DecisionSettings.from_spec({}).answer_check is None


# -- search first ----------------------------------------------------------------------------------
def test_search_first_in_native_and_text_modes():
    call, content = search_first_call("kb", "  what   is\nX? ", json_mode=False, text_tools=False)
    assert (call.name, call.arguments, content) == ("kb", {"query": "what is X?"}, "")
    call, content = search_first_call("kb", "q" * 5000, json_mode=False, text_tools=True)
    assert call.id.startswith("text-") and content.startswith("<tool_call>") and len(call.arguments["query"]) == 2000


# -- the question's names (spec.tools[].retrieval.declineUnknownNames) -------------------------------
PG = "You answer questions about PostgreSQL 15 from its manual."


def test_question_names_are_identifiers_acronyms_and_proper_nouns_not_the_subject():
    assert question_names("What is the default value of autovacuum_gpu_workers?", PG) == ["autovacuum_gpu_workers"]
    assert question_names("What is the default port of PostgreSQL's built-in HTTP REST API server?", PG) == [
        "HTTP",
        "REST",
        "API",
    ]
    assert question_names("Which SQL command converts a table into a MongoDB collection?", PG) == ["SQL", "MongoDB"]
    assert question_names("How often does it back up to Amazon S3?", PG) == ["Amazon", "S3"]
    assert question_names("Does @functools.lru_cache keep calls? What does pg_ls_dir() return?") == [
        "functools.lru_cache",
        "pg_ls_dir()",
    ]
    # Words that start a sentence, common words and the system prompt's own names are no names.
    assert question_names("Compare char(n) and varchar(n). How does each store a short string?", PG) == []
    assert question_names("How many nodes does PostgreSQL 15's built-in sharding need?", PG) == []


def test_a_name_is_mentioned_with_its_case_for_acronyms_and_by_its_parts_for_dotted_names():
    assert not mentioned("REST", ["the rest of the row"]) and mentioned("REST", ["a REST API"])
    # An SQL keyword in capitals is the option the manual also writes in lower case (the PostgreSQL
    # fresh-b set's CREATE TYPE question: declined before any model call, right in RAG's pass).
    alignment = ["alignment: The storage alignment requirement of the data type. The default is int4."]
    assert mentioned("ALIGNMENT", alignment) and not mentioned("GPU", ["a gpu"])
    passages = [*alignment, "CREATE TYPE ... storage: The storage strategy. The default is plain."]
    assert unknown_names("Which ALIGNMENT and STORAGE does CREATE TYPE assume?", passages, PG) == []
    assert mentioned("MongoDB", ["mongodb"]) and mentioned("pg_ls_dir()", ["pg_ls_dir(dirname text)"])
    assert mentioned("functools.lru_cache", ["functools: @lru_cache(maxsize=128)"])
    assert not mentioned(
        "tomllib.dumps()",
        ["tomllib.load(fp)"],
    )
    passages = ["wal_compression (enum) ... autovacuum_max_workers (integer)"]
    assert unknown_names("What is the default of wal_compression_gpu_level?", passages, PG) == [
        "wal_compression_gpu_level"
    ]
    assert unknown_names("What is the default wal_compression?", passages, PG) == []


def test_the_decline_states_no_value_and_is_read_as_one():
    text = decline_unknown(["S3", "Amazon"])
    assert text == "The documents I searched do not mention S3, Amazon, so they do not answer this question."
    assert unsupported(text, [], "How often does it back up to Amazon S3?") == []


class Passages:
    """The Tools fake, answering a search with the passage of its query, else the one of ``""``."""

    names, spawners, read_only = ["search"], frozenset(), frozenset({"search"})
    cite_sources: frozenset[str] = frozenset()

    def __init__(self, by_query: dict[str, str], ok: bool = True) -> None:
        self.by_query, self.calls, self.ok = by_query, [], ok

    def schemas(self):
        return [s for s in SCHEMAS if s["function"]["name"] == "search"]

    def acts(self, calls):
        return False

    async def run_step(self, task, n, calls, deadline):
        self.calls += calls
        out = []
        for c in calls:
            text = self.by_query.get(c.arguments["query"], self.by_query[""])
            if not self.ok:
                out.append(
                    Observation(c.id, c.name, False, "search_docs is temporarily unavailable after repeated failures")
                )
                continue
            out.append(Observation(c.id, c.name, True, f"[1] (runtime-config-wal.html, score 0.5)\n{text}"))
        return out


def names_checked(on: bool = True) -> LoopSettings:
    """Cascade declines unknown names; OneShot, which searches first too, does not."""
    return LoopSettings(PG, decisions=FIRST_SEARCH, answering=Cascade("search") if on else OneShot("search"))


GPU_GOAL = "What is the default of wal_compression_gpu_level?"
WAL_ANSWER = "3 [source: runtime-config-wal.html]"  # the first answer: plain text, as one-shot RAG's


def test_a_name_the_documents_never_mention_ends_in_a_decline_without_a_model_call():
    tools = Passages({"": "wal_compression (enum): the default is off."})
    model = ScriptedModel([])  # any model call would fail the task
    outcome, finished, _, task_run = run_task(model, names_checked(), goal=GPU_GOAL, tools=tools)
    assert outcome == (Status.DONE, "final_answer") and model.requests == []
    assert finished["answer"] == decline_unknown(["wal_compression_gpu_level"])
    # The name was searched alone before the task declined, and both searches are the task's steps.
    assert [c.arguments["query"] for c in tools.calls] == [GPU_GOAL, "wal_compression_gpu_level"]
    assert [s.n for s in task_run.steps] == [0, 1] and task_run.steps[1].tool_calls[0].id == "json-1"


def test_a_name_found_by_its_own_search_goes_on_to_the_model():
    tools = Passages({"wal_compression_gpu_level": "wal_compression_gpu_level (integer) default 3", "": "other"})
    model = ScriptedModel([WAL_ANSWER])
    outcome, finished, _, _ = run_task(model, names_checked(), goal=GPU_GOAL, tools=tools)
    assert finished["answer"].startswith("3") and len(model.requests) == 1 and len(tools.calls) == 2
    # Names every passage holds: one search, as searchFirst alone.
    tools = Passages({"": "wal_compression_gpu_level (integer) default 3"})
    outcome, finished, _, _ = run_task(ScriptedModel([WAL_ANSWER]), names_checked(), goal=GPU_GOAL, tools=tools)
    assert len(tools.calls) == 1


def test_a_failed_search_shows_nothing_about_the_documents_and_the_model_answers():
    tools = Passages({"": ""}, ok=False)
    loop_answer = '{"action": "answer", "answer": "3", "sources": []}'
    model = ScriptedModel([WAL_ANSWER, loop_answer])  # no passage holds the first answer's 3: the loop goes on
    outcome, finished, _, _ = run_task(model, names_checked(), goal=GPU_GOAL, tools=tools)
    assert len(model.requests) == 2 and len(tools.calls) == 1  # no search for the names alone


def test_without_the_setting_the_model_answers_the_unknown_name():
    tools = Passages({"": "wal_compression (enum): the default is off."})
    model = ScriptedModel([WAL_ANSWER])
    outcome, finished, _, _ = run_task(model, names_checked(on=False), goal=GPU_GOAL, tools=tools)
    assert finished["answer"].startswith("3") and len(tools.calls) == 1
