"""e2e/bench/reader_agreement.py: the scorer's verdicts beside a blind reader's labels."""

from __future__ import annotations

import json

from agentfleet_eval.taskset import parse_taskset

from e2e.bench.reader_agreement import agreement, compare, export, key, main

TASK = parse_taskset(
    [
        {"id": "nntp", "part": "heldout", "kind": "default", "question": "Which port does nntplib.NNTP use by default?",
         "facts": [{"number": 119}], "wrong": [{"number": 563}], "supporting": ["nntplib.html"]},
    ],
    "t",
).tasks[0]  # fmt: skip
TASKS = {"nntp": TASK}
HOLDS = {"step": 0, "rank": 1, "source": "nntplib.html", "text": "class nntplib.NNTP(host, port=119, user=None)"}
OTHER = {"step": 0, "rank": 2, "source": "telnetlib.html", "text": "telnetlib.Telnet connects to a host."}


def record(pass_: str, answer: str, citations: list[str]) -> dict:
    outcome = {"status": "done", "answer": answer, "citations": citations, "retrieved": [HOLDS, OTHER]}
    return {"pass": pass_, "task": "nntp", "outcome": outcome}


CAND = record("cand", "It uses port 119 [source: nntplib.html].", ["nntplib.html"])
RAG = record("one-shot-rag", "It uses port 119 [source: telnetlib.html].", ["telnetlib.html"])


def test_a_packet_names_neither_the_pass_nor_a_verdict() -> None:
    packets = export(TASKS, [CAND, RAG])
    text = json.dumps(packets)
    assert "cand" not in text and "one-shot-rag" not in text and "success" not in text and "grounded" not in text
    assert {p["key"] for p in packets} == {key(CAND), key(RAG)} and key(CAND) != key(RAG)
    (cand,) = [p for p in packets if p["key"] == key(CAND)]
    assert cand["facts"] == ["119"] and [p["cited"] for p in cand["passages"]] == [True, False]
    assert [bool(p["text"]) for p in cand["passages"]] == [True, False]  # grounded reads cited passages only
    big = parse_taskset([{**TASK_DICT, "facts": [{"number": 80877103}, {"number": 0.5}]}], "t").tasks[0]
    assert export({"nntp": big}, [CAND])[0]["facts"] == ["80877103", "0.5"]  # not 8.08771e+07


def test_agreement_counts_each_side_of_a_disagreement() -> None:
    # The scorer: both correct, the candidate's grounded (its cited page states 119), RAG's not (it
    # cites a page that does not). The reader: the same on RAG, but calls the candidate ungrounded.
    labels = {
        key(CAND): {"correct": True, "grounded": False, "why": "the signature is not a statement"},
        key(RAG): {"correct": True, "grounded": False, "why": "telnetlib says nothing of 119"},
    }
    rows = compare(TASKS, [CAND, RAG], labels)
    a = agreement(rows)
    assert (a["answers"], a["correct_agree"], a["both_correct"], a["grounded_agree"]) == (2, 2, 2, 1)
    assert (a["scorer_only_grounded"], a["reader_only_grounded"]) == (1, 0)
    # A reader who calls RAG's answer wrong: one disagreement on correct, the reader's side.
    labels[key(RAG)] = {"correct": False, "grounded": None, "why": "wrong port"}
    a = agreement(compare(TASKS, [CAND, RAG], labels))
    assert (a["correct_agree"], a["scorer_only_correct"], a["reader_only_correct"], a["both_correct"]) == (1, 1, 0, 1)


def test_the_command_exports_then_compares(tmp_path, capsys) -> None:
    journal, taskset = tmp_path / "results.jsonl", tmp_path / "tasks.yaml"
    journal.write_text(json.dumps(CAND) + "\n" + json.dumps(RAG) + "\n")
    taskset.write_text(json.dumps({"name": "t", "tasks": [TASK_DICT]}))
    main(["export", str(journal), str(taskset), str(tmp_path / "packets.jsonl")])
    packets = [json.loads(line) for line in (tmp_path / "packets.jsonl").read_text().splitlines()]
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"key": p["key"], "correct": True, "grounded": True}) + "\n" for p in packets))
    main(["compare", str(journal), str(taskset), str(labels)])
    out = capsys.readouterr().out
    assert "[cand] correct: agree on 1 of 1 (100%)" in out and "grounded one-shot-rag nntp: scorer False" in out


TASK_DICT = {
    "id": "nntp",
    "part": "heldout",
    "kind": "default",
    "question": "Which port does nntplib.NNTP use by default?",
    "facts": [{"number": 119}],
    "wrong": [{"number": 563}],
    "supporting": ["nntplib.html"],
}
