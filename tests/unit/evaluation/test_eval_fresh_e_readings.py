"""Readings the scorer got wrong on the PostgreSQL fresh-e set (2026-11-28), found by a blind reader
of the run (docs/results/2026-11-28-eval-postgres-fresh-e.md) or by the writers of the fresh-e sets
checking their own right answers. Each right answer here scored wrong (or ungrounded where the reader
found it grounded, and the other way round); each wrong one beside it still scores wrong."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from agentfleet_eval.pages import siblings
from agentfleet_eval.scoring import Outcome, judge_answer, score
from agentfleet_eval.taskset import load_taskset, parse_task

from tests.unit.evaluation.test_eval_strict import candidates, scattershot

ROOT = Path(__file__).resolve().parents[3]
SET = load_taskset(ROOT / "e2e" / "eval" / "postgres-manual-fresh-e-tasks.yaml")
TASKS = {t.id: t for t in SET.tasks}


def reads(t, right: tuple[str, ...] = (), wrong: tuple[str, ...] = ()) -> None:
    """Each of ``right`` scores right on ``t``, and each of ``wrong`` does not."""
    for answer in right:
        assert judge_answer(t, answer).ok, answer
    for answer in wrong:
        assert not judge_answer(t, answer).ok, answer


def task(question: str, facts: list, **fields):
    raw = {"id": "t", "part": "heldout", "kind": "default", "question": question, "facts": facts}
    return parse_task({**raw, "supporting": ["x.html"], **fields}, 0)


def test_the_other_end_of_a_bound_pair_is_no_competing_value() -> None:
    tsvector = TASKS["pgfe-default-tsvector-position-limit"]
    # the candidate's answer: "also states '0'", where the reader read it right
    right = (
        "The largest position value that a lexeme in a tsvector can carry is 16,383. This is stated in the passage "
        '[source: functions-textsearch.html] under the section "Position values in tsvector must be greater than 0 '
        'and no more than 16,383".'
    )
    assert judge_answer(tsvector, right).ok
    for pair in ("between 0 and 16383", "from 0 to 16,383", "0 through 16383", "at least 0 and at most 16383"):
        assert judge_answer(tsvector, f"Position values are {pair}.").ok, pair
    # two values that are no pair, and a bound pair ending at a wrong value, still compete
    for wrong in ("It is 16383, or 0.", "It is 0 or 16383.", "greater than 0 and no more than 32767"):
        assert not judge_answer(tsvector, wrong).ok, wrong
    # the lower end, asked for, excuses the upper one
    smallest = task("What is the smallest value the setting accepts?", [{"number": 1}])
    assert judge_answer(smallest, "It must be between 1 and 100.").ok
    assert not judge_answer(smallest, "It must be between 2 and 100.").ok
    # a question that asks for no end reads "between 8 and 16" as a hedge between two values
    default = task("What is the default of the setting?", [{"number": 16}])
    assert not judge_answer(default, "The default is between 8 and 16.").ok
    assert not judge_answer(default, "The default is from 8 to 16.").ok


def test_a_passage_heads_score_copied_into_an_answer_is_no_value() -> None:
    tsvector = TASKS["pgfe-default-tsvector-position-limit"]
    # one-shot RAG's answer on the fresh-e run, which a blind reader read right: "also states '0.030', '0'"
    rag = (
        "The largest position value that a lexeme in a tsvector can carry is 16,383. This is stated in the passage "
        "[3] (functions-textsearch.html, score 0.030), which explains that position values in tsvector must be "
        "greater than 0 and no more than 16,383."
    )
    assert judge_answer(tsvector, rag).ok
    # a score written as a value of its own still competes
    assert not judge_answer(tsvector, "It is 16,383, with a score of 0.030.").ok


def test_a_value_that_opens_its_clause_is_said_of_the_subject_its_clause_names() -> None:
    costs = task("What are the defaults of seq_page_cost and random_page_cost?", [{"number": 1.0}, {"number": 4.0}])
    reads(
        costs,
        right=(
            "The default of seq_page_cost is 1.0, and 4.0 is the default of random_page_cost.",
            "seq_page_cost defaults to 1.0, while 4.0 is what random_page_cost defaults to.",
            "For random_page_cost, 4.0 is the default, and seq_page_cost is 1.0.",
        ),
        wrong=(
            "The default of seq_page_cost is 4.0, and 1.0 is the default of random_page_cost.",
            "seq_page_cost defaults to 4.0, while 1.0 is what random_page_cost defaults to.",
        ),
    )
    types = task(
        "In PL/Python, which Python type does a numeric argument arrive as, and which does a bytea argument arrive as?",
        [{"any": ["Decimal"], "about": "numeric"}, {"any": ["bytes"], "about": "bytea"}],
    )
    reads(
        types,
        right=("A numeric argument arrives as Decimal, and bytes is what a bytea one gives.",),
        wrong=("A numeric argument arrives as bytes, and Decimal is what a bytea one gives.",),
    )
    # The PostgreSQL fresh set's right answer in both passes of two runs, read as NOLOGIN said of CREATE USER.
    roles = load_taskset(ROOT / "e2e" / "eval" / "postgres-manual-fresh-tasks.yaml")
    role = next(t for t in roles.tasks if t.id == "pgf-cmp-create-user-vs-create-role")
    right = (
        "The only difference between CREATE USER and CREATE ROLE is that when the command is spelled CREATE USER, "
        "LOGIN is assumed by default, whereas NOLOGIN is assumed when the command is spelled CREATE ROLE."
    )
    swapped = "When the command is spelled CREATE USER, NOLOGIN is assumed, whereas LOGIN is assumed for CREATE ROLE."
    reads(role, right=(right,), wrong=(swapped,))


def test_a_name_in_capitals_that_no_fact_is_about_is_the_thing_asked_of_not_a_rival() -> None:
    # The fresh-e writer's question before it wrote "reindex" in lower case to get its right answers scored right.
    reindex = TASKS["pgfe-cmp-reindex-locks"]
    assert "the reindex command" in reindex.question
    caps = task(
        reindex.question.replace("the reindex command", "the REINDEX command"),
        [
            {"any": ["ACCESS EXCLUSIVE"], "about": "default"},
            {"any": ["SHARE UPDATE EXCLUSIVE"], "about": "CONCURRENTLY"},
        ],
        wrong=["ROW EXCLUSIVE"],
    )
    for t in (reindex, caps):
        reads(
            t,
            right=(
                "REINDEX requires an ACCESS EXCLUSIVE lock by default. With CONCURRENTLY, it needs SHARE UPDATE "
                "EXCLUSIVE.",
                "By default REINDEX takes an ACCESS EXCLUSIVE lock; REINDEX CONCURRENTLY takes SHARE UPDATE EXCLUSIVE.",
                "The default is ACCESS EXCLUSIVE; with CONCURRENTLY, REINDEX needs only SHARE UPDATE EXCLUSIVE.",
            ),
            wrong=(
                "By default REINDEX takes SHARE UPDATE EXCLUSIVE; REINDEX CONCURRENTLY takes ACCESS EXCLUSIVE.",
                "REINDEX requires SHARE UPDATE EXCLUSIVE by default, and ACCESS EXCLUSIVE with CONCURRENTLY.",
            ),
        )
    # Said of no subject but the thing asked of, the values are still said of it, not of the default.
    assert not judge_answer(caps, "REINDEX takes ACCESS EXCLUSIVE and SHARE UPDATE EXCLUSIVE.").ok
    # A name the question sets beside a fact's subject as another thing compared is a rival, as before.
    truncate = task(
        "Compare DELETE without a WHERE clause and TRUNCATE for emptying a large table.",
        [{"any": ["faster"], "about": "TRUNCATE"}],
    )
    assert judge_answer(truncate, "TRUNCATE is faster than DELETE.").ok
    for swapped in ("DELETE is faster than TRUNCATE.", "TRUNCATE is slower, while DELETE is faster."):
        assert not judge_answer(truncate, swapped).ok, swapped


def test_a_fact_that_holds_slashes_or_commas_is_one_item_not_a_list() -> None:
    url = task("Which page documents the module?", [["https://docs.python.org/3/library/webbrowser"]])
    assert judge_answer(url, "It is https://docs.python.org/3/library/webbrowser.").ok
    path = task("Where does the server put the files?", [["/usr/share/postgresql/15/tsearch_data"]])
    assert judge_answer(path, "The files live in /usr/share/postgresql/15/tsearch_data, beside the dictionaries.").ok
    four = task("What address does AF_INET6 use?", [["(host, port, flowinfo, scope_id)"]])
    # a Python fresh set's answers (both passes), whose names inside the value counted as other values too
    right = (
        "AF_INET6: A four-tuple (host, port, flowinfo, scope_id) where flowinfo and scope_id represent the "
        "sin6_flowinfo and sin6_scope_id members in struct sockaddr_in6 in C."
    )
    assert judge_answer(four, right).ok
    # A list of such values is still a list.
    urls = "It is one of: https://docs.python.org/3/library/webbrowser, http://a/b, http://c/d, http://e/f, http://g/h."
    assert not judge_answer(url, urls).ok
    tuples = "It is one of: (host, port), (host, port, flowinfo, scope_id), path, bytes, (addr, port)."
    assert not judge_answer(four, tuples).ok


def test_a_relative_clause_that_names_no_value_of_the_facts_kind_holds_no_candidates() -> None:
    fill = task("What is the default fillfactor?", [{"number": 90}], wrong=[{"number": 100}])
    assert judge_answer(fill, "The default is 90, which applies to tables, indexes, sequences, views and matviews.").ok
    lock = task("Which lock does VACUUM FULL take?", ["ACCESS EXCLUSIVE"])
    assert judge_answer(lock, "It takes ACCESS EXCLUSIVE, which blocks reads, writes, vacuum and index builds.").ok
    role = task("Which predefined role lets a user monitor the server?", ["pg_monitor"])
    assert judge_answer(role, "It is pg_monitor, which covers stats, settings, activity, locks and progress.").ok
    # Candidates of the fact's kind are still candidates, in a relative clause or not.
    signal = task("Which signal does a fast shutdown send?", ["SIGINT"])
    reads(
        signal,
        wrong=(
            "It sends SIGINT, SIGTERM, SIGQUIT, SIGHUP or SIGKILL.",
            "It is SIGINT, which could be SIGTERM, SIGQUIT, SIGHUP or SIGKILL.",
        ),
    )
    assert not judge_answer(fill, "It is 90, which could be 70, 50, 80 or 10.").ok
    # Words beside a value that is a word are as much candidates as before.
    spread = task("Which checkpoint does BASE_BACKUP perform by default?", ["spread"])
    assert not judge_answer(spread, "It is spread, which could be fast, immediate, smart or lazy.").ok


def test_a_number_that_is_part_of_a_name_is_no_competing_value() -> None:
    fresh_b = load_taskset(ROOT / "e2e" / "eval" / "python-library-fresh-b-tasks.yaml")
    email = next(t for t in fresh_b.tasks if t.id == "pyfb-default-email-policy-max-line-length")
    # both passes' answer on the Python fresh-b run, read as "also states '5322'"
    assert judge_answer(email, "The default max_line_length of an email.policy policy is 78, per RFC 5322.").ok
    reads(
        email,
        right=(
            "It defaults to 78 (see PEP 8).",
            "It is 78, per ISO 8601 and IEEE 754.",
            "The default is 78, a limit the policy has had since 2011.",
            "It has been 78 since 3.3, released in September 2012.",
        ),
    )
    # a number beside no name, or a year-like number that counts something, still competes
    reads(
        email,
        wrong=(
            "It is 78 or 2011.",
            "It is 78, or 80 since 2011.",
            "It is 78 in 2048 slots.",
            "It is 76, per RFC 5322.",
        ),
    )
    # and a fact that is such a number is still stated by it
    rfc = task("Which RFC does the email package follow?", [{"number": 5322}])
    assert judge_answer(rfc, "It follows RFC 5322.").ok


def test_a_wrong_value_that_is_a_common_word_is_stated_only_where_it_stands_as_a_value() -> None:
    main = {t.id: t for t in load_taskset(ROOT / "e2e" / "eval" / "postgres-manual-tasks.yaml").tasks}
    track = main["fresh-cmp-pg-stat-statements-max-vs-track"]  # wrong: all
    right = "pg_stat_statements.max defaults to 5000 and pg_stat_statements.track to top"
    for prose in (
        ", which counts the statements clients issue; all nested statements are left out.",
        ", and all statements issued directly by clients are tracked.",
        " (not all).",
    ):
        assert judge_answer(track, right + prose).ok, prose
    for given in (
        "; it may also be all.",
        "; ALL tracks nested ones too.",
        " or all.",
        "; `all` tracks nested ones.",
    ):
        assert not judge_answer(track, right + given).ok, given
    fresh_b = {t.id: t for t in load_taskset(ROOT / "e2e" / "eval" / "python-library-fresh-b-tasks.yaml").tasks}
    getline = fresh_b["pyfb-behaviour-linecache-getline-error"]  # wrong: None
    reads(
        getline,
        right=(
            "It returns an empty string; none of the lines is read and no error is raised.",
            "It returns an empty string; if none is found it still returns ''.",
            "It returns an empty string, never None.",
        ),
    )
    reads(
        getline,
        wrong=(
            "It returns an empty string or None.",
            "It returns None when the line is missing, else an empty string.",
            "It returns `None` or an empty string.",
            "It returns an empty string, or None.",
        ),
    )


# The chunks the candidate retrieved for pgfe-default-refresh-publication-copy-data (its journal).
ALTER_COPY_DATA = (
    "copy_data (boolean)\nSpecifies whether to copy pre-existing data in the publications that are being subscribed "
    "to when the replication starts. The default is true.\n\nPreviously subscribed tables are not copied, even if a "
    "table's row filter WHERE clause has since been modified."
)
CREATE_COPY_DATA = (
    "copy_data (boolean)\nSpecifies whether to copy pre-existing data in the publications that are being subscribed "
    "to when the replication starts. The default is true.\n\nIf the publications contain WHERE clauses, it will "
    "affect what data is copied. Refer to the Notes for details."
)
CREATE_SLOT = (
    "Since no connection is made when this option is false, no tables are subscribed, and so after you enable the "
    "subscription nothing will be replicated. You will need to then run ALTER SUBSCRIPTION ... REFRESH PUBLICATION "
    "for tables to be subscribed.\n\ncreate_slot (boolean)\nSpecifies whether the command should create the "
    "replication slot on the publisher. The default is true."
)


def cited(answer: str, *passages: tuple[str, str]) -> Outcome:
    return Outcome(
        status="done",
        answer=answer,
        citations=tuple(dict.fromkeys(src for src, _ in passages)),
        retrieved=tuple({"rank": i, "source": src, "text": text} for i, (src, text) in enumerate(passages, 1)),
    )


def test_a_passage_on_another_commands_page_grounds_no_fact_of_the_command_asked() -> None:
    refresh = TASKS["pgfe-default-refresh-publication-copy-data"]
    answer = "The default of the copy_data option of ALTER SUBSCRIPTION ... REFRESH PUBLICATION is true."
    create, alter = "sql-createsubscription.html", "sql-altersubscription.html"
    # the candidate's citation, which a blind reader read ungrounded: CREATE SUBSCRIPTION's copy_data
    s = score(refresh, cited(answer, (create, CREATE_COPY_DATA), (create, CREATE_SLOT)))
    assert s.success and s.grounded is False
    # the same words on ALTER SUBSCRIPTION's own page ground it
    assert score(refresh, cited(answer, (alter, ALTER_COPY_DATA))).grounded
    # and so does the sibling's page where it names the command asked near the fact
    named = "ALTER SUBSCRIPTION ... REFRESH PUBLICATION accepts copy_data (boolean). The default is true."
    assert score(refresh, cited(answer, (create, named))).grounded
    question = refresh.question
    assert siblings(question, create) == ["ALTER SUBSCRIPTION"]
    assert siblings(question, alter) == []  # its own page
    assert siblings(question, "logical-replication-subscription.html") == []  # a page of the topic
    assert siblings("Which lock does VACUUM take?", "runtime-config-autovacuum.html") == []


def test_a_value_under_another_entry_of_its_chunk_is_that_entrys() -> None:
    # "The default is true." under create_slot is create_slot's, though another chunk of the page names copy_data.
    refresh = TASKS["pgfe-default-refresh-publication-copy-data"]
    page = "sql-subscriptionoptions.html"  # no command's page: only the entry reading applies
    answer = "The default of copy_data for REFRESH PUBLICATION is true."
    assert score(refresh, cited(answer, (page, CREATE_SLOT), (page, CREATE_COPY_DATA))).grounded  # copy_data's chunk
    o = cited(answer, (page, CREATE_SLOT))
    named = replace(o, retrieved=(*o.retrieved, {"rank": 9, "source": page, "text": "copy_data (boolean)"}))
    assert score(refresh, named).grounded is False


def test_a_scattershot_answer_still_scores_zero_on_the_set() -> None:
    answer = scattershot(candidates(SET.tasks))
    assert [t.id for t in SET.tasks if judge_answer(t, answer).ok] == []


def test_a_long_lead_in_does_not_hide_a_lists_first_candidate() -> None:
    # Found by checking the scorer's own fixes: with "one of" and no colon, the first item was five
    # words long, so the list counted four short items, one below a list of candidates.
    role = task("Which predefined role lets a user monitor the server?", ["pg_monitor"])
    reads(
        role,
        wrong=(
            "It is one of pg_monitor, 16, 5min, true, fast.",
            "The documentation says that it is pg_monitor, 16, 5min, true or fast.",
            "The role you want is either pg_monitor, pg_signal_backend, pg_read_all_stats, pg_checkpoint or 16.",
        ),
    )
    # A lead-in before one value, or before a list that is not of candidates, reads as before.
    assert judge_answer(role, "The documentation says that the role is pg_monitor.").ok
    assert judge_answer(role, "The role that covers this is pg_monitor, which reads stats, settings and locks.").ok
    # A later long item is prose between two values, not a lead-in (the PostgreSQL fresh-d PL/Tcl answer).
    pl = task(
        "Which PL/Tcl setting names a function to run when a Tcl interpreter is created, and which PL/Perl setting "
        "gives code to run when a Perl interpreter is first initialized?",
        [{"any": ["pltcl.start_proc"], "about": "PL/Tcl"}, {"any": ["plperl.on_init"], "about": "PL/Perl"}],
    )
    answer = (
        "The PL/Tcl setting that names a function to execute whenever a new Tcl interpreter is created is "
        "`pltcl.start_proc`, and the PL/Perl setting that gives Perl code to execute when a Perl interpreter is "
        "first initialized, before it is specialized for plperl or plperlu is `plperl.on_init`."
    )
    assert judge_answer(pl, answer).ok


def test_flags_ored_together_in_the_question_are_one_thing_not_two_compared() -> None:
    # The Python fresh-e run's lockf answer, which a blind reader read right: the question's two names
    # in one "|" argument were bound one to each fact, EACCES to LOCK_EX and EAGAIN to LOCK_NB.
    q = (
        "When fcntl.lockf() is called with LOCK_EX | LOCK_NB and the lock cannot be acquired, which errno "
        "values can the raised OSError carry?"
    )
    lockf = task(q, [["EACCES", "errno.EACCES"], ["EAGAIN", "errno.EAGAIN"]], wrong=["EBUSY"])
    assert judge_answer(lockf, "With LOCK_EX | LOCK_NB the OSError carries EACCES or EAGAIN.").ok
    assert not judge_answer(lockf, "With LOCK_EX | LOCK_NB the OSError carries EBUSY.").ok
    # Two names compared still bind in order: swapped values fail.
    pages = task("Compare the defaults of seq_page_cost and random_page_cost.", [{"number": 1.0}, {"number": 4.0}])
    assert judge_answer(pages, "seq_page_cost defaults to 1.0 and random_page_cost to 4.0.").ok
    assert not judge_answer(pages, "seq_page_cost defaults to 4.0 and random_page_cost to 1.0.").ok
