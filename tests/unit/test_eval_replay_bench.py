"""e2e/bench/eval_replay.py: the replay of a stored eval run through the runtime's citing and the
history's elided repeats, on a journal written here."""

from __future__ import annotations

import json

from agentfleet_eval.scoring import Outcome

from e2e.bench.eval_replay import in_order, passes, recited, tokens_saved

A = {"source": "a.html", "text": "autovacuum_max_workers: the default is three."}
B = {"source": "b.html", "text": "VACUUM takes a SHARE UPDATE EXCLUSIVE lock; three phases follow."}


def outcome(retrieved: list[dict], answer: str = "The default number of autovacuum workers is three.") -> Outcome:
    return Outcome(status="done", answer=answer, citations=("b.html",), retrieved=tuple(retrieved), tokens=100)


def test_the_replay_cites_the_stated_value_and_counts_only_repeats_after_the_first_search(tmp_path):
    got = recited(outcome([]), "How many autovacuum workers by default?")
    assert got.answer == outcome([]).answer  # nothing retrieved: nothing to add
    o = outcome([{**A, "step": 0, "rank": 1}, {**B, "step": 0, "rank": 2}])
    assert recited(o, "How many autovacuum workers by default?").citations == ("a.html",)
    # Step 1 repeats both (its first stays whole), step 2 repeats one: each saving counts once per later call.
    rows = [{**A, "step": 0, "rank": 1}, {**B, "step": 0, "rank": 2}, {**A, "step": 1, "rank": 1}]
    rows += [{**B, "step": 1, "rank": 2}, {**B, "step": 2, "rank": 1}, {**A, "step": 2, "rank": 2}]
    count = len  # characters stand in for tokens
    saved = tokens_saved(outcome(rows), count)
    b_saved = len(B["text"]) - len("(the same passage as shown above)")
    a_saved = len(A["text"]) - len("(the same passage as shown above)")
    assert saved == b_saved * 2 + a_saved * 1
    assert [p["step"] for p in in_order(outcome(list(reversed(rows))))] == [0, 0, 1, 1, 2, 2]
    assert tokens_saved(outcome(rows[:2]), count) == 0
    journal = tmp_path / "results.jsonl"
    lines = [
        {"runId": "r"},
        {"pass": "http://x", "task": "t", "outcome": {"answer": "a"}},
        {"pass": "rag", "task": "t"},
    ]
    journal.write_text("\n".join(json.dumps(x) for x in lines))
    assert passes(journal) == {"http://x": {"t": {"answer": "a"}}}
