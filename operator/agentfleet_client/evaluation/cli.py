"""``agentfleet eval`` (also ``kubectl agentfleet eval``): score a fleet's agents on a task set.

    agentfleet eval e2e/eval/postgres-manual-tasks.yaml --part heldout \\
        --api http://127.0.0.1:8080 --token-file tokens [--fleet support -n agents]
    agentfleet eval TASKS --runtime-config runtime.yaml --compare retrieval.topK=3,8
    agentfleet eval TASKS --runtime-config runtime.yaml --compare decisions.repairAttempts=0 \
        --compare decisions.mode=ToolCalls       # an ablation: as configured, then each change alone
    agentfleet eval TASKS --api a=http://10.0.0.1:8080 --api b=http://10.0.0.2:8080 --token-file tokens

Every task goes through the task API with a bearer token, as users' tasks do. With the fleet's
runtime configuration (--runtime-config), two baselines run beside it on the same model and index
(``--baselines``): closed-book (the model alone) and one-shot RAG (one search with the question,
one call asked to cite), scored by the same code. The run prints a table per task and a summary
(one column per configuration or baseline, with deltas against the first, overall and per part
and kind; each later pass's task success against the first's on the same tasks, with its 95%
interval and McNemar p), writes ``report.json`` and ``report.png`` to --out, and, with --fleet, records the
summary in that AgentFleet's status.evaluation. Every finished task is appended to
``results.jsonl`` in --out as it ends; ``--resume`` reruns an interrupted run's command and skips
what it finished. ``--sample N`` runs a stratified (part, kind), seeded sample. Exit status: 0
when the run completed (whatever the scores), 2 for bad input, 1 when the task API could not be used.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from agentfleet_eval.sampling import stratified_sample
from agentfleet_eval.scoring import Outcome, TaskScore, score, summarize
from agentfleet_eval.taskset import EvalTask, TaskSet, TaskSetError, load_taskset

from agentfleet_client.evaluation import report
from agentfleet_client.evaluation.baselines import (
    NO_RETRIEVAL,
    BaselineError,
    BaselinePass,
    baseline_passes,
    parse_baselines,
    parse_rag_read_arounds,
    parse_rag_top_ks,
    run_baseline,
)
from agentfleet_client.evaluation.journal import FILE as JOURNAL
from agentfleet_client.evaluation.journal import Journal
from agentfleet_client.evaluation.runner import Progress, Target, TaskAPIError, judge, run_all
from agentfleet_client.evaluation.variants import Variant, VariantError, apply_variant, local_runtime, plan_variants

# One pass's tasks through whatever runs them (a task API, a baseline): (tasks, on_done) -> outcomes.
Execute = Callable[[Sequence[EvalTask], Callable[[EvalTask, Outcome], Any]], list[Outcome | None]]


def interleave_kinds(tasks: Sequence[EvalTask]) -> list[EvalTask]:
    """Tasks round-robin by kind (first of each kind, then the second of each...), stable within a kind."""
    by_kind: dict[str, list[EvalTask]] = {}
    for t in tasks:
        by_kind.setdefault(t.kind, []).append(t)
    out: list[EvalTask] = []
    for i in range(max((len(v) for v in by_kind.values()), default=0)):
        out += [v[i] for v in by_kind.values() if i < len(v)]
    return out


def build_parser(prog: str = "agentfleet eval") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("taskset", help="task set file (YAML or JSONL)")
    p.add_argument("--part", default="heldout", help="dev, heldout (default) or all")
    p.add_argument("--only", action="append", default=[], help="run only these task ids (repeatable)")
    p.add_argument("--limit", type=int, default=0, help="run only N tasks of the part, taken round-robin by kind")
    p.add_argument(
        "--sample", type=int, default=0, help="a stratified sample of N tasks: by (part, kind), each at least once"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of --sample (the same seed, set and N: the same tasks)")
    t = p.add_argument_group("target: a running fleet's task API, or local variants of its runtime")
    t.add_argument(
        "--api",
        action="append",
        default=[],
        help="task API URL, or NAME=URL; repeat to compare fleets (env AGENTFLEET_API_URL)",
    )
    t.add_argument(
        "--token-file",
        default=os.environ.get("AGENTFLEET_API_TOKEN_FILE"),
        help="file whose first line is a bearer token for the API(s)",
    )
    t.add_argument(
        "--runtime-config", help="the fleet's runtime configuration (its ConfigMap's runtime.yaml); needed by --compare"
    )
    t.add_argument(
        "--compare",
        action="append",
        default=[],
        help="KEY=V1,V2: run every value as a local variant of --runtime-config (e.g. retrieval.topK=3,8); repeated, "
        "or with one value, "
        "an ablation: the configuration as given first, then each change alone",
    )
    t.add_argument("--workers", type=int, default=1, help="worker processes per local variant")
    t.add_argument(
        "--baselines",
        default="closed-book,one-shot-rag",
        help="run beside the fleet on its model and index (needs --runtime-config): closed-book, one-shot-rag or none",
    )
    t.add_argument(
        "--rag-top-k",
        default="",
        help="passages of one-shot RAG (default: the tool's topK); several (3,5,8) sweep it, one pass each",
    )
    t.add_argument(
        "--rag-read-around",
        default="",
        help="neighbouring chunks a side joined to one-shot RAG's passages (default: the tool's readAround); "
        "several (0,1) sweep it, one pass each",
    )
    r = p.add_argument_group("run")
    r.add_argument("--concurrency", type=int, default=2, help="tasks in flight at once")
    r.add_argument(
        "--task-timeout",
        type=float,
        default=900.0,
        help="seconds before the harness cancels a task and scores it failed",
    )
    r.add_argument("--k", type=int, default=5, help="k of recall@k")
    r.add_argument(
        "--time-budget",
        type=float,
        default=0.0,
        help="seconds per configuration after which no new task is started (0: none); tasks run round-robin by kind",
    )
    r.add_argument("--out", default="eval-report", help="directory for report.json, report.png, results.jsonl")
    r.add_argument("--resume", action="store_true", help="continue the run journaled in --out")
    j = p.add_argument_group("judge model (optional; adds a score beside the others)")
    j.add_argument("--judge-url", help="OpenAI-compatible base URL (…/v1)")
    j.add_argument("--judge-model", default="judge")
    j.add_argument(
        "--judge-key-env", default="AGENTFLEET_JUDGE_API_KEY", help="environment variable holding the judge's API key"
    )
    k = p.add_argument_group("record the summary in an AgentFleet's status")
    k.add_argument("--fleet", help="AgentFleet name: its status.evaluation gets the (first configuration's) summary")
    k.add_argument("--namespace", "-n", default="default")
    k.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    return p


def _targets(args: argparse.Namespace, token: str) -> list[Target]:
    """The fleets' task APIs, each named by what it is: NAME as given (NAME=URL), else the fleet
    (``--namespace``/``--fleet`` for the first, ``fleet``, ``fleet-2``, ... without one), never the URL,
    which is only where a port-forward happened to put it."""
    apis = args.api or ([os.environ["AGENTFLEET_API_URL"]] if os.environ.get("AGENTFLEET_API_URL") else [])
    out = []
    for i, a in enumerate(apis):
        name, sep, url = a.partition("=")
        if not sep:
            name, url = unnamed_target(i, args.namespace, args.fleet), a
        if not url.startswith(("http://", "https://")):
            raise TaskSetError(f"--api {a!r}: give the task API's URL, e.g. http://127.0.0.1:8080 (or NAME=URL)")
        out.append(Target(name, url, token))
    return out


def unnamed_target(i: int, namespace: str, fleet: str | None) -> str:
    """The name of the ``i``-th task API given without one. Pure."""
    if i == 0 and fleet:
        return f"{namespace}/{fleet}"
    return "fleet" if i == 0 else f"fleet-{i + 1}"


def _pass(
    label: str, tasks: Sequence[EvalTask], args: argparse.Namespace, journal: Journal, execute: Execute
) -> tuple[list[TaskScore], float]:
    """One pass (a configuration or a baseline) over ``tasks``: the journal's finished outcomes
    are taken as they are, the rest run and are journaled as each ends. Returns the scores and
    the pass's wall time in seconds (of this invocation)."""
    key = os.environ.get(args.judge_key_env, "")
    kept = {t.id: o for t in tasks if (o := journal.finished(label, t.id)) is not None}
    todo = [t for t in tasks if t.id not in kept]
    progress = Progress(len(todo), label)
    if kept:
        print(f"{label}: {len(kept)} of {len(tasks)} tasks finished before ({journal.path})", file=sys.stderr)

    t0 = time.monotonic()

    def done(task: EvalTask, o: Outcome) -> bool:
        if o.status != "error":  # a harness failure is not an outcome: a resumed run tries again
            journal.add(label, task.id, o, time.monotonic() - t0)
        s = score(task, o, args.k)
        progress.tick(s.success)
        return s.success

    got = dict(zip((t.id for t in todo), execute(todo, done), strict=True)) if todo else {}
    wall = journal.earlier_seconds(label) + (time.monotonic() - t0 if todo else 0.0)
    ran = [(t, kept.get(t.id) or got.get(t.id)) for t in tasks]
    ran = [(t, o) for t, o in ran if o is not None]
    if len(ran) < len(tasks):
        print(
            (
                f"{label}: {len(tasks) - len(ran)} of {len(tasks)} tasks not started within --time-budget "
                f"{args.time_budget:.0f}s"
            ),
            file=sys.stderr,
        )
    if args.judge_url:
        ran = [(t, replace(o, judged=judge(args.judge_url, args.judge_model, key, t, o.answer))) for t, o in ran]
    scores = [score(t, o, args.k) for t, o in ran]
    if label in NO_RETRIEVAL:
        scores = [replace(s, recall=None) for s in scores]  # it never searches: no recall to report, not 0%
    return scores, wall


def _through_api(target: Target, args: argparse.Namespace, run_id: str) -> Execute:
    start_by = time.monotonic() + args.time_budget if args.time_budget else None
    settings = {"run_id": run_id, "concurrency": args.concurrency, "timeout": args.task_timeout, "start_by": start_by}
    return lambda tasks, done: run_all(target, tasks, on_done=done, **settings)


def _baseline(
    doc: dict[str, Any], baseline: str, top_k: int | None, read_around: int | None, args: argparse.Namespace
) -> Execute:
    settings = {
        "concurrency": args.concurrency,
        "top_k": top_k,
        "read_around": read_around,
        "timeout": args.task_timeout,
        "kubeconfig": args.kubeconfig,  # a modelRouting may find the replicas in the cluster
    }
    return lambda tasks, done: list(run_baseline(doc, baseline, tasks, on_done=done, **settings))


def _fleets_config(args: argparse.Namespace) -> dict[str, Any] | None:
    """The runtime configuration of --fleet (its ConfigMap), for the baselines when no
    --runtime-config is given; None, saying why, when there is none to read."""
    why = "they need the fleet's runtime configuration (--runtime-config, or --fleet to read its ConfigMap)"
    if args.fleet:
        from agentfleet_client.evaluation.record import fleet_runtime_config

        try:
            return fleet_runtime_config(args.fleet, args.namespace, args.kubeconfig)
        except Exception as e:  # noqa: BLE001 - the fleet's own run stands; say why it has no baselines
            why = f"could not read AgentFleet {args.namespace}/{args.fleet}'s runtime configuration: {e}"[:500]
    print(f"agentfleet eval: no baselines: {why}", file=sys.stderr)
    return None


def _select(taskset_tasks: Sequence[EvalTask], args: argparse.Namespace) -> list[EvalTask]:
    tasks = [t for t in taskset_tasks if not args.only or t.id in args.only]
    if args.sample:
        tasks = stratified_sample(tasks, args.sample, args.seed)
    if args.time_budget or args.limit or args.sample:
        tasks = interleave_kinds(tasks)  # a cut run still covers every kind
    if args.limit:
        tasks = tasks[: args.limit]
    return tasks


# One pass's results: (label, task scores, summary).
Run = tuple[str, list[Any], dict[str, Any]]


@dataclass(frozen=True)
class _Plan:
    """What the command line asks for, checked before anything runs."""

    taskset: TaskSet
    tasks: list[EvalTask]
    baselines: list[str]
    passes: list[BaselinePass]
    token: str
    targets: list[Target]
    variants: list[Variant]
    doc: dict[str, Any] | None
    outdir: Path
    journal: Journal | None


def _read_token(path: str | None) -> str:
    if not path:
        return ""
    lines = [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    return lines[0] if lines else ""


def _plan(args: argparse.Namespace) -> _Plan:
    """The run the flags ask for; TaskSetError (and the parsers' errors) for bad input."""
    taskset = load_taskset(args.taskset).part(args.part)
    if args.sample < 0 or args.limit < 0:
        raise TaskSetError("--sample and --limit take a positive number of tasks (0: all)")
    tasks = _select(taskset.tasks, args)
    if not tasks:
        raise TaskSetError(f"{taskset.name}: no tasks selected (check --part, --only, --limit, --sample)")
    baselines = parse_baselines(args.baselines)
    passes = baseline_passes(baselines, parse_rag_top_ks(args.rag_top_k), parse_rag_read_arounds(args.rag_read_around))
    token = _read_token(args.token_file)
    targets = _targets(args, token)
    variants = plan_variants(args.compare)
    if variants and not args.runtime_config:
        raise TaskSetError(
            "--compare needs --runtime-config: the fleet's runtime.yaml (kubectl get configmap FLEET-runtime "
            "-o jsonpath='{.data.runtime\\.yaml}')"
        )
    if variants and targets:
        raise TaskSetError("give --api (running fleets) or --compare (local variants of --runtime-config), not both")
    if not variants and not targets and not (args.runtime_config and baselines):
        raise TaskSetError(
            "no target: give --api URL (the fleet's task API), or --runtime-config with --compare or "
            "with --baselines alone (the baselines only)"
        )
    if targets and not token:
        raise TaskSetError("--token-file is required: the task API wants a bearer token")
    doc = yaml.safe_load(Path(args.runtime_config).read_text()) if args.runtime_config else None
    outdir = Path(args.out)
    journal = Journal.resume(outdir, taskset.name) if args.resume else None
    return _Plan(taskset, tasks, baselines, passes, token, targets, variants, doc, outdir, journal)


def _journal(plan: _Plan) -> Journal:
    """The resumed run's journal, or a fresh run's (replacing any journal left in --out)."""
    if plan.journal is not None:
        return plan.journal
    if (plan.outdir / JOURNAL).exists():
        print(f"agentfleet eval: a new run replaces {plan.outdir / JOURNAL} (--resume continues it)", file=sys.stderr)
    fresh = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + secrets.token_hex(2)
    return Journal.start(plan.outdir, fresh, plan.taskset.name)


def _run_passes(
    args: argparse.Namespace,
    plan: _Plan,
    journal: Journal,
    passes: list[BaselinePass],
    baseline_doc: dict[str, Any] | None,
    runs: list[Run],
) -> int:
    """Every pass, in order: each local variant or each task API, then the baselines; appends to
    ``runs``. Returns the exit status: 0, or 2 (a variant cannot start) or 1 (the task API failed)."""
    tasks, run_id = plan.tasks, journal.run_id

    def add(label: str, execute: Execute) -> None:
        scores, wall = _pass(label, tasks, args, journal, execute)
        summary = {**summarize(scores, args.k), **report.declines(scores), "wallSeconds": round(wall, 1)}
        summary["failureCauses"] = report.causes(scores)  # with the two kinds the cascade's loop adds
        balance = report.loop_balance(scores)
        if balance is not None:
            summary["loop"] = balance
        runs.append((label, scores, summary))

    try:
        if plan.variants:
            assert plan.doc is not None
            base = str(plan.doc.get("fleet") or "fleet")
            for i, v in enumerate(plan.variants):
                if all(journal.finished(v.label, t.id) for t in tasks):
                    add(v.label, lambda todo, done: [])  # resumed, and finished before: no runtime to start
                    continue
                with ExitStack() as stack:
                    try:
                        cfg = apply_variant(plan.doc, v, f"{base}-eval{i}-{run_id[-4:]}")
                        target = stack.enter_context(local_runtime(cfg, v.label, args.workers))
                    except (VariantError, ValueError) as e:
                        print(f"agentfleet eval: {e}", file=sys.stderr)
                        return 2
                    add(v.label, _through_api(target, args, run_id + f"-{i}"))
        else:
            for target in plan.targets:
                add(target.name, _through_api(target, args, run_id))
        for label, baseline, top_k, read_around in passes:
            assert baseline_doc is not None
            add(label, _baseline(baseline_doc, baseline, top_k, read_around, args))
    except TaskAPIError as e:
        print(f"agentfleet eval: {e}", file=sys.stderr)
        return 1
    return 0


def _report(
    out: Any, args: argparse.Namespace, plan: _Plan, runs: list[Run], labels: set[str], run_id: str, t0: float
) -> None:
    """The tables on stdout, report.json and report.png in --out."""
    taskset, tasks, outdir = plan.taskset, plan.tasks, plan.outdir
    for label, scores, _ in runs:
        out.write(f"\n== {label}\n")
        report.task_table(scores, out)
    ran = ", ".join(f"{lbl} {len(scores)}" for lbl, scores, _ in runs)
    out.write(f"\n== summary ({taskset.name}, {len(tasks)} tasks; run: {ran}; {time.monotonic() - t0:.0f}s)\n")
    report.summary_table([lbl for lbl, _, _ in runs], [s for _, _, s in runs], out)
    report.loop_table([(lbl, scores) for lbl, scores, _ in runs], out)
    report.paired_table([(lbl, scores) for lbl, scores, _ in runs], out, labels)
    out.write("\n== by part and kind (deltas against the first column)\n")
    report.kind_table([(lbl, scores) for lbl, scores, _ in runs], out, args.k)
    doc_out = {
        "taskSet": taskset.name,
        "runId": run_id,
        "k": args.k,
        "runs": [
            {
                "label": lbl,
                "summary": s,
                "byPartKind": report.by_part_kind(scores, args.k),
                "tasks": [report.task_record(x) for x in scores],
                # Each later pass against the first on the same tasks (the first has none).
                **({"paired": report.paired_record(runs[0][0], runs[0][1], scores)} if i else {}),
                # Each agent pass minus each baseline (the goals' unit).
                **(
                    {"pairedBaselines": [report.paired_record(b, bs, scores) for b, bs, _ in runs if b in labels]}
                    if labels and lbl not in labels
                    else {}
                ),
            }
            for i, (lbl, scores, s) in enumerate(runs)
        ],
    }
    report.write_json(outdir / "report.json", doc_out)
    why_no_png = report.write_png(outdir / "report.png", runs)
    out.write(
        f"\nreport: {outdir / 'report.json'}"
        + (f"; {why_no_png}" if why_no_png else f", {outdir / 'report.png'}")
        + "\n"
    )


def _record_in_status(out: Any, args: argparse.Namespace, plan: _Plan, runs: list[Run], labels: set[str]) -> int:
    """With --fleet: the first pass's summary in the AgentFleet's status.evaluation (1 when it cannot)."""
    if runs[0][0] in labels:
        print("agentfleet eval: nothing recorded in the AgentFleet's status: no agent pass ran", file=sys.stderr)
        return 0
    from agentfleet_client.evaluation.record import evaluation_summary, record

    label, _, summary = runs[0]
    ev = evaluation_summary(summary, plan.taskset.name, configuration=label if plan.variants else None)
    try:
        record(args.fleet, args.namespace, ev, args.kubeconfig)
        out.write(
            f"recorded in AgentFleet {args.namespace}/{args.fleet} status.evaluation (field manager agentfleet-eval)\n"
        )
    except Exception as e:  # noqa: BLE001 - the run's results stand; say why the record failed
        print(
            f"agentfleet eval: could not record the summary in AgentFleet {args.namespace}/{args.fleet}: {e}",
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv: Sequence[str] | None = None, prog: str = "agentfleet eval") -> int:
    """Plan the run from the flags, run every pass, report, and record the summary in the fleet."""
    args = build_parser(prog).parse_args(argv)
    out = sys.stdout
    try:
        plan = _plan(args)
    except (TaskSetError, VariantError, BaselineError, OSError, ValueError) as e:
        print(f"agentfleet eval: {e}", file=sys.stderr)
        return 2
    baseline_doc = plan.doc if plan.doc is not None else _fleets_config(args) if plan.baselines else None
    passes = [] if plan.baselines and baseline_doc is None else plan.passes
    labels = {label for label, *_ in passes}
    journal = _journal(plan)
    run_id = journal.run_id
    tasks = plan.tasks
    out.write(
        f"task set {plan.taskset.name}: {len(tasks)} tasks ({', '.join(sorted({t.kind for t in tasks}))}); "
        f"run {run_id}\n"
    )
    runs: list[Run] = []
    t0 = time.monotonic()
    status = _run_passes(args, plan, journal, passes, baseline_doc, runs)
    if status:
        return status
    _report(out, args, plan, runs, labels, run_id, t0)
    if args.fleet:
        return _record_in_status(out, args, plan, runs, labels)
    return 0
