"""The cascade's balance in `agentfleet eval` (issue 59, item 4): per task, a first answer right and
a final one wrong is lost by the loop, the other way won; the first answer is scored by the same
scorer as the final one; two failure kinds the loop adds (a passage in the answer's place, a
right decline the loop undid). The first answer travels from the loop (Step.first_answer) through
the task API (steps[].firstAnswer) to the harness (Outcome.first_answer)."""

from __future__ import annotations

import io

from agentfleet_eval.scoring import Outcome, score
from agentfleet_eval.taskset import parse_task

from agentfleet_client.evaluation import report
from agentfleet_client.evaluation.runner import outcome_of
from agentfleet_runtime.core.types import Step, Usage

PAGE = "functools.html"
STATES = {"source": PAGE, "rank": 1, "text": "If maxsize is not given, the cache keeps the 128 most recent calls."}
ANSWERABLE = {"id": "t-lru", "part": "dev", "kind": "default", "facts": [{"number": 128}], "supporting": [PAGE],
              "question": "How many calls does functools.lru_cache keep when maxsize is not given?"}  # fmt: skip
UNANSWERABLE = {"id": "t-yaml", "part": "dev", "kind": "unanswerable", "expect": "decline",
                "question": "Which function of the yaml module parses YAML safely?"}  # fmt: skip


def scored(raw: dict, answer: str, first: str = "") -> object:
    o = Outcome(status="done", reason="final_answer", answer=answer, retrieved=(STATES,), citations=(PAGE,),
                first_answer=first)  # fmt: skip
    return score(parse_task(raw, 0), o)


def test_lost_and_won_by_the_loop_per_task():
    lost = scored(ANSWERABLE, "It keeps 256 calls. [source: functools.html]", first="128 calls [source: x]")
    won = scored({**ANSWERABLE, "id": "t-won"}, "It keeps 128 calls. [source: functools.html]", first="Not said.")
    kept = scored({**ANSWERABLE, "id": "t-kept"}, "It keeps 128 calls. [source: functools.html]", first="128")
    plain = scored({**ANSWERABLE, "id": "t-rag"}, "It keeps 128 calls. [source: functools.html]")  # no cascade
    balance = report.loop_balance([lost, won, kept, plain])
    assert balance == {"firstAnswers": 3, "firstRight": 2, "lostByLoop": ["t-lru"], "wonByLoop": ["t-won"]}
    assert report.loop_balance([plain]) is None
    out = io.StringIO()
    report.loop_table([("agent", [lost, won, kept]), ("one-shot-rag", [plain])], out)
    text = out.getvalue()
    assert "[agent] cascade: first answer right 2 of 3; lost by the loop 1, won by the loop 1 (net +0)" in text
    assert "lost by the loop: t-lru: first '128 calls" in text and "won by the loop: t-won" in text
    assert "one-shot-rag" not in text
    assert report.task_record(lost)["loop"] == "lost" and report.task_record(plain).get("loop") is None


def test_the_first_answer_is_scored_by_the_final_answers_scorer():
    s = scored(ANSWERABLE, "x", first="It keeps the 128 most recent calls. [source: functools.html]")
    first = report.first_score(s)
    again = score(s.task, Outcome(**{**s.outcome.__dict__, "answer": s.outcome.first_answer}))
    assert first is not None and first == again
    assert first.success and not s.success


def test_the_two_failure_kinds_the_loop_adds():
    cited = scored(ANSWERABLE, "The number of calls is [3] (functools.html, score 0.030)", first="128")
    assert report.cause(cited) == report.PASSAGE_AS_ANSWER
    tagged = scored(ANSWERABLE, "The number of calls is [source: functools.html, score 0.030].", first="128")
    assert report.cause(tagged) == report.PASSAGE_AS_ANSWER
    for stated in ("It is 64 [source: functools.html].", "It is 64. The source of this is [source: functools.html]."):
        assert report.cause(scored(ANSWERABLE, stated)) != report.PASSAGE_AS_ANSWER
    # The runtime's check reads the same (agentfleet_contract.passage_refs): a reference that is all the
    # answer says is one, and a head line copied after the value stated is a citation, not the answer.
    for only_refs in ("[1] [source: functools.html]", "The number of calls is [source: functools.html] line 1."):
        assert report.cause(scored(ANSWERABLE, only_refs)) == report.PASSAGE_AS_ANSWER
    after = scored(ANSWERABLE, "It keeps 64 calls. This is stated in the passage [3] (functools.html, score 0.030).")
    assert report.cause(after) != report.PASSAGE_AS_ANSWER
    undone = scored(UNANSWERABLE, "Use yaml.safe_load().", first="The documentation does not say.")
    assert report.cause(undone) == report.DECLINE_UNDONE
    invented = scored(UNANSWERABLE, "Use yaml.safe_load().")  # no first answer: scoring's own cause
    assert report.cause(invented) == "invented"
    assert report.causes([cited, undone, invented]) == {"passageAsAnswer": 1, "invented": 1, "declineUndone": 1}


def test_the_first_answer_travels_from_the_loops_step_to_the_harness():
    step = Step(1, "ACCESS EXCLUSIVE", [], Usage(1, 1), first_answer="The passages do not say.")
    assert Step.from_json(step.to_json()).first_answer == "The passages do not say."
    assert "first_answer" not in Step(1, "x", [], Usage()).to_json()  # only where there was one
    assert list(step.to_json())[-1] == "observations"  # the completion checkpoint splices it last


def test_a_steps_model_calls_survive_its_checkpoint_and_a_worker_of_the_release_before_reads_it():
    step = Step(1, "ACCESS EXCLUSIVE", [], Usage(1200, 40, calls=2))
    stored = step.to_json()
    assert Step.from_json(stored).usage == Usage(1200, 40, calls=2)
    assert stored["usage"] == [1200, 40]  # the pair a worker before model_calls unpacks into its Usage
    old = {k: v for k, v in stored.items() if k != "model_calls"}  # checkpointed before model_calls
    assert Step.from_json(old).usage == Usage(1200, 40)
    root = {"id": "r", "status": "done", "answer": "ACCESS EXCLUSIVE", "stepCount": 2,
            "steps": [{"n": 0, "toolCalls": []}, {"n": 1, "firstAnswer": "The passages do not say."}]}  # fmt: skip
    assert outcome_of([root]).first_answer == "The passages do not say."
    assert outcome_of([{**root, "steps": []}]).first_answer == ""
