"""The gate Job's pure parts (docs/evaluation-gate.md, "Who runs the tasks" and "Durable"): the
results ConfigMap's keys and what a restart reads back from it, the sample, the budget's clock,
the result a scored answer becomes, the two runtime documents, the reserved tenant and the task
sets the image ships."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from agentfleet_contract.agentfleet.rollout import SHIPPED_TASK_SETS
from agentfleet_contract.gate import (
    SAMPLE_KEY,
    GateResultsError,
    GateTaskResult,
    key_id,
    pending,
    result_key,
    results_in,
    shipped_task_set,
)
from agentfleet_contract.runtime_config import GATE_TENANT, token_line
from agentfleet_eval.sampling import gate_sample, stratified_sample
from agentfleet_eval.scoring import Outcome
from agentfleet_eval.taskset import EvalTask, load_taskset

from agentfleet_runtime.core.tenants import parse_tokens
from agentfleet_runtime.gate.cli import load_versions
from agentfleet_runtime.gate.run import GateError, by_task, deadline_of, tasks_of
from agentfleet_runtime.gate.tasks import gate_result, idempotency_key

ROOT = Path(__file__).resolve().parents[3]
POSTGRES = ROOT / "e2e" / "eval" / "postgres-manual-tasks.yaml"
CONFIGMAP_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")


def res(task: str, version: str = "current", **kw) -> GateTaskResult:
    return GateTaskResult(task_id=task, version=version, success=kw.pop("success", True), **kw)


# -- keys ------------------------------------------------------------------------------------------


def test_a_plain_task_id_is_its_own_key():
    assert result_key("current", "wal-01") == "current.wal-01"
    assert result_key("candidate", "py.behaviour_sort-stable") == "candidate.py.behaviour_sort-stable"


@pytest.mark.parametrize("task_id", ["what is 5 min?", "ü/ß", "a" * 201, "x" * 253, " ", "a:b", "a/b"])
def test_any_task_id_makes_a_valid_configmap_key(task_id):
    for version in ("current", "candidate"):
        assert CONFIGMAP_KEY.match(result_key(version, task_id)), result_key(version, task_id)


def test_ids_that_clean_to_the_same_text_keep_apart():
    # "a b" and "a/b" both clean to "a_b"; two ids that share their first 200 characters too.
    ids = ["a b", "a/b", "a_b", "x" * 201, "x" * 202, "x" * 200 + "é"]
    assert len({key_id(t) for t in ids}) == len(ids)


# -- what a restart reads back ---------------------------------------------------------------------


def test_results_in_reads_the_sample_and_every_valid_result():
    data = {
        SAMPLE_KEY: json.dumps(["a", "b c"]),
        result_key("current", "a"): res("a").model_dump_json(by_alias=True),
        result_key("candidate", "b c"): res("b c", "candidate", success=False, tokens=7).model_dump_json(by_alias=True),
    }
    sample, done = results_in(data)
    assert sample == ["a", "b c"]
    assert {(r.version, r.task_id, r.success, r.tokens) for r in done} == {
        ("current", "a", True, 0),
        ("candidate", "b c", False, 7),
    }


def test_a_result_that_does_not_match_its_key_or_does_not_parse_counts_as_not_run():
    data = {
        # the candidate's result under the current version's key (a copy-paste by hand)
        result_key("current", "a"): res("a", "candidate").model_dump_json(by_alias=True),
        # another task's result under this task's key
        result_key("current", "b"): res("a").model_dump_json(by_alias=True),
        result_key("candidate", "a"): "{not json",
        "notes": "anything else in the ConfigMap is not a result",
    }
    assert results_in(data) == (None, [])
    assert pending(["a", "b"], results_in(data)[1]) == [
        ("current", "a"),
        ("candidate", "a"),
        ("current", "b"),
        ("candidate", "b"),
    ]


@pytest.mark.parametrize("raw", ["{", '{"a": 1}', "[1, 2]", '"a"'])
def test_a_sample_that_is_no_list_of_ids_is_an_error_naming_the_key(raw):
    with pytest.raises(GateResultsError, match="key sample must be a JSON list"):
        results_in({SAMPLE_KEY: raw})


def test_an_empty_configmap_has_no_sample_and_no_results():
    assert results_in(None) == (None, []) and results_in({}) == (None, [])


def test_pending_runs_only_what_is_missing_current_first_per_task():
    done = [res("a"), res("b", "candidate")]
    assert pending(["a", "b", "c"], done) == [
        ("candidate", "a"),
        ("current", "b"),
        ("current", "c"),
        ("candidate", "c"),
    ]
    assert by_task(pending(["a", "b", "c"], done)) == [
        ("a", ["candidate"]),
        ("b", ["current"]),
        ("c", ["current", "candidate"]),
    ]


def test_every_result_written_leaves_nothing_pending():
    done = [res(t, v) for t in ("a", "b") for v in ("current", "candidate")]
    assert pending(["a", "b"], done) == []


# -- the sample ------------------------------------------------------------------------------------


def test_the_sample_is_stable_and_the_same_as_agentfleet_evals():
    ts = load_taskset(POSTGRES)
    first = gate_sample(ts, "heldout", 12, 3)
    assert first == gate_sample(load_taskset(POSTGRES), "heldout", 12, 3)
    assert len(first) == 12 and all(ts_task.part == "heldout" for ts_task in ts.tasks if ts_task.id in first)
    # `agentfleet eval --part heldout --sample 12 --seed 3` draws the same tasks.
    assert set(first) == {t.id for t in stratified_sample(ts.part("heldout").tasks, 12, 3)}
    assert gate_sample(ts, "heldout", 12, 4) != first


def test_sample_zero_is_every_task_of_the_part_in_order():
    ts = load_taskset(POSTGRES)
    assert gate_sample(ts, "all", 0, 0) == [t.id for t in ts.tasks]
    assert gate_sample(ts, "dev", 0, 9) == [t.id for t in ts.tasks if t.part == "dev"]


def test_a_sample_naming_tasks_the_set_lost_is_an_error():
    ts = load_taskset(POSTGRES)
    assert set(tasks_of(ts, [ts.tasks[0].id])) >= {ts.tasks[0].id}
    with pytest.raises(GateError, match="task set changed under a running gate"):
        tasks_of(ts, [ts.tasks[0].id, "gone-42"])


# -- the budget's clock and the keys of submissions --------------------------------------------------


def test_the_gate_clock_starts_when_its_configmap_was_created():
    created = datetime(2026, 11, 26, 18, 0, tzinfo=UTC)
    later = created.timestamp() + 3000
    assert deadline_of(created, 3600, later) == created.timestamp() + 3600
    assert deadline_of(None, 3600, later) == later + 3600


def test_a_submission_key_is_per_run_and_task_and_fits_the_store():
    a = idempotency_key("f-gate-0123456789", "wal-01")
    assert a == idempotency_key("f-gate-0123456789", "wal-01")
    assert a != idempotency_key("f-gate-abcdefabcd", "wal-01") and a != idempotency_key("f-gate-0123456789", "wal-02")
    assert len(idempotency_key("x" * 253, "y" * 253)) <= 256


# -- a scored answer -------------------------------------------------------------------------------


def test_a_scored_answer_becomes_the_result_the_operator_reads():
    task = EvalTask(id="wal-01", question="What is the default of checkpoint_timeout?", kind="default", part="dev")
    outcome = Outcome(task_id="t1", status="done", answer="whatever", tokens=321, cost=Decimal("0.0000123"))
    r = gate_result("candidate", task, outcome)
    assert (r.task_id, r.version, r.tokens, r.cost, r.unanswerable) == ("wal-01", "candidate", 321, "0.0000123", False)
    decline = EvalTask(id="none-1", question="What does max_cluster_ram default to?", kind="unanswerable",
                       part="heldout", expect="decline")  # fmt: skip
    said = Outcome(status="done", answer="The documentation does not mention max_cluster_ram.", tokens=5)
    r = gate_result("current", decline, said)
    assert r.success is True and r.unanswerable is True and r.grounded is None and r.cost == "0"
    failed = gate_result("current", decline, Outcome(status="dead", reason="failed"))
    assert failed.success is False


def test_a_wrong_answer_to_a_shipped_question_fails():
    task = next(t for t in load_taskset(POSTGRES).tasks if t.expect == "answer")
    wrong = gate_result("current", task, Outcome(status="done", answer="I think it is 17 parsecs."))
    assert wrong.success is False


# -- the two runtime documents ---------------------------------------------------------------------


def _docs(tmp_path, current: str, candidate: str) -> SimpleNamespace:
    (tmp_path / "cur.yaml").write_text(yaml.safe_dump({"fleet": current}))
    (tmp_path / "cand.yaml").write_text(yaml.safe_dump({"fleet": candidate}))
    return SimpleNamespace(fleet="docs", current_config=str(tmp_path / "cur.yaml"),
                           candidate_config=str(tmp_path / "cand.yaml"))  # fmt: skip


def test_each_document_must_name_its_private_fleet(tmp_path):
    ok = load_versions(_docs(tmp_path, "docs~current", "docs~candidate"), env={})
    assert ok["current"].fleet == "docs~current" and ok["candidate"].fleet == "docs~candidate"
    with pytest.raises(GateError, match="--candidate-config .* names the fleet 'docs~current'"):
        load_versions(_docs(tmp_path, "docs~current", "docs~current"), env={})
    with pytest.raises(GateError, match="--current-config"):
        load_versions(_docs(tmp_path, "other", "docs~candidate"), env={})
    # The serving workers' own stream is no baseline: tenants' tasks queue there (issue 76, finding 2).
    with pytest.raises(GateError, match="--current-config .* names the fleet 'docs'"):
        load_versions(_docs(tmp_path, "docs", "docs~candidate"), env={})


def test_the_fleet_override_of_the_environment_never_merges_the_versions(tmp_path):
    got = load_versions(_docs(tmp_path, "docs~current", "docs~candidate"), env={"AGENTFLEET_FLEET": "docs",
                                                                        "AGENTFLEET_REDIS_PASSWORD": "pw"})  # fmt: skip
    assert got["candidate"].fleet == "docs~candidate" and got["candidate"].redis_password == "pw"


def test_a_missing_document_is_an_error_naming_the_flag(tmp_path):
    args = _docs(tmp_path, "docs~current", "docs~candidate")
    args.candidate_config = str(tmp_path / "nope.yaml")
    with pytest.raises(GateError, match="--candidate-config"):
        load_versions(args, env={})


# -- the gate's tenant ----------------------------------------------------------------------------


def test_no_token_maps_to_the_gates_tenant(caplog):
    line = f"{GATE_TENANT} sha256:" + "ab" * 32
    assert parse_tokens(line) == []
    assert "reserved for the evaluation gate" in caplog.text
    with pytest.raises(ValueError, match="reserved"):
        token_line(GATE_TENANT, "tok")


# -- the task sets the image ships -----------------------------------------------------------------


@pytest.mark.parametrize("name", SHIPPED_TASK_SETS)
def test_each_shipped_task_set_is_in_the_repository_and_the_image(name):
    source = ROOT / "e2e" / "eval" / f"{name}-tasks.yaml"
    assert load_taskset(source).name == name
    assert shipped_task_set(name) == f"/usr/share/agentfleet/eval/{name}-tasks.yaml"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY e2e/eval/*-tasks.yaml /usr/share/agentfleet/eval/" in dockerfile
    assert "COPY --from=build /usr/share/agentfleet /usr/share/agentfleet" in dockerfile


def test_a_task_id_longer_than_a_result_holds_is_an_error():
    ts = load_taskset(POSTGRES)
    with pytest.raises(GateError, match="longer than 253 characters"):
        tasks_of(ts, ["x" * 254])


# -- the run loop (fake sides and ConfigMap: the loop's own logic) -----------------------------------


class _Side:
    def __init__(self, version: str, tokens: int = 10) -> None:
        self.version, self.tokens, self.asked = version, tokens, []

    async def run(self, run, task, stop):
        self.asked.append(task.id)
        return GateTaskResult(task_id=task.id, version=self.version, success=True, tokens=self.tokens)


class _Results:
    name = "f-gate-1"

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail, self.added = fail, []

    async def add(self, data, resource_version=None):
        if self.fail:
            raise self.fail
        self.added.append(data)


def _runner(results, max_tokens=10**6, tokens=10):
    import time as _time

    from agentfleet_runtime.gate.run import Budget, Runner

    sides = {"current": _Side("current", tokens), "candidate": _Side("candidate", tokens)}
    return Runner(sides, results, "f-gate-1", Budget(_time.time() + 600, max_tokens), b"k"), sides


def _tasks(*ids):
    return {t: EvalTask(id=t, question=f"q {t}", kind="default", part="dev") for t in ids}


def test_the_run_writes_one_key_per_result_and_stops_on_the_token_budget():
    import asyncio

    results = _Results()
    runner, sides = _runner(results, max_tokens=20)
    asyncio.run(runner.run(_tasks("a", "b", "c"), pending(["a", "b", "c"], []), 1))
    # a's two results spend the 20 tokens: b and c are never asked.
    assert [list(d) for d in results.added] in ([["current.a"], ["candidate.a"]], [["candidate.a"], ["current.a"]])
    assert sides["current"].asked == ["a"] and sides["candidate"].asked == ["a"] and runner.spent == 20


def test_a_refused_write_stops_the_run_with_that_error():
    import asyncio

    from agentfleet_runtime.gate.results import KubeError

    runner, _ = _runner(_Results(fail=KubeError("refused")))
    with pytest.raises(KubeError, match="refused"):
        asyncio.run(runner.run(_tasks("a"), pending(["a"], []), 1))
