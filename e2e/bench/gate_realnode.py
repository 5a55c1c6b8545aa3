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
   deleted: the gate must resume (one GateStarted, the same startedAt, no result lost). Issue 76:
   ``--load`` tenant tasks keep the serving workers busy the whole gate (the gate's tasks run on
   private workers of both versions, so the verdict must not move), and forged results are
   written as anyone who may write ConfigMaps in the namespace could: a ConfigMap made first under
   the results' computable name (the gate must not adopt it: ResultsNotOwned, until this script
   deletes it as the condition says) and, once the gate's own exists, forged keys in it (the
   candidate flawless, the current version failing, without the gate's key: rejectedResults). The
   bad candidate must still be held;
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
import base64
import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentfleet_contract.agentfleet import AgentFleet
from agentfleet_contract.gate import GateTaskResult, verified_results

from agentfleet.gate import answer_hash
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
        """What the gate's Job wrote: only what verifies under the gate's key counts (issue 76), as
        the operator counts it; a forged object or forged keys read as nothing written."""
        name = f"{self.name}-gate-{candidate[:10]}"
        cm = self.c.run("-n", self.ns, "get", "configmap", name, "-o", "json", check=False)
        secret = self.c.run("-n", self.ns, "get", "secret", name, "-o", "json", check=False)
        if cm.returncode != 0:
            return None, []
        raw = (json.loads(secret.stdout).get("data") or {}).get("key") if secret.returncode == 0 else None
        got = verified_results(json.loads(cm.stdout).get("data"), base64.b64decode(raw) if raw else None, name)
        return got.sample, got.results

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
        # WATCH runs here too: the forged object under the results' name holds the Job until WATCH
        # deletes it, so no result is written before it does.
        def enough() -> bool:
            if watch is not None:
                watch()
            return len(g.results(candidate)[1]) >= kill_after

        g.wait(enough, timeout, f"{kill_after} results written")
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


def deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in patch.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def predicted_results(g: Gate, change: dict[str, Any]) -> str:
    """The results ConfigMap's name the gate of CHANGE will use, computed as anyone can: the answer
    hash (agentfleet.gate.answer_hash) of the changed spec with what its references resolve to, read
    from the API server (gating.resolved_refs's fields)."""
    obj = g.fleet()
    af = AgentFleet.model_validate({**obj, "spec": deep_merge(obj["spec"], change)})
    s = af.spec
    resolved = {"prompt": (s.system_prompt.inline if s.system_prompt is not None else None) or ""}
    for tier, ref in (("model", s.model_ref), ("routineModel", s.routine_model_ref)):
        if ref is not None:
            mspec = g.c.json("-n", g.ns, "get", "modelreplicaset", ref.name).get("spec") or {}
            resolved[tier] = json.dumps(
                {"model": mspec.get("model"), "adapters": mspec.get("adapters")}, sort_keys=True
            )
    if s.vector_index_ref is not None:
        vspec = g.c.json("-n", g.ns, "get", "vectorindex", s.vector_index_ref.name).get("spec") or {}
        resolved["index"] = json.dumps({k: vspec.get(k) for k in ("collection", "embedding")}, sort_keys=True)
    return f"{g.name}-gate-{answer_hash(s, resolved)[:10]}"


def forged_data(tasks: list[str]) -> dict[str, str]:
    """The candidate flawless, the current version failing every task, without the gate's key."""
    data = {"sample": json.dumps(tasks)}
    for t in tasks:
        for version, ok in (("current", False), ("candidate", True)):
            r = GateTaskResult(task_id=t, version=version, success=ok, grounded=ok, tokens=1)
            data[f"{version}.{t}"] = r.model_dump_json(by_alias=True)
    return data


# What each tenant task of --load asks. "queue": the review's 1 s ordinary tasks (a 1 s deadline:
# each ends at it, its answer-first call cut off), which keep the serving workers' queue full and
# the engines nearly free; "agent": whole agent tasks, which on this machine's two cores also fill
# the engines' queues, ahead of both versions' gate calls (2026-11-29: the gate's tasks timed out
# at their 600 s before reaching a model). maxTokens does not end a task before its first call:
# the token budget is checked between steps.
LOAD_BUDGETS = {"queue": {"timeoutSeconds": 1}, "agent": None}


class Load:
    """Tenant traffic on the serving workers for as long as it runs: N tasks in flight, each
    submitted again as it is accepted, through the task API (the review's 40 ordinary tasks)."""

    def __init__(self, api: str, token_file: str, n: int, kind: str = "agent") -> None:
        self.api, self.n, self.budgets = api.rstrip("/"), n, LOAD_BUDGETS[kind]
        lines = [
            ln.strip() for ln in Path(token_file).read_text().splitlines() if ln.strip() and not ln.startswith("#")
        ]
        self.token = lines[0] if lines else ""  # agentfleet eval's reading of --token-file
        self.stop = threading.Event()
        self.submitted = 0
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(n)]

    def _run(self, i: int) -> None:
        while not self.stop.is_set():
            task: dict[str, Any] = {"goal": f"List three settings that affect checkpoints (load {i})."}
            if self.budgets is not None:
                task["budgets"] = self.budgets
            body = json.dumps(task).encode()
            req = urllib.request.Request(f"{self.api}/v1/tasks", data=body, method="POST")
            req.add_header("Content-Type", "application/json")
            req.add_header("Authorization", f"Bearer {self.token}")
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - the user's API
                    tid = json.loads(resp.read())["id"]
                self.submitted += 1
                while not self.stop.wait(5):  # one task in flight per thread
                    with urllib.request.urlopen(  # noqa: S310
                        urllib.request.Request(
                            f"{self.api}/v1/tasks/{tid}", headers={"Authorization": f"Bearer {self.token}"}
                        ),
                        timeout=30,
                    ) as resp:
                        if json.loads(resp.read()).get("status") in ("done", "failed", "dead", "cancelled"):
                            break
            except Exception:  # noqa: BLE001 - a refused or slow submission: try again
                self.stop.wait(2)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()


def forge(g: Gate, change: dict[str, Any], timeout: float) -> tuple[Callable[[], None], Callable[[], None], dict]:
    """Before the change: a ConfigMap under the predicted results name (someone else's). Returns
    APPLY (the forged object, then the change) and WATCH (each poll: the forged object reported
    and deleted as the condition says, then forged keys in the gate's own ConfigMap), and what
    was seen."""
    seen: dict[str, Any] = {"predicted": predicted_results(g, change), "notOwnedSaid": False, "rejected": 0}
    name = seen["predicted"]
    say(f"  forging ConfigMap {name} before the gate starts")

    def apply() -> None:
        tasks = [f"forged-{i}" for i in range(4)]
        g.c.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": g.ns},
                   "data": forged_data(tasks)})  # fmt: skip
        g.patch(change)

    def watch() -> None:
        st = g.fleet().get("status") or {}
        cond = next((c for c in st.get("conditions") or [] if c["type"] == "EvaluationGate"), {})
        cm = (
            g.c.json("-n", g.ns, "get", "configmap", name)
            if g.c.run("-n", g.ns, "get", "configmap", name, check=False).returncode == 0
            else None
        )
        owned = bool(cm and (cm["metadata"].get("ownerReferences") or []))
        if cm is not None and not owned and cond.get("reason") == "ResultsNotOwned":
            seen["notOwnedSaid"] = True
            assert g.c.run("-n", g.ns, "get", "job", name, check=False).returncode != 0, "a Job feeds a forged object"
            say(f"  the gate refused {name}: {cond.get('message', '')[:120]}; deleting it as the condition says")
            g.c.run("-n", g.ns, "delete", "configmap", name)
        elif cm is not None and owned and not seen.get("forgedKeys"):
            sample = json.loads((cm.get("data") or {}).get("sample") or "[]") or [f"forged-{i}" for i in range(4)]
            body = {"data": {k: v for k, v in forged_data(sample).items() if k != "sample"}}
            g.c.run("-n", g.ns, "patch", "configmap", name, "--type=merge", "-p", json.dumps(body))
            seen["forgedKeys"] = len(body["data"])
            say(f"  {len(body['data'])} forged keys written into the gate's own {name}")
        seen["rejected"] = max(seen["rejected"], int((st.get("gate") or {}).get("rejectedResults") or 0))

    return apply, watch, seen


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
    p.add_argument(
        "--load",
        type=int,
        default=40,
        help="tenant tasks kept in flight on the serving workers during the breaking gate",
    )
    p.add_argument(
        "--load-kind",
        default="agent",
        choices=sorted(LOAD_BUDGETS),
        help="queue: tasks that end at their budget before a model call; agent: whole agent tasks",
    )
    p.add_argument("--no-forge", action="store_true", help="skip the forged results of the breaking gate")
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
        # The promoted evaluation judges it (issue 76: a change cannot bring its own sample or rule),
        # so its sample is --sample's; tasks without passages escalate and search until their budget.
        breaking = {"vectorIndexRef": {"name": EMPTY_INDEX}}
        apply, watch, forged = (None, None, {}) if args.no_forge else forge(g, breaking, args.timeout)
        with Load(args.api, args.token_file, args.load, args.load_kind) as load:
            record["breaking"] = run_gate(g, breaking, args.timeout, args.kill_after, apply=apply, watch=watch)
        record["breaking"]["load"] = {
            "threads": args.load,
            "kind": args.load_kind,
            "tenantTasksSubmitted": load.submitted,
        }
        record["breaking"]["forged"] = forged
        show("breaking change", record["breaking"])
        # Held, whatever the load and the forger did; the forged object refused and the keys rejected.
        assert record["breaking"]["phase"] == "Held", record["breaking"]["phase"]
        if forged:
            actual = f"{g.name}-gate-{record['breaking']['candidate'][:10]}"
            assert forged["predicted"] == actual, f"predicted {forged['predicted']}, the gate used {actual}"
            assert forged["notOwnedSaid"] and forged["rejected"] > 0, forged
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
