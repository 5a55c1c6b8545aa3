"""Issue 59's fresh set per corpus (ids fresh2-, part heldout), written from the pages alone by
someone who read no results: its mix of kinds, pages that no other task of the file names, and
wordings that a right answer in its own words meets and a wrong one does not."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from agentfleet_eval.scoring import judge_answer
from agentfleet_eval.taskset import load_taskset, parse_taskset

ROOT = Path(__file__).resolve().parents[3]
FRESH = "fresh2-"
SETS = {n: load_taskset(ROOT / "e2e" / "eval" / f"{n}-tasks.yaml") for n in ("postgres-manual", "python-library")}
TASKS = {t.id: t for s in SETS.values() for t in s.tasks}


def fresh_pages_shared(tasks) -> list[tuple[str, str, str]]:
    """(fresh task, page, other task) for each supporting page of a fresh task that another task of
    the set also names. Pure."""
    return sorted(
        (t.id, page, other.id)
        for t in tasks
        if t.id.startswith(FRESH)
        for other in tasks
        if other.id != t.id
        for page in sorted(set(t.supporting) & set(other.supporting))
    )


@pytest.mark.parametrize("name", sorted(SETS))
def test_each_fresh_set_has_the_mix_of_kinds_and_is_held_out(name: str) -> None:
    fresh = [t for t in SETS[name].tasks if t.id.startswith(FRESH)]
    how_to = "command" if name == "postgres-manual" else "behaviour"  # each file's kind for how-to questions
    mix = {"default": 6, how_to: 4, "comparison": 3, "multihop": 3, "unanswerable": 4}
    assert Counter(t.kind for t in fresh) == mix
    assert all(t.part == "heldout" for t in fresh)
    assert all(len(t.supporting) == 2 for t in fresh if t.kind == "multihop")


@pytest.mark.parametrize("name", sorted(SETS))
def test_fresh_tasks_use_pages_no_other_task_uses(name: str) -> None:
    assert fresh_pages_shared(SETS[name].tasks) == []


def test_a_page_shared_with_a_fresh_task_is_found() -> None:
    def task(tid: str, pages: list[str]) -> dict:
        return {"id": tid, "part": "heldout", "question": "q?", "facts": [tid[-1]], "supporting": pages}

    tasks = parse_taskset([task(FRESH + "a", ["p", "q"]), task("b", ["q"]), task(FRESH + "c", ["r"])], "t").tasks
    assert fresh_pages_shared(tasks) == [(FRESH + "a", "q", "b")]


# A right answer in a reader's own words, and a wrong one of the kind a model gives, for each
# answerable fresh task: the wordings accept the first and refuse the second.
ANSWERS = {
    "fresh2-default-pg-trgm-similarity-threshold": (
        "pg_trgm.similarity_threshold defaults to 0.3 [source: pgtrgm.html].",
        "The default threshold is 0.6.",
    ),
    "fresh2-default-vacuumlo-limit": (
        "By default vacuumlo removes at most 1000 large objects per transaction.",
        "It removes 100 per transaction.",
    ),
    "fresh2-default-pg-test-fsync-secs-per-test": ("Each test runs for 5 seconds by default.", "10 seconds per test."),
    "fresh2-default-dict-int-maxlen": ("maxlen defaults to 6 digits.", "It keeps 10 digits."),
    "fresh2-default-backslash-quote": ("The default is safe_encoding.", "backslash_quote is on by default."),
    "fresh2-default-max-index-keys": ("max_index_keys is 32 by default.", "An index can have up to 64 key columns."),
    "fresh2-cmd-drop-database-force": (
        "Use DROP DATABASE name WITH (FORCE); it terminates the other connections first.",
        "Run pg_terminate_backend for each session, then DROP DATABASE.",
    ),
    "fresh2-cmd-fetch-default-direction": ("Without a direction FETCH returns the next row.", "It fetches PRIOR."),
    "fresh2-cmd-create-subscription-copy-data": (
        "The copy_data option (true by default) copies the pre-existing data.",
        "That is the create_slot option.",
    ),
    "fresh2-cmd-prepare-lifetime": (
        "A prepared statement lasts for the duration of the current database session.",
        "It is dropped at the end of the transaction.",
    ),
    "fresh2-cmp-now-vs-clock-timestamp": (
        "now() returns the start time of the current transaction, while clock_timestamp() returns the actual "
        "current time.",
        "now() returns the actual current time, while clock_timestamp() returns the start of the current transaction.",
    ),
    "fresh2-cmp-gen-salt-bf-vs-xdes": (
        "For bf the default iteration count is 6; for xdes it is 725.",
        "bf uses 725 iterations and xdes uses 6.",
    ),
    "fresh2-cmp-macaddr-vs-macaddr8": ("macaddr takes 6 bytes; macaddr8 takes 8 bytes.", "macaddr takes 8 bytes."),
    "fresh2-hop-logical-replication-publish": (
        "wal_level must be logical, and a publication publishes insert, update, delete, truncate by default.",
        "wal_level must be replica; all actions are published.",
    ),
    "fresh2-hop-wal-segment-waldump": (
        "Segments are normally 16 MB each; pg_waldump displays the WAL in human-readable form.",
        "Segments are 1 GB; use pg_waldump.",
    ),
    "fresh2-hop-hba-file-any-user": (
        "The rules are in pg_hba.conf, and the trust method lets anyone connect as any user.",
        "They are in pg_hba.conf; the peer method does that.",
    ),
    "fresh2-py-default-lzma-preset": ("It uses PRESET_DEFAULT, which is preset level 6.", "The default preset is 9."),
    "fresh2-py-default-asyncio-stream-limit": ("By default the limit is 64 KiB.", "The limit is 8 KiB."),
    "fresh2-py-default-tempfile-mode": ("The mode defaults to 'w+b'.", "It opens in 'w+' text mode."),
    "fresh2-py-default-calendar-first-weekday": ("Calendars start on Monday by default.", "They start on Sunday."),
    "fresh2-py-default-reprlib-maxstring": ("Repr.maxstring defaults to 30.", "maxstring is 40 by default."),
    "fresh2-py-default-ftplib-port": ("The default port number is 21.", "It connects to port 990."),
    "fresh2-py-behaviour-secrets-url-token": (
        "Call secrets.token_urlsafe(); it returns a URL-safe text string.",
        "Use secrets.token_hex().",
    ),
    "fresh2-py-behaviour-itertools-independent-iterators": (
        "itertools.tee(iterable, n) returns n independent iterators.",
        "Call iter() on it several times.",
    ),
    "fresh2-py-behaviour-atexit-order": (
        "They run in reverse order of registration: C, B, A.",
        "They run first in, first out, in registration order.",
    ),
    "fresh2-py-behaviour-fnmatch-case-sensitive": (
        "Use fnmatch.fnmatchcase(filename, pattern).",
        "Use fnmatch.fnmatch(), which is always case-sensitive.",
    ),
    "fresh2-py-cmp-stdev-vs-pstdev": (
        "stdev() returns the sample standard deviation; pstdev() returns the population standard deviation.",
        "stdev() is the population standard deviation and pstdev() the sample one.",
    ),
    "fresh2-py-cmp-lifoqueue-vs-priorityqueue": (
        "LifoQueue returns the most recently added entry first; PriorityQueue returns the lowest valued entry first.",
        "LifoQueue returns the lowest valued entry; PriorityQueue the most recently added.",
    ),
    "fresh2-py-cmp-exists-vs-lexists": (
        "os.path.exists() returns False for a broken symbolic link; os.path.lexists() returns True.",
        "os.path.exists() returns True and os.path.lexists() returns False.",
    ),
    "fresh2-py-hop-getopt-argparse-abbrev": (
        "It suggests argparse; ArgumentParser's allow_abbrev parameter controls abbreviation.",
        "It suggests optparse, with its abbrev option.",
    ),
    "fresh2-py-hop-untrusted-xml-fromstring": (
        "Use the defusedxml package for untrusted data; ET.fromstring() parses XML from a string.",
        "Use lxml; ET.parse() reads XML from a string.",
    ),
    "fresh2-py-hop-subprocess-shell-quote": (
        "With shell=True on POSIX the shell is /bin/sh; escape arguments with shlex.quote().",
        "It uses /bin/bash; escape with shlex.split().",
    ),
}


def test_every_answerable_fresh_task_has_a_right_and_a_wrong_answer() -> None:
    answerable = {t.id for t in TASKS.values() if t.id.startswith(FRESH) and t.expect == "answer"}
    assert set(ANSWERS) == answerable


@pytest.mark.parametrize("task_id", sorted(ANSWERS))
def test_a_right_answer_in_other_words_scores_right_and_a_wrong_one_wrong(task_id: str) -> None:
    right, wrong = ANSWERS[task_id]
    v = judge_answer(TASKS[task_id], right)
    assert v.ok, v.why
    assert not judge_answer(TASKS[task_id], wrong).ok


DECLINES = sorted(t.id for t in TASKS.values() if t.id.startswith(FRESH) and t.expect == "decline")


@pytest.mark.parametrize("task_id", DECLINES)
def test_a_fresh_unanswerable_task_takes_a_decline_and_refuses_an_invented_value(task_id: str) -> None:
    assert judge_answer(TASKS[task_id], "The documentation does not say.").ok
    assert not judge_answer(TASKS[task_id], "It defaults to 10s; set it with ALTER SYSTEM.").ok
