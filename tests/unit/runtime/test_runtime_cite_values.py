"""Every value an answer states is cited where a retrieved passage states it (issue 59's grounding
goal): answercheck.uncited_sources, and the loop's final answers citing through it. The passages
are shaped on the held-out PostgreSQL answers that were right but cited the wrong page
(docs/results/2026-11-27-cite-values.md)."""

from __future__ import annotations

import json

from agentfleet_runtime.answering.answercheck import DECLINE
from agentfleet_runtime.answering.citing import uncited_sources, without_unretrieved
from agentfleet_runtime.answering.policies import OneShot
from agentfleet_runtime.core.citations import parse_citations
from agentfleet_runtime.core.types import Observation
from agentfleet_runtime.loop.agent import LoopSettings
from agentfleet_runtime.tools.retrieval import format_passages
from tests.unit.runtime.test_runtime_decisions import FIRST_SEARCH, ScriptedModel, Tools, run_task

VACUUMING = (
    "routine-vacuuming.html",
    "The autovacuum daemon consists of multiple processes: a launcher starts up to autovacuum_max_workers "
    "worker processes. VACUUM without FULL takes a SHARE UPDATE EXCLUSIVE lock, so it can run beside reads "
    "and writes; three of its phases are described below.",
)
AUTOVACUUM = (
    "runtime-config-autovacuum.html",
    "autovacuum_max_workers (integer)\nSpecifies the maximum number of autovacuum worker processes that may be "
    "running at any one time. The default is three. This parameter can only be set at server start.",
)
WALDUMP = ("pgwaldump.html", "pg_waldump displays the write-ahead log (WAL) in human-readable form.")
INITDB = ("app-initdb.html", "The WAL segment size, normally 16MB, is set with --wal-segsize at initdb time.")


class Search(Tools):
    """The test loop's tools, whose search returns these passages."""

    def __init__(self, passages: list[tuple[str, str]]) -> None:
        super().__init__()
        self.passages = [{"source": src, "score": 0.5, "text": text} for src, text in passages]

    async def run_step(self, task, n, calls, deadline):
        self.calls += calls
        return [Observation(c.id, c.name, True, format_passages(self.passages)) for c in calls]


QUESTION = "How many autovacuum workers run by default, and which lock does a VACUUM without FULL take?"


def test_a_value_stated_on_another_page_than_the_cited_one_gets_that_page_cited():
    answer = "The default number of autovacuum workers is three; VACUUM takes SHARE UPDATE EXCLUSIVE."
    # "three" is in both passages; only one says it of the workers' default.
    assert uncited_sources(answer, ["routine-vacuuming.html"], [VACUUMING, AUTOVACUUM], QUESTION) == [
        "runtime-config-autovacuum.html"
    ]
    # A code name only its own page holds, beside a quantity the cited page states.
    answer = "A WAL segment is normally 16MB; the tool that shows the WAL is pg_waldump."
    shown = [INITDB, ("continuous-archiving.html", "WAL segment files of 16MB are archived."), WALDUMP]
    assert uncited_sources(
        answer, ["app-initdb.html"], shown, "How large is a WAL segment, and which tool reads it?"
    ) == ["pgwaldump.html"]


def test_a_keyword_in_capitals_and_a_dot_file_get_the_page_stating_them_cited():
    # PostgreSQL's answers are often keywords: PARALLEL UNSAFE is stated only on the parallel-safety
    # page, not on the cited volatility page (pgf-hop-immutable-parallel-unsafe: right, uncited).
    volatility = ("xfunc-volatility.html", "An IMMUTABLE function returns the same results given the same arguments.")
    parallel = ("parallel-safety.html", "Functions are labeled PARALLEL UNSAFE by default when none is given.")
    question = "Which category promises the same result forever, and which parallel label is the default?"
    answer = "IMMUTABLE; a function is PARALLEL UNSAFE by default [source: xfunc-volatility.html]."
    assert uncited_sources(answer, ["xfunc-volatility.html"], [volatility, parallel], question) == [
        "parallel-safety.html"
    ]
    # A dot-file only the service-file page names (pgf-hop-pgpass-service-file: right, uncited).
    pgpass = ("libpq-pgpass.html", "The file .pgpass must disallow any access to world or group: chmod 0600.")
    service = ("libpq-pgservice.html", "The per-user service file is ~/.pg_service.conf.")
    answer = "chmod 0600; the per-user service file is .pg_service.conf [source: libpq-pgpass.html]."
    asked = "Which mode must ~/.pgpass have, and what is the per-user SERVICE file called?"
    assert uncited_sources(answer, ["libpq-pgpass.html"], [pgpass, service], asked) == ["libpq-pgservice.html"]


def test_nothing_is_added_when_a_cited_passage_states_it_as_closely_or_no_passage_states_it():
    answer = "The default is three autovacuum workers."
    assert uncited_sources(answer, ["runtime-config-autovacuum.html"], [VACUUMING, AUTOVACUUM], QUESTION) == []
    # A value no passage holds is the value check's business: citing a page for it would ground nothing.
    assert uncited_sources("It is 12 workers.", [], [VACUUMING, AUTOVACUUM], QUESTION) == []
    # The question's own numbers and names are not what the answer states.
    asked = "What does autovacuum_max_workers set, with three workers?"
    assert uncited_sources("autovacuum_max_workers sets three workers.", [], [VACUUMING, AUTOVACUUM], asked) == []


def test_the_loops_final_answer_cites_the_page_stating_its_value():
    """The loop's answer (a JSON decision citing the page it searched first) is completed with the page
    that states its value; the old loop ended with the wrong page alone, and grounding failed."""
    search = Search([VACUUMING, AUTOVACUUM])
    model = ScriptedModel(
        [
            '{"action": "search", "arguments": {"query": "autovacuum workers default"}}',
            '{"action": "answer", "answer": "The default number of autovacuum workers is three.", '
            '"sources": ["routine-vacuuming.html"]}',
        ]
    )
    _, finished, _, _ = run_task(model, LoopSettings("s", decisions=FIRST_SEARCH), goal=QUESTION, tools=search)
    assert finished["answer"].endswith("Sources: routine-vacuuming.html, runtime-config-autovacuum.html")
    # An uncited answer cites the passage holding its value; a decline cites nothing.
    for said, cites in (("The default is three.", "Sources: runtime-config-autovacuum.html"), (DECLINE, None)):
        said = json.dumps({"action": "answer", "answer": said})
        model = ScriptedModel(['{"action": "search", "arguments": {"query": "autovacuum"}}', said])
        _, finished, _, _ = run_task(
            model, LoopSettings("s", decisions=FIRST_SEARCH), goal=QUESTION, tools=Search([VACUUMING, AUTOVACUUM])
        )
        assert (finished["answer"].split("\n\n")[-1] if cites else finished["answer"]) == (cites or DECLINE)


def test_a_citation_of_a_document_never_retrieved_is_taken_away():
    retrieved = ["sql-do.html", "docs/plhandler.html"]
    guessed = "The code runs in plpgsql when LANGUAGE is omitted. [source: plpgsql-do.html]"
    assert without_unretrieved(guessed, retrieved) == "The code runs in plpgsql when LANGUAGE is omitted."
    # Retrieved ones stay where they are; a name containing another's is not taken for it.
    kept = "X [source: plhandler.html#2] and Y [source: do.html]."
    assert without_unretrieved(kept, retrieved) == "X [source: plhandler.html#2] and Y."
    assert without_unretrieved("X.\n\nSources: sql-do.html, do.html", retrieved) == "X.\n\nSources: sql-do.html"
    assert without_unretrieved("X [source: sql-do.html].", retrieved) == "X [source: sql-do.html]."


def test_the_first_answer_cites_the_retrieved_page_in_place_of_the_one_it_guessed():
    """pgf-cmd-do-language: right, citing plpgsql-do.html, which the search never returned; the task
    API listed it and the answer was ungrounded."""
    do = (
        "sql-do.html",
        "lang_name: The name of the procedural language the code is written in. The default is plpgsql.",
    )
    model = ScriptedModel(["The code runs in plpgsql when LANGUAGE is omitted. [source: plpgsql-do.html]"])
    settings = LoopSettings("s", decisions=FIRST_SEARCH, answering=OneShot("search"))
    _, finished, _, _ = run_task(model, settings, goal="Which language runs a DO block by default?", tools=Search([do]))
    assert "plpgsql-do.html" not in finished["answer"] and finished["answer"].endswith("Sources: sql-do.html")


def test_a_retrieved_document_named_with_other_separators_is_that_document() -> None:
    # A PostgreSQL fresh-e answer named "pg_archivecleanup.html" in its text and sources; the task
    # retrieved pgarchivecleanup.html, and the task API listed a source it never read.
    retrieved = ["pgarchivecleanup.html", "warm-standby.html"]
    said = (
        "It is pg_archivecleanup, in the pg_archivecleanup.html passage.\n\n"
        "Sources: pg_archivecleanup.html, warm-standby.html"
    )
    fixed = without_unretrieved(said, retrieved)
    assert parse_citations(fixed) == ["pgarchivecleanup.html", "warm-standby.html"], fixed
    assert "pg_archivecleanup," in fixed  # the program's own name, not a document name, stays
    # A name that is no retrieved document's, separators aside, still goes.
    assert parse_citations(without_unretrieved("X.\n\nSources: archive.html, warm-standby.html", retrieved)) == [
        "warm-standby.html"
    ]
