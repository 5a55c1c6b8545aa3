"""Results only the gate's Job can write (issue 76, finding 3): every result, the sample and what
judged carry an HMAC under the gate's key; the operator and a restarted Job count only what
verifies, and say what did not. Pure: agentfleet_contract.gate and the runner's writes."""

from __future__ import annotations

import asyncio
import json
import time

from agentfleet_contract.gate import (
    JUDGE_KEY,
    JUDGE_MAC_KEY,
    SAMPLE_KEY,
    SAMPLE_MAC_KEY,
    GateTaskResult,
    pending,
    result_key,
    result_verifies,
    sign_result,
    sign_value,
    verified_results,
)
from agentfleet_eval.taskset import EvalTask

from agentfleet_runtime.gate.run import Budget, Runner

KEY, GATE = b"the-gates-key", "support-gate-0123456789"


def signed(task: str, version: str = "current", success: bool = True, key: bytes = KEY, gate: str = GATE) -> str:
    r = GateTaskResult(task_id=task, version=version, success=success, tokens=10)
    return sign_result(key, gate, r).model_dump_json(by_alias=True)


def sample(tasks: list[str], key: bytes = KEY, gate: str = GATE) -> dict[str, str]:
    raw = json.dumps(tasks)
    return {SAMPLE_KEY: raw, SAMPLE_MAC_KEY: sign_value(key, gate, SAMPLE_KEY, raw)}


def test_what_the_job_signed_verifies_and_is_counted():
    data = {**sample(["a"]), "current.a": signed("a"), "candidate.a": signed("a", "candidate")}
    got = verified_results(data, KEY, GATE)
    assert got.sample == ["a"] and got.rejected == ()
    assert {(r.version, r.task_id) for r in got.results} == {("current", "a"), ("candidate", "a")}


def test_forged_results_are_rejected_whatever_the_forger_knows():
    forged = GateTaskResult(task_id="a", version="candidate", success=True, tokens=1)
    data = {
        **sample(["a", "b", "c", "d", "e"]),
        "current.a": signed("a"),
        # unsigned (what a namespace writer computes from the spec)
        "candidate.a": forged.model_dump_json(by_alias=True),
        # signed under another key (the forger's own)
        "candidate.b": signed("b", "candidate", key=b"guessed"),
        # a real signature of this gate's failure, the success flipped after signing
        "candidate.c": json.dumps({**json.loads(signed("c", "candidate", success=False)), "success": True}),
        # a real result of another gate, replayed here
        "candidate.d": signed("d", "candidate", gate="support-gate-ffffffffff"),
        # the current version's real result moved to the candidate's key
        "candidate.e": signed("e", "current").replace('"current"', '"candidate"'),
    }
    got = verified_results(data, KEY, GATE)
    assert [(r.version, r.task_id) for r in got.results] == [("current", "a")]
    assert set(got.rejected) == {f"candidate.{t}" for t in "abcde"}
    # Not counted means not run: the Job runs them again and writes over them.
    assert ("candidate", "a") in pending(got.sample or [], got.results)


def test_a_sample_that_does_not_verify_is_no_sample_and_no_key_verifies_nothing():
    raw = json.dumps(["a"])
    unsigned = {SAMPLE_KEY: raw, "current.a": signed("a")}
    got = verified_results(unsigned, KEY, GATE)
    assert got.sample is None and SAMPLE_KEY in got.rejected
    wrong = {SAMPLE_KEY: raw, SAMPLE_MAC_KEY: sign_value(b"guessed", GATE, SAMPLE_KEY, raw)}
    assert verified_results(wrong, KEY, GATE).sample is None
    none = verified_results({**sample(["a"]), "current.a": signed("a")}, None, GATE)
    assert none.sample is None and none.results == [] and set(none.rejected) == {SAMPLE_KEY, "current.a"}


def test_what_judged_is_read_only_when_signed():
    raw = json.dumps({"taskSetSha256": "ab" * 32, "scorerSha256": "cd" * 32})
    good = verified_results({JUDGE_KEY: raw, JUDGE_MAC_KEY: sign_value(KEY, GATE, JUDGE_KEY, raw)}, KEY, GATE)
    assert good.judge == {"taskSetSha256": "ab" * 32, "scorerSha256": "cd" * 32}
    bad = verified_results({JUDGE_KEY: raw}, KEY, GATE)
    assert bad.judge is None and bad.rejected == (JUDGE_KEY,)


class _Side:
    def __init__(self, version: str) -> None:
        self.version = version

    async def run(self, run, task, stop):
        return GateTaskResult(task_id=task.id, version=self.version, success=True, tokens=10)


class _Results:
    name = GATE

    def __init__(self) -> None:
        self.added: dict[str, str] = {}

    async def add(self, data, resource_version=None):
        self.added.update(data)


def test_the_runner_writes_every_result_signed_under_the_gates_key():
    results = _Results()
    sides = {"current": _Side("current"), "candidate": _Side("candidate")}
    runner = Runner(sides, results, GATE, Budget(time.time() + 600, 10**6), KEY)  # type: ignore[arg-type]
    tasks = {t: EvalTask(id=t, question=f"q {t}", kind="default", part="dev") for t in ("a", "b")}
    asyncio.run(runner.run(tasks, pending(["a", "b"], []), 2))
    assert set(results.added) == {result_key(v, t) for v in ("current", "candidate") for t in "ab"}
    for value in results.added.values():
        assert result_verifies(KEY, GATE, GateTaskResult.model_validate_json(value))
        assert not result_verifies(b"other", GATE, GateTaskResult.model_validate_json(value))
