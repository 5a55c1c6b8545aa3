"""The evaluation gate on the real node with a real model (issue 58, part 5): a neutral change
promoted, a breaking change held, the operator and the evaluation pod killed mid-gate, and
``agentfleet eval`` on the same tasks beside the gate's figures.

Needs a fleet on the real node with a real model and an evaluation corpus, as the demo starts it:

    python -m e2e.demo up --model qwen --corpus postgres --tasks 0 --namespace af-gate
    python -m e2e.bench.gate_realnode --namespace af-gate --api URL --token-file FILE

(the demo prints the task API's URL and its token file). Every pod runs on the node: the
operator (the chart), llama-server, the fleet's Redis, task API and workers, the candidate's
workers and the evaluation Job (the runtime image's ``python -m agentfleet_runtime gate``).

The scenarios, in order, on one fleet:
1. the gate turned on: the first version is adopted (nothing to compare it with);
2. neutral: one sentence added to the system prompt that asks for nothing new;
3. breaking: retrieval pointed at an empty VectorIndex (made here from the fleet's index's spec);
   once the Job has written ``--kill-after`` results, the operator's pod and the Job's pod are
   deleted: the gate must resume (one GateStarted, the same startedAt, no result lost);
4. the breaking change taken back: adopted at once (it is the serving version);
5. ``agentfleet eval`` through the task API on the gate's own sample, per task beside the gate's
   results for the same version;
6. model: the fleet's ModelReplicaSet switched to another model file on the same claim (by default
   the 1.5B's smaller sibling, Qwen2.5-Coder-0.5B): the set keeps its replicas on the promoted model
   and adds one canary replica of the new one; the fleet's gate runs its candidate against the
   canary; the set rolls on (every gate promoted) or drops the canary (held). Checked while it runs:
   no serving replica runs the new model before the decision. Then the change is taken back.

``--scenarios`` picks which of 2-6 run (1 always does); each scenario's record is written as it ends.

Prints each gate's decision, figures, wall time and tokens, and writes them to --out. The rule's
margin is wide (30 points by default) because a sample that fits this machine's time is small:
16 tasks at 2 discordant to 1 give a Newcombe low end of -27 points (see docs/evaluation-gate.md).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentfleet_contract.gate import GateTaskResult, results_in

from e2e.demo.driver import cluster_info
from e2e.eval.corpus import CORPORA
from e2e.harness.cluster import Cluster
from e2e.harness.poll import poll

GROUP = "agentfleet.io"
ENDED = ("Promoted", "Held", "Aborted")
NEUTRAL_SENTENCE = "Write the answer in plain sentences."
# The breaking change: retrieval pointed at an empty VectorIndex (the index's own spec, no source),
# as a re-built index that lost its documents would be. A prompt change would not do: the cascade's
# answer-first call is one-shot RAG's request, which does not carry the fleet's system prompt, so a
# prompt reaches only the tasks that escalate to the loop.
EMPTY_INDEX = "empty"


def say(msg: str = "") -> None:
    print(msg, flush=True)


class Gate:
    """The fleet under test and what the gate wrote about it."""

    def __init__(self, cluster: Cluster, ns: str) -> None:
        self.c, self.ns = cluster, ns
        fleets = cluster.json("-n", ns, "get", "agentfleets")["items"]
        if len(fleets) != 1:
            raise SystemExit(f"namespace {ns} must hold exactly one AgentFleet (it holds {len(fleets)})")
        self.name: str = fleets[0]["metadata"]["name"]

    def fleet(self) -> dict[str, Any]:
        return self.c.json("-n", self.ns, "get", "agentfleet", self.name)

    def gate(self) -> dict[str, Any]:
        return (self.fleet().get("status") or {}).get("gate") or {}

    def patch(self, spec: dict[str, Any]) -> None:
        self.c.run("-n", self.ns, "patch", "agentfleet", self.name, "--type=merge", "-p", json.dumps({"spec": spec}))

    def results(self, candidate: str) -> tuple[list[str] | None, list[GateTaskResult]]:
        cm = self.c.run(
            "-n", self.ns, "get", "configmap", f"{self.name}-gate-{candidate[:10]}", "-o", "json", check=False
        )
        if cm.returncode != 0:
            return None, []
        return results_in(json.loads(cm.stdout).get("data"))

    def events(self, reason: str) -> list[dict[str, Any]]:
        sel = f"involvedObject.name={self.name},reason={reason}"
        return self.c.json("-n", self.ns, "get", "events", "--field-selector", sel)["items"]

    def started(self) -> int:
        """GateStarted Events posted so far (an Event's count holds its repeats)."""
        return sum(int(e.get("count") or 1) for e in self.events("GateStarted"))

    def column(self) -> str:
        return self.c.run("-n", self.ns, "get", "agentfleet", self.name).stdout.strip()

    def pods(self, selector: str) -> list[str]:
        items = self.c.json("-n", self.ns, "get", "pods", "-l", selector)["items"]
        return [p["metadata"]["name"] for p in items if not p["metadata"].get("deletionTimestamp")]

    def wait(self, pred, timeout: float, desc: str, interval: float = 5):  # type: ignore[no-untyped-def]
        """The harness's one poll; a timeout says where the gate stood."""
        return poll(pred, timeout, desc, interval, last=lambda: json.dumps(self.gate()))


def run_gate(
    g: Gate,
    change: dict[str, Any],
    timeout: float,
    kill_after: int = 0,
    apply: Callable[[], None] | None = None,
    watch: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Apply CHANGE to the fleet (or call APPLY, a change elsewhere that the fleet's gate runs for),
    wait for its gate to end, calling WATCH at each poll; with KILL_AFTER, delete the operator's and
    the Job's pods once that many results are written. Returns what the gate reported. A gate already
    running for the same change (this script started again) is followed, not started twice; wall
    times are the gate's own (status.gate.figures.wallSeconds)."""
    was = g.gate()
    before = was.get("current")
    attached = was.get("phase") == "Running"
    starts_before = g.started() - (1 if attached else 0)
    t0 = time.monotonic()
    if apply is not None:
        apply()
    else:
        g.patch(change)
    running = g.wait(
        lambda: (s := g.gate()).get("phase") == "Running" and s.get("candidate") and s,
        120,
        "the gate to start",
        interval=2,
    )
    candidate, started_at = running["candidate"], running.get("startedAt")
    say(f"  gate running: candidate {candidate[:10]} against {str(before)[:10]}, started {started_at}")
    killed: dict[str, Any] = {}
    if kill_after:
        g.wait(lambda: len(g.results(candidate)[1]) >= kill_after, timeout, f"{kill_after} results written")
        written = len(g.results(candidate)[1])
        job = g.pods(f"job-name={g.name}-gate-{candidate[:10]}")
        operator = g.pods("app.kubernetes.io/component=operator")
        say(f"  {written} results written: deleting the operator's pod {operator} and the Job's pod {job}")
        g.c.run("-n", g.ns, "delete", "pod", *operator, *job, "--wait=false")
        killed = {"resultsWhenKilled": written, "operatorPods": operator, "jobPods": job, "at": time.monotonic() - t0}
    seen = 0
    last: dict[str, Any] = {}

    job_pods: set[str] = set()
    resumed = ""

    def ended() -> dict[str, Any] | None:
        nonlocal seen, last, resumed
        n = len(g.results(candidate)[1])
        assert n >= seen, f"results went from {seen} to {n}: a result was lost"
        seen = n
        if kill_after:  # read while the Job exists: it is deleted with the gate's end
            job_pods.update(g.pods(f"job-name={g.name}-gate-{candidate[:10]}"))
            log = g.c.run("-n", g.ns, "logs", f"job/{g.name}-gate-{candidate[:10]}", check=False).stdout
            resumed = next((line for line in log.splitlines() if '"gate starts"' in line), resumed)
        if watch is not None:
            watch()
        last = g.gate()
        return last if last.get("phase") in ENDED and last.get("candidate") == candidate else None

    done = g.wait(ended, timeout, "the gate's decision")
    wall = float((done.get("figures") or {}).get("wallSeconds") or time.monotonic() - t0)
    sample, results = g.results(candidate)
    out = {
        "candidate": candidate,
        "phase": done["phase"],
        "reason": done.get("reason"),
        "startedAt": started_at,
        "startedAtAfter": done.get("startedAt"),
        "figures": done.get("figures"),
        "wallSeconds": round(wall, 1),
        "sample": sample,
        "results": [r.model_dump(mode="json", by_alias=True) for r in results],
        "gateStartedEvents": g.started() - starts_before,
        "column": g.column(),
        **killed,
    }
    if kill_after:
        out["jobPods"] = sorted(job_pods)  # the deleted one and the one that resumed
        out["resumedJobStart"] = resumed  # the new pod's first line: what it found done and missing
        say(f"  the Job's pods: {sorted(job_pods)}; the resumed one began: {resumed[:200]}")
    return out


def show(title: str, r: dict[str, Any]) -> None:
    f = r.get("figures") or {}
    say(f"== {title}: {r['phase']} ({r.get('reason')}) after {r['wallSeconds']:.0f}s")
    for m in ("success", "grounded", "declines"):
        if v := f.get(m):
            say(f"  {m:9} {json.dumps(v)}")
    tasks = max(1, int(f.get("tasks") or 0))
    tokens = f.get("tokens") or 0
    say(f"  tasks {f.get('tasks')}, tokens {tokens} ({tokens / tasks:.0f} a task, both versions)")
    say(f"  cost basis {f.get('costBasis')}: {f.get('currentPerTask')} -> {f.get('candidatePerTask')} a task")
    say(f"  wall {r['wallSeconds'] / tasks:.0f}s a task sampled; GateStarted events {r['gateStartedEvents']}")
    say("  " + r["column"].replace("\n", "\n  "))


def run_eval(args: argparse.Namespace, g: Gate, sample: list[str], out: Path) -> dict[str, dict[str, Any]]:
    """agentfleet eval through the task API on exactly the gate's sample; per-task scores by id."""
    tasks = CORPORA[args.corpus].tasks
    cmd = [
        str(Path(sys.executable).with_name("agentfleet")),
        "eval",
        str(tasks),
        "--part",
        args.part,
        "--api",
        args.api,
    ]
    cmd += ["--token-file", args.token_file, "--baselines", "none", "--concurrency", str(args.concurrency)]
    cmd += ["--out", str(out)]
    for t in sample:
        cmd += ["--only", t]
    say(f"  {' '.join(cmd[:8])} ... ({len(sample)} --only)")
    subprocess.run(cmd, check=True, timeout=args.timeout)
    report = json.loads((out / "report.json").read_text())
    return {t["id"]: t for t in report["runs"][0]["tasks"]}


def empty_index(g: Gate, index: str) -> None:
    """A VectorIndex EMPTY_INDEX with INDEX's spec, its own collection and no source: Ready, 0 rows."""
    vi = g.c.json("-n", g.ns, "get", "vectorindex", index)
    spec = {k: v for k, v in vi["spec"].items() if k != "source"}
    meta = {"name": EMPTY_INDEX, "namespace": g.ns}
    body = {"apiVersion": vi["apiVersion"], "kind": "VectorIndex", "metadata": meta}
    g.c.apply({**body, "spec": {**spec, "collection": EMPTY_INDEX}})

    def ready() -> bool:
        st = g.c.json("-n", g.ns, "get", "vectorindex", EMPTY_INDEX).get("status") or {}
        return st.get("phase") == "Ready" and not st.get("rowCount")

    g.wait(ready, 300, f"VectorIndex {EMPTY_INDEX} Ready and empty")


class ModelSet:
    """The fleet's ModelReplicaSet under a model change: its spec, its canary, which model each of
    its live pods runs."""

    def __init__(self, g: Gate, name: str) -> None:
        self.g, self.name = g, name

    def obj(self) -> dict[str, Any]:
        return self.g.c.json("-n", self.g.ns, "get", "modelreplicaset", self.name)

    def canary(self) -> dict[str, Any]:
        return (self.obj().get("status") or {}).get("canary") or {}

    def set_model(self, model: str) -> None:
        body = {"spec": {"model": {"name": model}}}
        self.g.c.run("-n", self.g.ns, "patch", "modelreplicaset", self.name, "--type=merge", "-p", json.dumps(body))

    def pod_models(self, models: tuple[str, ...]) -> dict[str, tuple[str, str]]:
        """Live pod -> (its serving label, which of MODELS its containers' args name)."""
        sel = f"agentfleet.io/modelreplicaset={self.name}"
        out = {}
        for pod in self.g.c.json("-n", self.g.ns, "get", "pods", "-l", sel)["items"]:
            meta = pod["metadata"]
            if meta.get("deletionTimestamp") or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            args = " ".join(
                a for c in pod["spec"]["containers"] for a in [*(c.get("command") or []), *(c.get("args") or [])]
            )
            # the longest name first: one model file's name may be a prefix of another's
            named = next((m for m in sorted(models, key=len, reverse=True) if m in args), "?")
            out[meta["name"]] = ((meta.get("labels") or {}).get("agentfleet.io/serving", ""), named)
        return out

    def events(self, reason: str) -> int:
        sel = f"involvedObject.name={self.name},involvedObject.kind=ModelReplicaSet,reason={reason}"
        return sum(
            int(e.get("count") or 1)
            for e in self.g.c.json("-n", self.g.ns, "get", "events", "--field-selector", sel)["items"]
        )


def model_change(args: argparse.Namespace, g: Gate, spec: dict[str, Any]) -> dict[str, Any]:
    """Scenario 6: the ModelReplicaSet's model file changed to --model-file on the same claim, gated
    through the fleet; a serving pod on the new model before the decision is a failure."""
    ms = ModelSet(g, spec["modelRef"]["name"])
    old = ms.obj()["spec"]["model"]["name"]
    new = old.rsplit("/", 1)[0] + "/" + args.model_file
    if new == old:
        raise SystemExit(f"--model-file {args.model_file} is what the set serves already")
    files = (old.rsplit("/", 1)[1], args.model_file)
    say(f"  ModelReplicaSet {ms.name}: {old} -> {new}")
    leaks: list[dict[str, Any]] = []
    seen: dict[str, tuple[str, str]] = {}

    def watch() -> None:
        pods = ms.pod_models(files)
        seen.update(pods)
        leaked = {p: v for p, v in pods.items() if v[0] == "true" and v[1] == args.model_file}
        if leaked and (ms.canary().get("phase") == "Running"):
            leaks.append(leaked)

    r = run_gate(g, {}, args.timeout, apply=lambda: ms.set_model(new), watch=watch)
    canary = ms.canary()
    r["canary"] = {k: canary.get(k) for k in ("phase", "hash", "fleets", "startedAt", "finishedAt")}
    r["podsSeen"] = {p: {"serving": v[0], "model": v[1]} for p, v in sorted(seen.items())}
    r["servingOnNewModelBeforeDecision"] = leaks
    r["mrsEvents"] = {e: ms.events(e) for e in ("CanaryStarted", "CanaryPromoted", "CanaryHeld", "CanaryUnplaced")}
    say(f"  canary {canary.get('phase')}; pods seen {r['podsSeen']}; MRS events {r['mrsEvents']}")
    if leaks:
        say(f"  FAILED: serving pods on the new model before the decision: {leaks}")
    # Back to the old model: a held change goes back to what serves (nothing to try); a promoted
    # one would be a change of its own, gated again, so it is left for the user to see.
    if canary.get("phase") == "Held":
        ms.set_model(old)
        back = g.wait(lambda: (c := ms.canary()).get("phase") == "Serving" and c, 300, "the model change taken back")
        r["takenBack"] = {"phase": back.get("phase"), "pods": ms.pod_models(files)}
        say(f"  taken back: canary {back.get('phase')}, pods {r['takenBack']['pods']}")
    return r


def by_task(results: list[dict[str, Any]], version: str) -> dict[str, dict[str, Any]]:
    return {r["taskId"]: r for r in results if r["version"] == version}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m e2e.bench.gate_realnode", description=__doc__.split("\n\n")[0])
    p.add_argument("--namespace", "-n", required=True, help="the demo's namespace (one AgentFleet)")
    p.add_argument("--api", required=True, help="the fleet's task API URL (the demo prints it)")
    p.add_argument("--token-file", required=True, help="a token file of the task API (the demo prints it)")
    p.add_argument("--corpus", default="postgres", choices=sorted(CORPORA), help="the demo's corpus")
    p.add_argument("--part", default="heldout")
    p.add_argument("--sample", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--breaking-sample", type=int, default=8, help="the breaking change's sample")
    p.add_argument("--margin", type=int, default=30, help="maxSuccessDropPoints and maxGroundedDropPoints")
    p.add_argument("--concurrency", type=int, default=2)
    p.add_argument("--kill-after", type=int, default=6, help="results written before the pods are deleted")
    p.add_argument("--timeout", type=float, default=3000, help="seconds one gate may take")
    p.add_argument("--out", default="gate-realnode", help="directory for results.json and the eval's report")
    p.add_argument(
        "--scenarios",
        default="neutral,breaking,back,eval",
        help="which of neutral, breaking, back, eval, model run (in that order; back and eval need breaking "
        "and neutral)",
    )
    p.add_argument(
        "--model-file",
        default="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        help="the model scenario's new model file, on the set's model claim",
    )
    args = p.parse_args(argv)
    scenarios = set(args.scenarios.split(","))
    if unknown := scenarios - {"neutral", "breaking", "back", "eval", "model"}:
        p.error(f"--scenarios: unknown {sorted(unknown)}")
    if ("back" in scenarios and "breaking" not in scenarios) or (
        "eval" in scenarios and not {"neutral", "breaking"} <= scenarios
    ):
        p.error("--scenarios: back needs breaking; eval needs neutral and breaking")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    g = Gate(Cluster(cluster_info()), args.namespace)
    shipped = {"postgres": "postgres-manual", "python": "python-library"}[args.corpus]
    spec = g.fleet()["spec"]
    prompt = (spec.get("systemPrompt") or {}).get("inline")
    if not prompt:
        raise SystemExit("the fleet's systemPrompt must be inline (the demo's is)")
    record: dict[str, Any] = {"fleet": g.name, "namespace": g.ns, "args": vars(args), "prompt": prompt}

    evaluation = {
        "taskSet": {"shipped": shipped},
        "part": args.part,
        "sample": args.sample,
        "seed": args.seed,
        "concurrency": args.concurrency,
        "rule": {"maxSuccessDropPoints": args.margin, "maxGroundedDropPoints": args.margin, "maxCostRatio": "3"},
        "budget": {"timeoutSeconds": int(args.timeout), "maxTokens": 5_000_000},
    }
    say(f"== 1. the gate turned on for AgentFleet {g.name}: the first version is adopted")
    g.patch({"rollout": {"evaluation": evaluation}})
    adopted = g.wait(lambda: (s := g.gate()).get("phase") and s.get("current") and s, 120, "adoption")
    say(f"  serving {adopted['current'][:10]}")

    if "neutral" in scenarios:
        say(f"== 2. neutral: the prompt plus {NEUTRAL_SENTENCE!r}")
        base = prompt.rstrip().removesuffix(NEUTRAL_SENTENCE).rstrip()  # started again: the same change
        neutral_prompt = base + " " + NEUTRAL_SENTENCE + "\n"
        record["neutral"] = run_gate(g, {"systemPrompt": {"inline": neutral_prompt}}, args.timeout)
        show("neutral change", record["neutral"])
        (out / "results.json").write_text(json.dumps(record, indent=1))

    index = spec["vectorIndexRef"]["name"]
    if "breaking" in scenarios:
        say("== 3. breaking: retrieval from an empty index; the operator's and the Job's pods deleted mid-gate")
        empty_index(g, index)
        # Its own (smaller) sample, in the same patch: tasks without passages escalate to the loop and
        # search until their budget, minutes each on this machine's CPU.
        smaller = {"vectorIndexRef": {"name": EMPTY_INDEX}, "rollout": {"evaluation": {"sample": args.breaking_sample}}}
        record["breaking"] = run_gate(g, smaller, args.timeout, args.kill_after)
        show("breaking change", record["breaking"])
        (out / "results.json").write_text(json.dumps(record, indent=1))

    if "back" in scenarios:
        say("== 4. the breaking change taken back")
        serving = g.gate().get("current")
        g.patch({"vectorIndexRef": {"name": index}})
        back = g.wait(
            lambda: (s := g.gate()).get("phase") in ("Serving", "Promoted") and s.get("current") == serving and s,
            120,
            "the change taken back adopted",
        )
        record["takenBack"] = {"phase": back["phase"], "current": back.get("current")}
        say(f"  {back['phase']}, serving {str(back.get('current'))[:10]} (the neutral version)")

    if "eval" in scenarios:
        say("== 5. agentfleet eval through the task API on the gate's sample (the version both gates measured)")
        sample = record["neutral"]["sample"] or []
        evals = run_eval(args, g, sample, out / "eval")
        gate_cols = {
            "neutral gate, candidate": by_task(record["neutral"]["results"], "candidate"),
            "breaking gate, current": by_task(record["breaking"]["results"], "current"),
        }
        rows = []
        for t in sample:
            gates = {k: (v.get(t) or {}).get("success") for k, v in gate_cols.items()}
            rows.append({"task": t, "eval": (evals.get(t) or {}).get("success"), **gates})
        record["agreement"] = rows
        n = len(rows)
        say(f"  {'task':48} eval  " + "  ".join(gate_cols))
        for r in rows:
            say(f"  {r['task'][:48]:48} {str(r['eval']):5} " + "  ".join(f"{str(r[k]):22}" for k in gate_cols))
        for k in gate_cols:
            same = sum(1 for r in rows if r[k] is not None and r[k] == r["eval"])
            have = sum(1 for r in rows if r[k] is not None)
            say(
                f"  eval vs {k}: {same}/{have} tasks the same; success eval {sum(1 for r in rows if r['eval'])}/{n}, "
                f"gate {sum(1 for r in rows if r[k])}/{have}"
            )
        (out / "results.json").write_text(json.dumps(record, indent=1))

    if "model" in scenarios:  # with the sample of --sample
        say(f"== 6. model: ModelReplicaSet {spec['modelRef']['name']} to {args.model_file}, tried on a canary replica")
        record["model"] = model_change(args, g, spec)
        show("model change", record["model"])
        (out / "results.json").write_text(json.dumps(record, indent=1))
    say(f"== written {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
