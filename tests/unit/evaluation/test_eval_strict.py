"""Scoring that can fail (issue 38): a list of candidate values, a negated fact, swapped values, a
competing value of the asked kind, a wrong unit and a hedged invented value each score wrong; a
right answer in other words or other units scores right."""

from __future__ import annotations

from pathlib import Path

import pytest
from agentfleet_eval.claims import VOCABULARIES, Reading, as_form, fact_keys, quantities_in
from agentfleet_eval.lists import listed
from agentfleet_eval.scoring import (
    Outcome,
    Verdict,
    asserted_values,
    declined,
    judge_answer,
    score,
    subjects,
    supports,
)
from agentfleet_eval.taskset import Fact, load_taskset, parse_task

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = load_taskset(ROOT / "e2e" / "eval" / "postgres-manual-tasks.yaml")
BY_ID = {t.id: t for t in SHIPPED.tasks}
# Every shipped task set, each scattershot built from its own candidate values.
SETS = {s.name: s for s in (SHIPPED, load_taskset(ROOT / "e2e" / "eval" / "python-library-tasks.yaml"))}


def right(task_id: str, answer: str) -> bool:
    return judge_answer(BY_ID[task_id], answer).ok


def _values(tasks) -> list[str]:
    return [x for t in tasks for f in (*t.facts, *t.wrong) for x in (*f.texts, *(format(n, "g") for n in f.numbers))]


def _kind(value: str) -> str:
    """A value's kind: a quantity's dimension ("" bare), a vocabulary, or "phrase"."""
    f = as_form(value)
    return f.quantity.dim if f.quantity else f.vocab or "phrase"


def candidates(tasks, kinds=None) -> list[str]:
    """Every value a fact of the task set accepts (of the given kinds), with every value of the
    vocabularies among them."""
    values = [x for x in _values(tasks) if kinds is None or _kind(x) in kinds]
    vocabs = {as_form(x).vocab for x in values} - {""}
    values += [e.upper() for v in vocabs for e in VOCABULARIES[v]]
    return list(dict.fromkeys(values))


def scattershot(values) -> str:
    return "The manual does not say exactly. Yes. No. It is one of: " + ", ".join(values) + "."


# How models decline: RAG's prompt echoed ("... and give no value"), the runtime's own decline, and others.
DECLINES = (
    "The documentation does not say, and give no value.",
    "The documentation does not say.",
    "The documents I searched do not state this, so I cannot give a reliable answer.",
    "There is no information about this in the passages.",
    "The passages do not mention whether it does. No value is given.",
)


@pytest.mark.parametrize(
    "task", [t for s in SETS.values() for t in s.tasks if t.expect != "decline"], ids=lambda t: t.id
)
def test_a_decline_answers_no_answerable_question(task) -> None:
    # "does not" in "does not say" and "no" in "give no value" once answered yes/no questions whose fact
    # is "no" or "does not" (py-behaviour-dataclass-order, cmd-create-view-storage, ...).
    for answer in DECLINES:
        assert not judge_answer(task, answer).ok, answer


def test_a_decline_phrase_leaves_the_answer_beside_it() -> None:
    no = parse_task(
        {
            "id": "t",
            "part": "dev",
            "kind": "behaviour",
            "question": "Does X sort?",
            "facts": [["no", "does not"]],
            "supporting": ["x.html"],
        },
        "t",
    )
    assert judge_answer(no, "No. X does not sort; the documentation does not say why.").ok
    assert not judge_answer(no, "The documentation does not say whether X sorts.").ok
    # "There is no" declines only as a whole answer; beside a thing it is the answer.
    merge = BY_ID["fresh-cmd-merge-returning"]
    assert judge_answer(merge, "No. There is no RETURNING clause in MERGE [source: sql-merge.html].").ok
    assert not judge_answer(merge, "There is no information about RETURNING in MERGE.").ok


@pytest.mark.parametrize(
    ("set_name", "task"), [(n, t) for n, s in SETS.items() for t in s.tasks], ids=lambda x: getattr(x, "id", x)
)
def test_a_scattershot_answer_scores_zero_on_every_task(set_name, task) -> None:
    """Built three ways: every value of the kinds the task's facts are (every duration for a
    duration), every value of the task's question kind (every default), every value of the set."""
    tasks = SETS[set_name].tasks
    kinds = {_kind(x) for x in _values([task])}
    same_kind = [t for t in tasks if t.kind == task.kind]
    answers = [scattershot(candidates(tasks)), scattershot(candidates(same_kind))]
    if kinds:
        answers.append(scattershot(candidates(tasks, kinds)))
    assert len(answers[0]) > 1000
    for answer in answers if task.expect == "answer" else answers[:1]:
        v = judge_answer(task, answer)
        assert v.ok is False, (task.id, answer)
        s = score(task, Outcome(status="done", answer=answer, citations=tuple(task.supporting), retrieved=()))
        assert s.success is False


@pytest.mark.parametrize(
    ("task_id", "answer"),
    [
        ("cmd-explain-analyze", "With ANALYZE the statement is not executed; EXPLAIN only shows the plan."),
        ("cmd-explain-analyze", "The statement isn't actually executed."),
        ("cmp-seq-vs-random-page-cost", "seq_page_cost defaults to 4.0 and random_page_cost to 1.0."),
        ("cmp-seq-vs-random-page-cost", "The default random_page_cost is 1.0, while seq_page_cost is 4.0."),
        ("cmp-delete-vs-truncate", "DELETE is faster than TRUNCATE for emptying a large table."),
        ("cmp-delete-vs-truncate", "TRUNCATE is slower; DELETE is faster."),
        (
            "cmd-create-index-concurrently-transaction",
            "Yes, it can. CREATE INDEX CONCURRENTLY cannot be run inside a transaction block.",
        ),
        ("default-random-page-cost", "The default random_page_cost is 4GB."),
        ("default-checkpoint-timeout", "checkpoint_timeout is 5min or 10min by default."),
        ("default-checkpoint-timeout", "checkpoint_timeout defaults to 5 seconds."),
        ("default-wal-level", "The default wal_level is replica, or logical on some builds."),
        ("cmd-vacuum-full-lock", "VACUUM FULL takes an ACCESS EXCLUSIVE or a SHARE UPDATE EXCLUSIVE lock."),
        ("cmp-vacuum-vs-full", "VACUUM FULL takes SHARE UPDATE EXCLUSIVE; plain VACUUM takes ACCESS EXCLUSIVE."),
        ("cmp-smallint-vs-bigint", "smallint takes 8 bytes and bigint 2 bytes."),
        ("cmd-truncate-mvcc", "Yes, TRUNCATE is MVCC-safe."),
        ("cmd-truncate-mvcc", "Yes. TRUNCATE is not MVCC-safe."),
        ("default-autovacuum-max-workers", "Up to 3 autovacuum workers; older releases used 5."),
        ("default-max-wal-size", "max_wal_size defaults to 1 GB (1024 MB), min 2 GB."),
        ("default-port", "The server listens on 5432, or 5433 on Debian."),
        ("cmd-cluster-one-time", "CLUSTER is a one-time operation, but the table stays clustered afterwards."),
    ],
)
def test_wrong_answers_are_wrong(task_id: str, answer: str) -> None:
    assert right(task_id, answer) is False


@pytest.mark.parametrize(
    ("task_id", "answer"),
    [
        ("default-checkpoint-timeout", "The default checkpoint_timeout is 300 seconds."),
        ("default-checkpoint-timeout", "It defaults to five minutes (5min) in PostgreSQL 15."),
        ("default-deadlock-timeout", "deadlock_timeout is 1 s by default."),
        ("default-deadlock-timeout", "1000 ms"),
        ("default-min-wal-size", "min_wal_size defaults to 80 megabytes."),
        ("default-max-wal-size", "The default max_wal_size is 1 gigabyte."),
        ("default-max-wal-size", "It is 1024MB."),
        ("default-log-rotation-age", "A day: log_rotation_age is 1440 minutes."),
        ("default-checkpoint-completion-target", "90% of the checkpoint interval (0.9)."),
        ("default-statement-timeout", "statement_timeout is 0 ms, which disables the timeout."),
        ("default-autovacuum-max-workers", "Three workers."),
        ("cmd-explain-analyze", "The statement is actually executed, not only planned."),
        ("cmp-seq-vs-random-page-cost", "random_page_cost defaults to 4.0 and seq_page_cost to 1.0."),
        ("cmp-seq-vs-random-page-cost", "seq_page_cost and random_page_cost default to 1.0 and 4.0 respectively."),
        ("cmp-delete-vs-truncate", "TRUNCATE is faster than DELETE and reclaims disk space immediately."),
        (
            "cmp-vacuum-vs-full",
            "Plain VACUUM takes SHARE UPDATE EXCLUSIVE, so reads and writes go on; VACUUM FULL takes ACCESS EXCLUSIVE.",
        ),
        ("cmp-smallint-vs-bigint", "smallint uses 2 bytes, bigint 8 bytes."),
        (
            "cmd-create-index-concurrently-transaction",
            "No, CREATE INDEX CONCURRENTLY cannot be executed inside a transaction block.",
        ),
        ("cmd-truncate-mvcc", "No. TRUNCATE is not MVCC-safe."),
        ("cmd-notify-payload", "It must be shorter than 8000 bytes."),
        ("cmd-identifier-length", "63 characters (NAMEDATALEN-1 bytes)"),
        ("hop-port-env", "Port 5432; set PGPORT to use another one [source: libpq-envars.html]."),
        (
            "cmd-cluster-one-time",
            "No: CLUSTER is a one-time operation; later changes are not clustered and it never stays ordered.",
        ),
    ],
)
def test_right_answers_in_other_words_and_units_are_right(task_id: str, answer: str) -> None:
    v = judge_answer(BY_ID[task_id], answer)
    assert v.ok, v.why


@pytest.mark.parametrize(
    ("answer", "declines"),
    [
        ("There is no fixed default: max_cluster_ram is 4GB.", False),
        ("The manual does not mention max_cluster_ram; its default is probably 0.", False),
        ("The documentation does not say; the default value is on.", False),
        ("The manual does not document it, but it takes a SHARE lock.", False),
        ("There is no max_cluster_ram setting in PostgreSQL 15.", True),
        ("The manual does not mention it; the default is not documented.", True),
        ("The manual does not say what max_cluster_ram defaults to.", True),
    ],
)
def test_a_decline_asserts_no_value(answer: str, declines: bool) -> None:
    assert declined(answer, "What is the default value of the max_cluster_ram setting?") is declines
    assert judge_answer(BY_ID["none-max-cluster-ram"], answer).ok is declines


def test_a_hedged_invented_value_says_what_it_asserts() -> None:
    v = judge_answer(BY_ID["none-max-cluster-ram"], "There is no fixed default: max_cluster_ram is 4GB")
    assert v == Verdict(False, "declines but asserts '4gb'")
    assert asserted_values("The default Redis maxmemory policy is noeviction.") == ["noeviction"]
    assert asserted_values("PostgreSQL 15 has no such setting.", "") == []
    assert asserted_values("It takes 5min.", "Does it take 5min?") == []


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("5min", [(300.0, "time")]),
        ("300 s and five minutes and 5 minutes", [(300.0, "time")] * 3),
        ("128MB = 128 megabytes = 131072kB", [(128 * 1024**2, "memory")] * 3),
        ("1 GB is 1024 MB", [(1024**3, "memory")] * 2),
        ("200ms, 0.2 s", [(0.2, "time")] * 2),
        ("1d, 24h, 86400 seconds", [(86400.0, "time")] * 3),
        ("4 and 4.0 and 90%", [(4.0, ""), (4.0, ""), (0.9, "")]),
        ("8 TB, 2 bytes, 10 us", [(8 * 1024**4, "memory"), (2.0, "memory"), (1e-5, "time")]),
        ("1,000 rows and -1", [(1000.0, ""), (-1.0, "")]),
        ("scram-sha-256, int8, x86_64, sha-1", []),
    ],
)
def test_quantities_are_read_with_their_units(text: str, want) -> None:
    got = [(q.value, q.dim) for q in quantities_in(text.lower())]
    assert [d for _, d in got] == [d for _, d in want]
    assert (
        got == pytest.approx(want)
        if not want
        else all(v == pytest.approx(w) for (v, _), (w, _) in zip(got, want, strict=True))
    )


def test_a_bare_number_never_matches_a_number_with_a_unit() -> None:
    four = Fact(numbers=(4.0,))
    r = Reading("random_page_cost is 4GB")
    assert not r.claims(four)
    assert Reading("it is 4").claims(four) and Reading("zero").claims(Fact(numbers=(0.0,)))
    assert Reading("0 ms").claims(Fact(numbers=(0.0,)))  # zero is zero in any unit
    assert not Reading("4 seconds").claims(Fact(texts=("4MB",)))
    assert fact_keys(Fact(texts=("5min", "300 s"), numbers=(5.0,))) == {"q:time:300", "q::5"}
    assert fact_keys(Fact(texts=("Blank-Padded",))) == {"p:blank padded"}


def test_negation_looks_five_words_back_in_its_scope() -> None:
    executed = Fact(texts=("executed",))
    assert Reading("it is not executed").claims(executed)[0].negated
    assert Reading("it isn't really executed").claims(executed)[0].negated
    assert not Reading("not that it matters, it is executed").claims(executed)[0].negated
    assert not Reading("it is not planned but then later executed").claims(executed)[0].negated


def test_lock_mode_words_count_in_capitals_or_before_lock_or_mode() -> None:
    assert [m.entry for m in Reading("takes a SHARE lock, shares a share lock").mentions] == ["share", "share"]
    assert [m.entry for m in Reading("users share the table exclusively").mentions] == []
    assert [m.entry for m in Reading("SHARE ROW EXCLUSIVE then ROW EXCLUSIVE and EXCLUSIVE").mentions] == [
        "share row exclusive",
        "row exclusive",
        "exclusive",
    ]


def test_a_list_of_values_of_kinds_not_asked_is_no_answer() -> None:
    t = BY_ID["cmd-analyze-catalog"]
    assert judge_answer(t, "pg_statistic (readable through the pg_stats view)").ok
    v = judge_answer(t, "pg_statistic, or pg_class, pg_stats, pg_attribute, pg_index")
    assert not v.ok and "a list, not an answer" in v.why


def test_wrong_facts_and_about_bind_what_is_said_of_what() -> None:
    t = parse_task(
        {
            "id": "w",
            "part": "dev",
            "question": "Compare DELETE and TRUNCATE for emptying a table.",
            "facts": [{"any": ["faster"], "about": "TRUNCATE"}],
            "wrong": [["keeps the space"]],
            "supporting": ["sql-truncate.html"],
        },
        0,
    )
    assert subjects(t) == (("truncate",), ("truncate", "delete"))
    assert judge_answer(t, "TRUNCATE is faster.").ok
    assert judge_answer(t, "TRUNCATE is faster but keeps the space.").why == "states the wrong 'keeps the space'"
    assert judge_answer(t, "DELETE is faster.").why == "states 'faster' of delete, not of truncate"
    assert judge_answer(t, "TRUNCATE is faster; so is DELETE, faster than ever.").why == "states 'faster' of delete too"
    assert judge_answer(t, "It is not faster.").why == "negates 'faster'"
    assert judge_answer(t, "It is quick.").why == "missing 'faster'"


def test_grounding_needs_the_fact_with_its_unit_near_the_thing_asked() -> None:
    t = BY_ID["default-min-wal-size"]
    (f,) = t.facts
    assert supports(t, f, "", "min_wal_size (integer) ... The default is 80 MB.")
    assert not supports(t, f, "", "min_wal_size (integer) ... up to 80 files at most.")  # the digits, not the size
    assert not supports(t, f, "", "min_wal_size (integer) ... It is not 80 MB.")
    far = "min_wal_size (integer) is documented here." + " filler" * 200 + " Another setting defaults to 80MB."
    assert not supports(t, f, "", far)
    answer = "min_wal_size is 80MB [source: runtime-config-wal.html]"
    digits_only = {"source": "runtime-config-wal.html", "rank": 1, "text": "min_wal_size: keep 80 segments"}
    s = score(
        t, Outcome(status="done", answer=answer, citations=("runtime-config-wal.html",), retrieved=(digits_only,))
    )
    assert (
        s.success and s.grounded is False and s.why == "correct but ungrounded: no cited passage states '80 MB | 80MB'"
    )
    vac = BY_ID["cmp-vacuum-vs-full"]
    passage = "SHARE UPDATE EXCLUSIVE: acquired by VACUUM (without FULL). ACCESS EXCLUSIVE: acquired by VACUUM FULL."
    ok = Outcome(status="done", answer=(
        "VACUUM: SHARE UPDATE EXCLUSIVE. VACUUM FULL: ACCESS EXCLUSIVE."
    ), citations=("x.html",),
                 retrieved=({"source": "x.html", "rank": 1, "text": passage},))  # fmt: skip
    assert score(vac, ok).grounded is True
    bad = Outcome(
        **{
            **ok.__dict__,
            "retrieved": ({"source": "x.html", "rank": 1, "text": "ACCESS EXCLUSIVE for ALTER TABLE only"},),
        }
    )
    assert score(vac, bad).why == "correct but ungrounded: no cited passage states 'SHARE UPDATE EXCLUSIVE' of vacuum"


def test_cleaning_keeps_lines_and_drops_citations_and_markers() -> None:
    from agentfleet_eval.claims import clean, lower, negated

    assert (
        clean(None) == ""
        and clean("a [source: x.html#2] b") == "a b"
        and clean("1. first\n- second\n\n * third") == "first\nsecond\nthird"
    )
    assert clean("  a   b \n\n c ") == "a b\nc" and clean("`x_y` **bold** _it_") == "x_y bold it"
    assert lower("İx ABC") == "İx abc"
    far = "not a b c d e executed"
    assert negated("not executed", 4) and not negated(far, far.index("executed"))
    assert negated("not a b c d executed", 12) and not negated("not a b but executed", 12)
    assert negated("no executed", 3)


def test_quantities_compare_by_dimension_with_zero_special() -> None:
    from agentfleet_eval.claims import Quantity

    assert Quantity(0.0, "time").same(Quantity(0.0, "memory")) and not Quantity(0.0, "time").same(Quantity(5.0, "time"))
    assert not Quantity(5.0, "time").same(Quantity(0.0, "time")) and Quantity(1e-13, "").same(Quantity(2e-13, ""))
    assert not Quantity(4.0, "").same(Quantity(4.0, "memory")) and Quantity(1e9, "").same(Quantity(1e9 + 1e-3, ""))


def test_vocabulary_mentions_skip_english_and_keep_going() -> None:
    ms = Reading("we share it; EXCLUSIVE, then a share lock").mentions
    assert [(m.entry, m.vocab, m.start, m.end) for m in ms] == [
        ("exclusive", "lock mode", 13, 22),
        ("share", "lock mode", 31, 36),
    ]


def test_what_a_value_is_said_of() -> None:
    r = Reading("4.0 is random_page_cost's; seq_page_cost is 1.0. Next: 2 for neither.")
    names = ("seq_page_cost", "random_page_cost")
    four, one, two = (r.claims(Fact(numbers=(n,)))[0] for n in (4.0, 1.0, 2.0))
    assert r.said_of(four, names) == "random_page_cost" and r.said_of(one, names) == "seq_page_cost"
    assert r.said_of(two, names) == "" and r.said_of(four, ()) == ""
    r2 = Reading("1.0 applies to seq_page_cost, random_page_cost has 4.0")
    assert r2.said_of(r2.claims(Fact(numbers=(1.0,)))[0], names) == "seq_page_cost"
    r3 = Reading("TRUNCATE is faster than DELETE")
    assert r3.said_of(r3.claims(Fact(texts=("faster",)))[0], ("truncate", "delete")) == "truncate"
    r4 = Reading("first sentence. 4.0 seq_page_cost")
    assert r4.said_of(r4.claims(Fact(numbers=(4.0,)))[0], names) == "seq_page_cost"
    from agentfleet_eval.claims import Form

    assert (
        r.occurrences(Form()) == []
        and not r.near(four, ["", " "], 10)
        and r.near(four, ["Random_Page_Cost"], 25)
        and not r.near(four, ["random_page_cost"], 5)
    )


def test_an_enumeration_counts_its_short_items() -> None:
    r = Reading("It is one of: a, b, c, d, e. Then x.")
    a, x = r.claims(Fact(texts=("a",)))[0], r.claims(Fact(texts=("x",)))[0]
    assert listed(r, a) == 6 and listed(r, x) == 1  # "it is one of" is a short item too
    long = Reading(
        "jsonb stores a decomposed binary format, while json keeps an exact copy of the text, whitespace, order, keys"
    )
    assert listed(long, long.claims(Fact(texts=("exact copy",)))[0]) == 0
    five = parse_task({"id": "l", "part": "dev", "question": "q?", "facts": ["a", "b"], "supporting": ["p"]}, 0)
    assert (
        judge_answer(five, "a, b, c, d, e").why
        == "states 'a' only in a list of 5 candidates; states 'b' only in a list of 5 candidates"
    )
    assert judge_answer(five, "a, b, c, d").ok


def test_decline_verdicts_say_why() -> None:
    none = BY_ID["none-max-cluster-ram"]
    assert judge_answer(none, "The manual does not mention it.") == Verdict(True, "ok")
    assert judge_answer(none, "It is 2GB.") == Verdict(False, "answered a question the documents do not answer")
    v = judge_answer(none, "The manual does not say; maybe 1GB, 2GB, 3GB or 4GB.")
    assert v == Verdict(False, "declines but asserts '1gb', '2gb', '3gb'")
    assert declined("The manual does not say whether it is 5min.", "Is the default 5min?")
    assert not declined("The manual does not say whether it is 5min.")


def test_verdicts_name_every_reason() -> None:
    t = parse_task(
        {"id": "w", "part": "dev", "question": "Is DELETE slow, compared with TRUNCATE?", "supporting": ["p"],
         "facts": [{"any": ["quick"], "about": "TRUNCATE"}, {"any": ["not slow"], "about": "DELETE"}]},
        0,
    )  # fmt: skip
    assert judge_answer(t, "DELETE is quick.").why == "states 'quick' of delete, not of truncate; missing 'not slow'"
    assert (
        judge_answer(t, "Yes. TRUNCATE is quick, DELETE is not slow.").why == "answers yes where the fact is a negation"
    )
    assert judge_answer(t, "Yes. No. TRUNCATE is quick, DELETE is not slow.").why == "answers both yes and no"
    assert judge_answer(t, "No. TRUNCATE is quick, DELETE is not slow, pg_a pg_b pg_c").ok
    assert judge_answer(t, "TRUNCATE is quick, DELETE is not slow, pg_a pg_b pg_c pg_d").why.startswith(
        "states 4 values the question"
    )
    assert judge_answer(t, "TRUNCATE is quick. DELETE is not slow. See 1 and 2, SHARE lock, EXCLUSIVE.").why.startswith(
        "states 4 values"
    )
    assert judge_answer(t, "TRUNCATE is quick. DELETE is not slow. See 1 and 2, SHARE lock.").ok
    port = BY_ID["default-port"]
    assert judge_answer(port, "5432, not 5433").ok and judge_answer(port, "5432 or 5433 or 5434").why.endswith(
        "also states '5433', '5434'"
    )
    wal = BY_ID["default-wal-level"]
    assert judge_answer(wal, "replica, not logical").ok and judge_answer(
        wal, "replica; minimal or logical"
    ).why.endswith("also states 'minimal', 'logical'")
    assert (
        judge_answer(BY_ID["cmd-truncate-mvcc"], "Yes: it is not MVCC-safe").why
        == "answers yes where the fact is a negation"
    )
    assert judge_answer(BY_ID["default-checkpoint-timeout"], "It is 5min, not 10min.").ok


def test_grounding_reads_the_subject_and_the_passage_text() -> None:
    t = BY_ID["cmp-seq-vs-random-page-cost"]
    text = "seq_page_cost (floating point): default 1.0. random_page_cost (floating point): default 4.0."
    o = Outcome(status="done", answer="seq_page_cost 1.0, random_page_cost 4.0", citations=("q.html", "r.html"),
                retrieved=({"source": "q.html", "rank": 1, "text": text}, {"source": "r.html", "rank": 2}))  # fmt: skip
    assert score(t, o).grounded is True
    assert (
        score(t, Outcome(**{**o.__dict__, "citations": ("r.html",)})).why
        == "correct but ungrounded: no cited passage states '1' of seq_page_cost"
    )
    none = BY_ID["none-mongodb"]
    assert score(none, Outcome(status="done", answer="No such command is documented.")).grounded is None
    from agentfleet_eval.scoring import groundedness

    assert groundedness(none, o) == (None, "not scored: the question expects a decline") and groundedness(t, o) == (
        True,
        "ok",
    )


PY_BY_ID = {t.id: t for t in SETS["python-library"].tasks}


@pytest.mark.parametrize(
    "answer",
    [
        "poplib.POP3_SSL uses port 995 when no port is given, as the [1] passage states.",
        "It uses port 995 [1].",
        "The default port is 995 (see [1], [2]).",
        "The default port is 995 [1-2].",
    ],
)
def test_a_numbered_citation_is_no_competing_value(answer: str) -> None:
    # Seen on held-out (py-default-pop3-ssl-port): the right port with "the [1] passage" was scored
    # as also stating the number 1. The runtime reads "[1]" as a citation; so does the scorer.
    assert judge_answer(PY_BY_ID["py-default-pop3-ssl-port"], answer).ok


@pytest.mark.parametrize("answer", ["Port 995, or args[1] = 110.", "It uses [1] port 110 and 995."])
def test_a_number_beside_a_citation_or_an_index_still_competes(answer: str) -> None:
    assert not judge_answer(PY_BY_ID["py-default-pop3-ssl-port"], answer).ok


def test_a_numbered_citation_does_not_state_its_number() -> None:
    # The other side of the same rule: "[2]" is no way to state the value 2.
    task = parse_task(
        {
            "id": "t",
            "part": "dev",
            "kind": "default",
            "question": "How many?",
            "facts": [{"number": 2}],
            "supporting": ["a.html"],
        },
        0,
    )
    assert not judge_answer(task, "See [2].").ok
    assert judge_answer(task, "There are 2 [1].").ok


def test_swapped_defaults_of_two_named_things_score_wrong() -> None:
    # The 1.5B's answer on held-out py-cmp-blake2b-vs-blake2s, once scored right.
    task = PY_BY_ID["py-cmp-blake2b-vs-blake2s"]
    swapped = (
        "The default digest size of hashlib.blake2b is 32 bytes, while the default digest size of "
        "hashlib.blake2s is 64 bytes.\n\nSources: hashlib.html"
    )
    assert not judge_answer(task, swapped).ok
    assert judge_answer(task, swapped.replace("32", "X").replace("64", "32").replace("X", "64")).ok


# Markdown marks go, what they sit inside stays (issue 59's noticed quirks).
STREAM_LIMIT = parse_task(
    {
        "id": "stream-limit",
        "part": "dev",
        "question": "How big is the StreamReader buffer limit when limit is not passed?",
        "facts": [["64 KiB", "65536 bytes"]],
        "wrong": [["8 KiB"]],
        "supporting": ["asyncio-stream.html"],
    },
    0,
)


def _opclass_task(tid: str, question: str, name: str) -> object:
    return parse_task(
        {"id": tid, "part": "dev", "question": question, "facts": [[name]], "supporting": ["ltree.html"]}, 0
    )


LTREE = _opclass_task(
    "ltree-opclass", "Which GiST operator class indexes ltree with a signature length?", "gist_ltree_ops"
)
LTREE_ARRAY = _opclass_task(
    "ltree-array-opclass", "Which GiST operator class indexes ltree[] arrays?", "gist__ltree_ops"
)


@pytest.mark.parametrize(
    ("task", "answer", "ok"),
    [
        (STREAM_LIMIT, "It is **2**16 bytes** [source: asyncio-stream.html].", True),
        (STREAM_LIMIT, "The limit is `2 ** 16` bytes.", True),
        (STREAM_LIMIT, "2^16 bytes, that is 64 KiB.", True),
        (STREAM_LIMIT, "It is 216 bytes.", False),  # what "2**16" used to read as
        (STREAM_LIMIT, "It is 2**13 bytes.", False),  # 8 KiB: the wrong value, as a power
        (LTREE, "Use `gist_ltree_ops` with siglen.", True),
        (LTREE, "Use **gist_ltree_ops** with siglen.", True),
        (LTREE, "Use `gist__ltree_ops` with siglen.", False),  # the array class: another name
        (LTREE, "Use _gist_ltree_ops_ with siglen.", True),  # emphasis, not a name
        (LTREE_ARRAY, "Use `gist__ltree_ops`.", True),
        (LTREE_ARRAY, "Use gist_ltree_ops.", False),  # the single-value class
    ],
)
def test_markup_goes_and_operators_and_names_stay(task, answer: str, ok: bool) -> None:  # noqa: ANN001
    assert judge_answer(task, answer).ok is ok, judge_answer(task, answer).why


def test_the_marks_inside_names_and_powers_survive_cleaning() -> None:
    from agentfleet_eval.claims import clean

    assert clean("**2**16** and `__init__`, _private, class_, gist__ltree_ops, _emph_ *it*") == (
        "2**16 and __init__, _private, class_, gist__ltree_ops, emph it"
    )
    assert [q.value for q in quantities_in("2**16 bytes, 2 ** 10, 10^3 ms")] == [65536.0, 1024.0, 1.0]


def test_a_value_the_page_states_alongside_the_fact_competes_with_nothing() -> None:
    """pg_test_fsync: "The default is 5 seconds, which allows the program to complete in under 2
    minutes." Copying that sentence is right; any other time still competes."""
    raw = {
        "id": "fsync",
        "part": "dev",
        "question": "How long does pg_test_fsync run each of its tests when I do not pass --secs-per-test?",
        "facts": [["5 seconds", "5s"]],
        "wrong": [["10 seconds"]],
    }
    copied = "5 seconds per test, so the program completes in under 2 minutes [source: pgtestfsync.html]."
    plain = parse_task({**raw, "supporting": ["pgtestfsync.html"]}, 0)
    assert not judge_answer(plain, copied).ok  # without the key's alongside: "also states '2 minutes'"
    keyed = parse_task({**raw, "supporting": ["pgtestfsync.html"], "alongside": [["2 minutes"]]}, 0)
    assert judge_answer(keyed, copied).ok
    assert not judge_answer(keyed, "5 seconds per test, under 3 minutes in all.").ok
    assert not judge_answer(keyed, "5 seconds or 2 minutes or 10 seconds.").ok
    with pytest.raises(Exception, match=r"alongside\[0\].*also listed as wrong"):
        parse_task({**raw, "supporting": ["x.html"], "alongside": [["10 seconds"]]}, 0)
    shipped = BY_ID["fresh2-default-pg-test-fsync-secs-per-test"]
    assert judge_answer(shipped, copied).ok
