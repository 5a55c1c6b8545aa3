"""e2e/bench/verify_replay.py: the verifying search replayed over a stored cascade pass, with a
search written here (the judging is the runtime's own)."""

from __future__ import annotations

import asyncio
import gzip
import json

from agentfleet_eval.scoring import Outcome
from agentfleet_eval.taskset import parse_taskset

from e2e.bench.verify_replay import pass_outcomes, replay_one, summary

TASK = parse_taskset(
    [
        {"id": "nntp", "part": "heldout", "kind": "default", "question": "Which port does nntplib.NNTP use by default?",
         "facts": [{"number": 119}], "wrong": [{"number": 563}], "supporting": ["nntplib.html"]},
    ],
    "t",
).tasks[0]  # fmt: skip
FIRST = {"step": 0, "call": 0, "rank": 1, "source": "nntplib.html", "text": "NNTP_SSL uses port 563 if omitted."}
HOLDS = {"source": "nntplib.html", "score": 0.9, "text": "class nntplib.NNTP(host, port=119, user=None)"}
ELSEWHERE = {"source": "telnetlib.html", "score": 0.9, "text": "telnetlib.Telnet uses port 119 here."}
PLAN = {"check_names": False, "other_subjects": True, "subject": ""}


def outcome(first: str, final: str = "The documents I searched do not state this.") -> Outcome:
    return Outcome(status="done", answer=final, retrieved=(FIRST,), first_answer=first, tokens=10)


def replayed(first: str, found: list[dict]):
    queries: list[str] = []

    async def search(query: str) -> list[dict]:
        queries.append(query)
        return found

    return asyncio.run(replay_one(TASK, outcome(first), search, PLAN)), queries


def test_a_refused_right_value_that_the_search_finds_is_won_and_grounded():
    row, queries = replayed("The default port of nntplib.NNTP is 119.", [HOLDS])
    assert row.kind == "verified" and not row.before.success
    assert row.after.success and row.after.grounded and queries == ["The default port of nntplib.NNTP is 119."]
    assert summary([row])[1].startswith("verified 1: won 1 ['nntp'], lost 0")


def test_what_the_search_does_not_hold_or_another_things_page_holds_ends_as_it_did():
    assert replayed("The default port of nntplib.NNTP is 119.", [FIRST])[0].kind == "not-held"
    # 119 on a page that never names nntplib.NNTP: declineOtherSubjects keeps it from ending the task.
    assert replayed("The default port of nntplib.NNTP is 119.", [ELSEWHERE])[0].kind == "not-held"
    # A first answer the first passages hold, a decline, or none: nothing to search for.
    for first, kind in (("NNTP_SSL uses 563.", "not-verifiable"), ("The passages do not say.", "not-verifiable"),
                        ("", "no-first-answer")):  # fmt: skip
        row, queries = replayed(first, [HOLDS])
        assert (row.kind, queries, row.after) == (kind, [], None)


def test_a_wrong_value_the_search_happens_to_hold_is_counted_lost():
    """The replay can fail the change: the task had ended right; the search holds the first answer's
    wrong value on the asked thing's own page, so the task would have ended wrong."""
    wrong_on_page = {"source": "nntplib.html", "score": 0.9, "text": "nntplib.NNTP may also reach port 563."}
    quiet = {**FIRST, "text": "class nntplib.NNTP opens a connection."}
    ended_right = Outcome(status="done", answer="It is 119 [source: nntplib.html]", retrieved=(quiet,),
                          first_answer="The default port of nntplib.NNTP is 563.")  # fmt: skip

    async def search(query: str) -> list[dict]:
        return [wrong_on_page]

    row = asyncio.run(replay_one(TASK, ended_right, search, PLAN))
    assert row.kind == "verified" and row.before.success and not row.after.success
    assert summary([row])[1] == "verified 1: won 0 [], lost 1 ['nntp']; right but not grounded []"


def test_the_journals_pass_is_read_plain_or_gzipped(tmp_path):
    rows = [{"runId": "r"}, {"pass": "cand", "task": "nntp", "outcome": {"answer": "a", "first_answer": "f"}},
            {"pass": "one-shot-rag", "task": "nntp", "outcome": {"answer": "b"}}]  # fmt: skip
    text = "\n".join(json.dumps(r) for r in rows) + "\n"
    (tmp_path / "j.jsonl").write_text(text)
    with gzip.open(tmp_path / "j.jsonl.gz", "wt") as f:
        f.write(text)
    for name in ("j.jsonl", "j.jsonl.gz"):
        got = pass_outcomes(tmp_path / name, "cand")
        assert list(got) == ["nntp"] and got["nntp"].first_answer == "f"
