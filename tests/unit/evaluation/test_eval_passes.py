"""A run's passes: the stratified sample, the journal a resumed run reads, the baselines' flags
and process wiring, and the side-by-side tables with deltas per part and kind."""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from agentfleet_eval.sampling import allocate, stratified_sample
from agentfleet_eval.scoring import Outcome, score
from agentfleet_eval.taskset import EvalTask, Fact

from agentfleet_client.evaluation import cli, report
from agentfleet_client.evaluation.baselines import (
    BaselineError,
    baseline_passes,
    oneshot_command,
    parse_baselines,
    parse_rag_read_arounds,
    parse_rag_top_ks,
    run_baseline,
)
from agentfleet_client.evaluation.journal import FILE, Journal, outcome_from, outcome_record


def task(tid: str, kind: str = "default", part: str = "dev", expect: str = "answer") -> EvalTask:
    facts = (Fact(texts=("replica",)),) if expect == "answer" else ()
    return EvalTask(
        id=tid,
        question=f"q {tid}",
        kind=kind,
        part=part,
        facts=facts,
        supporting=("a.html",) if facts else (),
        expect=expect,
    )


RIGHT = Outcome(
    task_id="t",
    status="done",
    reason="final_answer",
    answer="replica [source: a.html]",
    citations=("a.html",),
    retrieved=({"source": "a.html", "rank": 1, "text": "wal_level is replica"},),
    steps=2,
    model_calls=2,
    tool_calls={"search": 1},
    tokens=1000,
    cost=Decimal("0.0001"),
    latency_seconds=10.0,
)
WRONG = Outcome(
    task_id="t",
    status="done",
    reason="final_answer",
    answer="minimal",
    tokens=100,
    cost=Decimal("0.00001"),
    latency_seconds=2.0,
)
DECLINE = Outcome(
    task_id="t",
    status="done",
    reason="final_answer",
    answer="The documentation does not say.",
    tokens=50,
    latency_seconds=1.0,
)


# -- --sample ---------------------------------------------------------------------------------------
def test_allocation_is_proportional_with_every_stratum_at_least_once() -> None:
    sizes = {
        ("dev", "default"): 20,
        ("dev", "unanswerable"): 2,
        ("heldout", "default"): 10,
        ("heldout", "multi-hop"): 1,
    }
    got = allocate(sizes, 10)
    assert sum(got.values()) == 10 and all(v >= 1 for v in got.values())
    # quotas 6.06, 0.61, 3.03, 0.30: multi-hop's one seat comes from heldout/default (3 against 3.03,
    # further over its quota than dev/default's 6 against 6.06)
    assert got == {
        ("dev", "default"): 6,
        ("dev", "unanswerable"): 1,
        ("heldout", "default"): 2,
        ("heldout", "multi-hop"): 1,
    }
    assert allocate(sizes, 100) == sizes  # more than the set: all of it
    assert sum(allocate(sizes, 3).values()) == 3  # fewer than the strata: no floor of one each
    assert all(allocate(sizes, 3)[k] <= sizes[k] for k in sizes)


def test_largest_remainders_take_the_seats_left() -> None:
    # quotas 7 x 3/9 = 2.33 (a), 7 x 6/9 = 4.67 (b): the remaining seat goes to b's larger remainder
    assert allocate({("p", "a"): 3, ("p", "b"): 6}, 7) == {("p", "a"): 2, ("p", "b"): 5}
    # a floor of one for a tiny stratum is taken back from the one furthest over its quota
    assert allocate({("p", "a"): 1, ("p", "b"): 1, ("p", "c"): 98}, 3) == {("p", "a"): 1, ("p", "b"): 1, ("p", "c"): 1}
    assert allocate({("p", "a"): 10, ("p", "b"): 10}, 0) == {("p", "a"): 0, ("p", "b"): 0}


def test_a_sample_is_seeded_stratified_and_in_the_sets_order() -> None:
    tasks = [task(f"d{i}", "default") for i in range(12)] + [
        task(f"u{i}", "unanswerable", expect="decline") for i in range(4)
    ]
    tasks += [task(f"h{i}", "default", "heldout") for i in range(8)]
    a, b, c = (stratified_sample(tasks, 8, seed) for seed in (1, 1, 2))
    assert [t.id for t in a] == [t.id for t in b] and [t.id for t in a] != [t.id for t in c]
    assert Counter((t.part, t.kind) for t in a) == {
        ("dev", "default"): 4,
        ("dev", "unanswerable"): 1,
        ("heldout", "default"): 3,
    }
    order = [t.id for t in tasks]
    assert [t.id for t in a] == sorted((t.id for t in a), key=order.index)


# -- the journal ---------------------------------------------------------------------------------------
def test_an_outcome_survives_the_journal_exactly() -> None:
    back = outcome_from(json.loads(json.dumps(outcome_record(RIGHT))))
    assert back == RIGHT and isinstance(back.cost, Decimal) and isinstance(back.retrieved, tuple)
    assert outcome_from({"status": "done", "unknown": 1}) == Outcome(status="done")  # fields it lacks keep defaults


def test_a_resumed_journal_has_the_run_id_the_finished_tasks_and_the_earlier_wall_time(tmp_path: Path) -> None:
    j = Journal.start(tmp_path, "run-1", "pg#dev")
    j.add("agent", "a", RIGHT, 12.5)
    j.add("agent", "b", WRONG, 30.0)
    j.add("one-shot-rag", "a", DECLINE, 4.0)
    with (tmp_path / FILE).open("a") as f:
        f.write('{"pass": "agent", "task": "c", "outc')  # the line a killed run was writing
    again = Journal.resume(tmp_path, "pg#dev")
    assert again is not None and again.run_id == "run-1" and again.session != j.session
    assert again.finished("agent", "a") == RIGHT and again.finished("agent", "c") is None
    assert again.finished("one-shot-rag", "b") is None
    assert again.earlier_seconds("agent") == 30.0 and again.earlier_seconds("one-shot-rag") == 4.0
    again.add("agent", "c", WRONG, 5.0)
    third = Journal.resume(tmp_path, "pg#dev")
    assert third is not None and third.earlier_seconds("agent") == 35.0  # each invocation's time, added up
    assert Journal.resume(tmp_path / "none", "pg#dev") is None
    with pytest.raises(ValueError, match="a run of 'pg#dev', not 'pg#heldout'"):
        Journal.resume(tmp_path, "pg#heldout")


def args(**kw) -> argparse.Namespace:
    base = {"judge_key_env": "NONE", "judge_url": None, "k": 5, "time_budget": 0.0}
    return argparse.Namespace(**(base | kw))


def test_a_pass_runs_only_what_the_journal_lacks_and_journals_all_but_harness_errors(tmp_path: Path) -> None:
    tasks = [task("a"), task("b"), task("c")]
    j = Journal.start(tmp_path, "run-1", "pg")
    j.add("agent", "a", RIGHT, 3.0)
    asked: list[list[str]] = []

    def execute(todo, done):
        asked.append([t.id for t in todo])
        outs = [WRONG, Outcome(status="error", reason="HTTP 502")]
        for t, o in zip(todo, outs, strict=True):
            done(t, o)
        return outs

    scores, wall = cli._pass("agent", tasks, args(), j, execute)
    assert asked == [["b", "c"]] and [s.task.id for s in scores] == ["a", "b", "c"]
    assert [s.success for s in scores] == [True, False, False] and wall >= 0
    back = Journal.resume(tmp_path, "pg")
    assert back is not None and back.finished("agent", "b") == WRONG and back.finished("agent", "c") is None
    # all finished: nothing runs, and the wall time is the earlier invocations'
    assert cli._pass("agent", [task("a")], args(), back, lambda todo, done: pytest.fail("ran"))[1] == 3.0


def test_the_closed_book_pass_reports_no_recall_rather_than_zero(tmp_path: Path) -> None:
    j = Journal.start(tmp_path, "r", "pg")
    run = lambda todo, done: [WRONG for _ in todo]  # noqa: E731
    assert [s.recall for s in cli._pass("closed-book", [task("a")], args(), j, run)[0]] == [None]
    assert [s.recall for s in cli._pass("one-shot-rag", [task("a")], args(), j, run)[0]] == [0.0]


# -- the baselines ---------------------------------------------------------------------------------------
def test_baselines_flag() -> None:
    assert parse_baselines("closed-book,one-shot-rag") == ["closed-book", "one-shot-rag"]
    assert parse_baselines(" one-shot-rag , one-shot-rag") == ["one-shot-rag"] and parse_baselines("none") == []
    for bad in ("rag", "", "none,closed-book"):
        with pytest.raises(BaselineError, match="use closed-book, one-shot-rag"):
            parse_baselines(bad)


def test_the_baseline_process_is_the_runtimes_oneshot_with_the_fleets_config(tmp_path: Path) -> None:
    cmd = oneshot_command(tmp_path / "runtime.yaml", "one-shot-rag", 0, 8)
    assert cmd == [
        sys.executable,
        "-m",
        "agentfleet_runtime",
        "oneshot",
        "--config",
        str(tmp_path / "runtime.yaml"),
        "--mode",
        "rag",
        "--concurrency",
        "1",
        "--top-k",
        "8",
    ]
    assert oneshot_command(tmp_path / "r.yaml", "one-shot-rag", 1, None, 0)[-2:] == ["--read-around", "0"]
    assert oneshot_command(tmp_path / "r.yaml", "closed-book", 3, None)[-4:] == [
        "--mode",
        "closed-book",
        "--concurrency",
        "3",
    ]


def test_a_baseline_whose_process_answers_nothing_scores_each_task_as_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # A runtime configuration the runtime refuses: the process exits without an answer.
    seen: list[str] = []
    got = run_baseline(
        {"fleet": "x", "model": {"timeoutSeconds": "not a number"}},
        "closed-book",
        [task("a"), task("b")],
        on_done=lambda t, o: seen.append(t.id),
    )
    assert seen == [] and [o.status for o in got] == ["error", "error"]
    assert "the closed-book baseline gave no answer (exit 1" in got[0].reason and "oneshot.log" in got[0].reason
    assert run_baseline({}, "closed-book", []) == []


# -- the report -----------------------------------------------------------------------------------------
def test_declines_count_unanswerable_ones_declined_and_answerable_ones_refused() -> None:
    scores = [
        score(task("a"), RIGHT),
        score(task("b"), DECLINE),
        score(task("u", "none", expect="decline"), DECLINE),
        score(task("v", "none", expect="decline"), WRONG),
        score(task("x"), Outcome(status="timeout")),
    ]
    assert report.declines(scores) == {"declinedUnanswerable": 0.5, "declinedAnswerable": 0.5}
    assert report.declines(scores[:1]) == {"declinedUnanswerable": None, "declinedAnswerable": 0.0}


def test_the_kind_table_sets_the_passes_side_by_side_with_deltas_against_the_first() -> None:
    agent = [
        score(task("a", "default"), RIGHT),
        score(task("b", "default", "heldout"), WRONG),
        score(task("u", "unanswerable", expect="decline"), WRONG),
    ]
    rag = [
        score(task("a", "default"), WRONG),
        score(task("b", "default", "heldout"), RIGHT),
        score(task("u", "unanswerable", expect="decline"), DECLINE),
    ]
    out = io.StringIO()
    report.kind_table([("agent", agent), ("one-shot-rag", rag)], out, 5)
    lines = out.getvalue().splitlines()
    heads = [ln.split()[0] for ln in lines if not ln.startswith("  ")]
    assert heads == ["dev/default", "dev/unanswerable", "heldout/default"]
    rows = {(h, ln.split("  ")[1].strip()): ln.split() for h, block in _blocks(lines) for ln in block}
    assert rows[("dev/default", "success")][-3:] == ["100%", "0%", "-100pp"]
    assert rows[("heldout/default", "success")][-3:] == ["0%", "100%", "+100pp"]
    assert rows[("dev/unanswerable", "declined (unanswerable)")][-3:] == ["0%", "100%", "+100pp"]
    assert rows[("dev/default", "tokens per task")][-3:] == ["1000", "100", "-900"]
    assert rows[("dev/default", "latency p95 s")][-3:] == ["10.0", "2.0", "-8.00"]
    assert ("dev/unanswerable", "grounded (answerable)") not in rows  # no answerable task there: no row
    by = report.by_part_kind(rag, 5)
    assert (
        list(by) == ["dev/default", "dev/unanswerable", "heldout/default"]
        and by["heldout/default"]["tokensPerTask"] == 1000
    )


def _blocks(lines: list[str]):
    head, block = "", []
    for ln in lines:
        if ln.startswith("  "):
            block.append(ln)
        else:
            if head:
                yield head, block
            head, block = ln.split()[0], []
    yield head, block


def test_the_summary_has_declines_and_wall_time_with_deltas() -> None:
    out = io.StringIO()
    a = {
        "tasks": 2,
        "tokensPerTask": 4000.0,
        "declinedUnanswerable": 0.0,
        "wallSeconds": 600.0,
        "toolCalls": {},
        "endReasons": {},
        "failureCauses": {},
        "byKind": {},
        "tasksThatSearched": 0,
        "answersWithCitation": 0,
    }
    b = a | {"tokensPerTask": 600.0, "declinedUnanswerable": 0.5, "wallSeconds": 60.0}
    report.summary_table(["agent", "one-shot-rag"], [a, b], out)
    rows = {ln[:28].strip(): ln.split() for ln in out.getvalue().splitlines()}
    assert rows["tokens per task"][-3:] == ["4000", "600", "-3400"]
    assert rows["declined (unanswerable)"][-3:] == ["0%", "50%", "+50pp"]
    assert rows["wall time of the pass s"][-3:] == ["600", "60", "-540.00"]


def test_a_resumed_run_whose_passes_all_finished_starts_no_runtime_and_reports_every_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "tasks.yaml").write_text(
        "name: pg\ntasks:\n- {id: a, part: dev, kind: default, question: q, facts: [replica], supporting: [a.html]}\n"
    )
    (tmp_path / "runtime.yaml").write_text(json.dumps({"fleet": "f", "tools": [{"name": "kb", "type": "Retrieval"}]}))
    out = tmp_path / "out"
    j = Journal.start(out, "run-1", "pg#dev")
    for label in ("retrieval.topK=3", "retrieval.topK=8", "closed-book", "one-shot-rag"):
        j.add(label, "a", RIGHT if label != "closed-book" else WRONG, 2.0)
    monkeypatch.setattr(cli, "local_runtime", lambda *a, **k: pytest.fail("started a runtime"))
    monkeypatch.setattr(cli, "run_baseline", lambda *a, **k: pytest.fail("ran a baseline"))
    argv = [str(tmp_path / "tasks.yaml"), "--part", "dev", "--runtime-config", str(tmp_path / "runtime.yaml")]
    argv += ["--compare", "retrieval.topK=3,8", "--out", str(out), "--resume"]
    assert cli.main(argv) == 0
    doc = json.loads((out / "report.json").read_text())
    assert doc["runId"] == "run-1" and [r["label"] for r in doc["runs"]] == [
        "retrieval.topK=3",
        "retrieval.topK=8",
        "closed-book",
        "one-shot-rag",
    ]
    assert [r["summary"]["success"] for r in doc["runs"]] == [1.0, 1.0, 0.0, 1.0]
    assert [r["summary"]["wallSeconds"] for r in doc["runs"]] == [2.0, 2.0, 2.0, 2.0]
    assert "1 of 1 tasks finished before" in capsys.readouterr().err
    # Without --resume, a new run (here against a task API that refuses): it says it replaces the journal.
    (tmp_path / "tok").write_text("t\n")
    argv = [str(tmp_path / "tasks.yaml"), "--part", "dev", "--out", str(out), "--task-timeout", "1"]
    assert cli.main([*argv, "--api", "http://127.0.0.1:9", "--token-file", str(tmp_path / "tok")]) == 0
    err = capsys.readouterr().err
    assert f"a new run replaces {out / FILE} (--resume continues it)" in err and "no baselines: they need" in err
    assert json.loads((out / FILE).read_text().splitlines()[0])["runId"] != "run-1"
    assert cli.main([*argv, "--sample", "-1"]) == 2
    assert "--sample and --limit take a positive number" in capsys.readouterr().err


def test_without_a_runtime_config_the_baselines_read_the_fleets_configmap(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from agentfleet_client.evaluation import record

    doc = {"fleet": "support", "model": {"baseUrl": "http://m:8000/v1"}}
    assert record.runtime_config_in("support", {"data": {"runtime.yaml": json.dumps(doc)}}) == doc
    bad = [({"data": {}}, "ConfigMap support-runtime has no runtime.yaml")]
    bad.append(({"data": {"runtime.yaml": "- a"}}, "not a YAML"))
    for cm, why in bad:
        with pytest.raises(ValueError, match=why):
            record.runtime_config_in("support", cm)
    asked: list[tuple] = []
    monkeypatch.setattr(record, "fleet_runtime_config", lambda *a: asked.append(a) or doc)
    a = args(fleet="support", namespace="agents", kubeconfig="kc")
    assert cli._fleets_config(a) == doc and asked == [("support", "agents", "kc")]

    def refused(*a):
        raise RuntimeError("configmaps is forbidden")

    monkeypatch.setattr(record, "fleet_runtime_config", refused)
    assert cli._fleets_config(a) is None
    assert "no baselines: could not read AgentFleet agents/support's runtime configuration" in capsys.readouterr().err
    assert cli._fleets_config(args(fleet=None)) is None and "--fleet to read its ConfigMap" in capsys.readouterr().err


def test_rag_top_k_sweeps_one_pass_per_count_and_keeps_the_plain_label_for_one() -> None:
    assert parse_rag_top_ks("1") == [1]
    assert parse_rag_top_ks("") == [] and parse_rag_top_ks("8") == [8] and parse_rag_top_ks("3, 5,3,8") == [3, 5, 8]
    for bad in ("0", "3,-1", "five"):
        with pytest.raises(BaselineError, match="--rag-top-k"):
            parse_rag_top_ks(bad)
    both = ["closed-book", "one-shot-rag"]
    book = ("closed-book", "closed-book", None, None)
    assert baseline_passes(both, []) == [book, ("one-shot-rag", "one-shot-rag", None, None)]
    assert baseline_passes(both, [8]) == [book, ("one-shot-rag", "one-shot-rag", 8, None)]
    assert baseline_passes(both, [3, 8]) == [
        book,
        ("one-shot-rag@3", "one-shot-rag", 3, None),
        ("one-shot-rag@8", "one-shot-rag", 8, None),
    ]
    assert baseline_passes(["closed-book"], [3, 8]) == [book]


def test_rag_read_around_sweeps_beside_top_k_and_names_only_the_swept_knobs() -> None:
    assert parse_rag_read_arounds("") == [] and parse_rag_read_arounds("0, 1,0") == [0, 1]
    assert parse_rag_read_arounds("3") == [3]
    for bad in ("4", "-1", "one"):
        with pytest.raises(BaselineError, match="--rag-read-around"):
            parse_rag_read_arounds(bad)
    rag = ["one-shot-rag"]
    assert baseline_passes(rag, [], [1]) == [("one-shot-rag", "one-shot-rag", None, 1)]
    assert baseline_passes(rag, [], [0, 1]) == [
        ("one-shot-rag", "one-shot-rag", None, 0),
        ("one-shot-rag+around1", "one-shot-rag", None, 1),
    ]
    assert [p[0] for p in baseline_passes(rag, [3, 5], [0, 2])] == [
        "one-shot-rag@3",
        "one-shot-rag@3+around2",
        "one-shot-rag@5",
        "one-shot-rag@5+around2",
    ]


def test_the_baselines_alone_run_each_swept_k_and_pair_the_agent_with_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "tasks.yaml").write_text(
        "name: pg\ntasks:\n- {id: a, part: dev, kind: default, question: q, facts: [replica], supporting: [a.html]}\n"
    )
    (tmp_path / "runtime.yaml").write_text(json.dumps({"fleet": "f", "tools": [{"name": "kb", "type": "Retrieval"}]}))
    ran: list[tuple[str, int | None]] = []

    def fake(doc, label, tasks, *, top_k=None, on_done=None, **_):  # noqa: ANN001, ANN202 - the run_baseline shape
        ran.append((label, top_k))
        outs = [RIGHT if top_k == 8 else WRONG for _ in tasks]
        for t, o in zip(tasks, outs, strict=True):
            on_done(t, o)
        return outs

    monkeypatch.setattr(cli, "run_baseline", fake)
    monkeypatch.setattr(cli, "local_runtime", lambda *a, **k: pytest.fail("started a runtime"))
    out = tmp_path / "out"
    argv = [str(tmp_path / "tasks.yaml"), "--part", "dev", "--runtime-config", str(tmp_path / "runtime.yaml")]
    argv += ["--baselines", "one-shot-rag", "--rag-top-k", "3,8", "--out", str(out), "--fleet", "support"]
    assert cli.main(argv) == 0
    assert ran == [("one-shot-rag", 3), ("one-shot-rag", 8)]
    doc = json.loads((out / "report.json").read_text())
    got = [(r["label"], r["summary"]["success"]) for r in doc["runs"]]
    assert got == [("one-shot-rag@3", 0.0), ("one-shot-rag@8", 1.0)]
    assert all("pairedBaselines" not in r for r in doc["runs"])  # no agent pass to hold against them
    assert "nothing recorded in the AgentFleet's status" in capsys.readouterr().err
    # Without a runtime configuration there is nothing to run: a clear refusal.
    assert cli.main([str(tmp_path / "tasks.yaml"), "--part", "dev", "--baselines", "one-shot-rag"]) == 2
    assert "no target" in capsys.readouterr().err


def test_a_fleets_pass_is_named_by_the_fleet_never_by_its_forwarded_url(monkeypatch):
    """Issue 77: the fleet's pass was labelled http://127.0.0.1:PORT, the port of a port-forward, in its
    tables, report.json and the PNG. It is the fleet (namespace/name with --fleet), or NAME=URL's name."""
    monkeypatch.delenv("AGENTFLEET_API_URL", raising=False)

    def names(*argv: str) -> list[str]:
        args = cli.build_parser().parse_args(["tasks.yaml", *argv])
        return [t.name for t in cli._targets(args, "tok")]

    url = "http://127.0.0.1:43117"
    assert names("--api", url, "--fleet", "support", "-n", "team-a") == ["team-a/support"]
    assert names("--api", url, "--api", "http://127.0.0.1:43118") == ["fleet", "fleet-2"]
    assert names("--api", f"canary={url}") == ["canary"]
