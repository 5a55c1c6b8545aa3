"""The stored evaluation journals (docs/results/data) replayed through the runtime's answering code and
scored with the eval's scorer: the guard that a refactor of the answer policies changes no ending.

Two figures per journal record:
- **stored**: the record's outcome as it was run, scored now (``agentfleet_eval.scoring.score``).
- **replayed**, per policy and variant (``VARIANTS``): for each agent pass's task with first passages,
  the task is run again through ``TaskRun`` with the answer policy the variant names, the worker's own
  way of building it from a runtime configuration, over the record's own data: each search returns the
  record's passages of the next stored step, each tool-less call (the first answer, a reading again)
  returns the record's first answer, each loop decision answers with the record's final answer. The
  ending (its answer's digest, its reason, the calls made) and the ending's score are recorded.

The expected figures (``journal_replay.json``) were computed by this code at 54b65e7, before the
answering refactor of issue 77, and are regenerated only on purpose:

    .venv/bin/python -m tests.unit.runtime.journal_replay --write
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gzip
import hashlib
import json
import time
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from agentfleet_contract.runtime_config import RuntimeConfig
from agentfleet_eval.scoring import Outcome, score
from agentfleet_eval.taskset import EvalTask, load_taskset

from agentfleet_client.evaluation.journal import outcome_from
from agentfleet_runtime.answering.policies import policy_for
from agentfleet_runtime.core.budget import Prices, TreeUsage
from agentfleet_runtime.core.citations import parse_citations
from agentfleet_runtime.core.types import Limits, ModelReply, Observation, Status, TaskRecord, Usage
from agentfleet_runtime.loop.agent import LoopSettings, TaskRun
from agentfleet_runtime.loop.decisions import DecisionSettings
from agentfleet_runtime.model.prompt import tool_schema
from agentfleet_runtime.store.tasks import Acquired
from agentfleet_runtime.tools.retrieval import PARAMETERS as SEARCH_PARAMS
from agentfleet_runtime.tools.retrieval import format_passages
from tests.unit.runtime.loop_store import LoopStore

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "docs" / "results" / "data"
EXPECTED = Path(__file__).with_name("journal_replay.json")
TOOL = "search"

# Policy or variant -> (answerPolicy, the runtime configuration's ``answering``). The policies as shipped,
# and the variants they keep (docs/answer-policy.md). The variants that lost their pre-registered runs or
# replays left the code with their figures (issue 77): Loop+searchFirst, Cascade+prompt=Fleet,
# Cascade+prompt=Quote, Cascade+checkAnswerNames, Cascade+reread=Fleet,verifySearch,noLoop and
# Cascade+reread=Fleet,RankedThenReversed,noLoop.
VARIANTS: dict[str, tuple[str, dict[str, Any] | None]] = {
    "Loop": ("Loop", None),
    "OneShot": ("OneShot", None),
    "Cascade": ("Cascade", None),
    "Cascade+reread=Fleet,noLoop": ("Cascade", {"variant": "reread"}),
}
AGENT_PASSES = ("cand", "answering=", "http://")  # the passes the fleet ran (not one-shot RAG, not closed book)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@cache
def task_set(name: str) -> dict[str, EvalTask]:
    """A journal's task set (``postgres-manual-fresh-e#heldout``) by task id, every part."""
    base = name.partition("#")[0]
    return {t.id: t for t in load_taskset(ROOT / "e2e" / "eval" / f"{base}-tasks.yaml").tasks}


@cache
def system_prompt(name: str) -> str:
    """The evaluation fleet's inline system prompt (e2e/eval/<corpus>.yaml)."""
    corpus = "postgres-manual" if name.startswith("postgres-manual") else "python-library"
    docs = yaml.safe_load_all((ROOT / "e2e" / "eval" / f"{corpus}.yaml").read_text())
    fleet = next(d for d in docs if d and d.get("kind") == "AgentFleet")
    return fleet["spec"]["systemPrompt"]["inline"]


def journals() -> list[tuple[str, str, list[dict[str, Any]]]]:
    """(file name, task set, rows) per stored journal."""
    out = []
    for path in sorted(DATA.glob("*.results.jsonl.gz")):
        with gzip.open(path, "rt") as f:
            head, *rows = [json.loads(line) for line in f]
        out.append((path.name, head["taskSet"], [r for r in rows if "outcome" in r and "task" in r]))
    return out


def is_agent_pass(name: str) -> bool:
    return name.startswith(AGENT_PASSES)


def score_row(task: EvalTask, o: Outcome) -> str:
    """A score as two characters: success (1/0), grounded (1/0, - when not judged)."""
    s = score(task, o)
    return ("1" if s.success else "0") + {True: "1", False: "0", None: "-"}[s.grounded]


# -- the replay's fakes: the record's own data in place of the model, the tools and the store ---------------
class _Tools:
    """Each search answers with the record's passages of its next stored step, then with none."""

    names = [TOOL]
    spawners: frozenset[str] = frozenset()
    read_only = frozenset({TOOL})
    cite_sources: frozenset[str] = frozenset()

    def __init__(self, steps: list[list[dict[str, Any]]]) -> None:
        self.steps = list(steps)
        self.searches = 0

    def schemas(self):
        return [tool_schema(TOOL, "Searches the documents.", SEARCH_PARAMS)]

    def acts(self, calls):
        return False

    async def run_step(self, task, n, calls, deadline):
        out = []
        for c in calls:
            self.searches += 1
            passages = self.steps.pop(0) if self.steps else []
            out.append(Observation(c.id, c.name, True, format_passages(passages)))
        return out


class _Model:
    """A tool-less call answers with the record's first answer, a loop decision with its final answer."""

    def __init__(self, first: str, final: str) -> None:
        self.first, self.final, self.calls = first, final, 0

    async def complete(self, request):
        self.calls += 1
        if request.response_format is not None:
            content = json.dumps({"action": "answer", "answer": self.final, "sources": []})
        else:
            content = self.first
        return ModelReply(content=content, usage=Usage(100, 10, calls=1))


def settings_for(policy: str, answering: dict[str, Any] | None, prompt: str) -> LoopSettings:
    """The loop's settings as the worker builds them from a runtime configuration."""
    config = RuntimeConfig.model_validate(
        {"tools": [{"name": TOOL, "type": "Retrieval", "retrieval": {"answerPolicy": policy}}], "answering": answering}
    )
    return LoopSettings(prompt, decisions=DecisionSettings(mode="JSONSchema"), answering=policy_for(config))


def stored_steps(o: Outcome) -> list[list[dict[str, Any]]]:
    """The record's retrieved passages grouped by step, in step order."""
    by_step: dict[int, list[dict[str, Any]]] = {}
    for p in sorted(o.retrieved, key=lambda p: (p.get("step", 0), p.get("call", 0), p.get("rank", 0))):
        by_step.setdefault(int(p.get("step", 0)), []).append(
            {"rank": p.get("rank", 0), "source": p["source"], "score": p.get("score", 0.0), "text": p["text"]}
        )
    return [by_step[k] for k in sorted(by_step)]


async def replay_one(task: EvalTask, o: Outcome, settings: LoopSettings) -> tuple[Outcome, str]:
    """The record run again with ``settings``: the outcome it ends with, and a digest of its ending (the
    answer, the reason, the model calls and searches made, the first answer the final step records)."""
    now = time.time()
    limits = Limits()
    rec = TaskRecord(id=task.id, goal=task.question, status=Status.RUNNING, limits=limits, created_at=now,
                     deadline=now + 600, root=task.id)  # fmt: skip
    acquired = Acquired(record=rec, steps=[], root_limits=limits, root_deadline=rec.deadline, tree=TreeUsage())
    store, tools = LoopStore(), _Tools(stored_steps(o))
    model = _Model((o.first_answer or o.answer or "").strip(), (o.answer or "").strip())
    run = TaskRun(acquired, lease="L", msg_id="m", store=store, model=model, tools=tools, prices=Prices(),
                  settings=settings)  # fmt: skip
    await run.execute()
    answer = str(store.finished.get("answer", ""))
    final = store.finished.get("final_step")
    first = final.first_answer if final is not None else (run.steps[-1].first_answer if run.steps else "")
    ended = dataclasses.replace(o, answer=answer, citations=tuple(parse_citations(answer)))
    ending = [answer, store.finished.get("reason", ""), model.calls, tools.searches, first or ""]
    return ended, digest(json.dumps(ending))[:6]


def compute(
    variants: dict[str, tuple[str, dict[str, Any] | None]] = VARIANTS, only: str | None = None
) -> dict[str, Any]:
    """Per journal (``only``: that one): its records in order, their stored scores, and per variant
    each replayed record's ending digest and score, as ``"<digest><success><grounded>"``."""
    out: dict[str, Any] = {}

    async def replay_all() -> None:
        for name, set_name, rows in journals():
            if only is not None and name != only:
                continue
            tasks, prompt = task_set(set_name), system_prompt(set_name)
            got = out[name] = {"records": [], "stored": [], "replayed": {v: [] for v in variants}}
            for row in rows:
                task = tasks[row["task"]]
                o = outcome_from(row["outcome"])
                got["records"].append(f"{row['pass']}/{row['task']}")
                got["stored"].append(score_row(task, o))
                replayed = is_agent_pass(row["pass"]) and o.status == "done" and bool(o.retrieved)
                for variant, (policy, answering) in variants.items():
                    if not replayed:
                        got["replayed"][variant].append("")
                        continue
                    ended, ending = await replay_one(task, o, settings_for(policy, answering, prompt))
                    got["replayed"][variant].append(ending + score_row(task, ended))

    asyncio.run(replay_all())
    return out


def right(entries: list[str]) -> int:
    return sum(e[-2:-1] == "1" for e in entries if e)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help="write the expected figures (journal_replay.json)")
    args = ap.parse_args()
    t0 = time.monotonic()
    got = compute()
    print(f"computed in {time.monotonic() - t0:.1f}s")
    for variant in VARIANTS:
        entries = [e for j in got.values() for e in j["replayed"][variant] if e]
        print(f"{variant}: {len(entries)} tasks, right {right(entries)}")
    if args.write:
        lines = [f"{json.dumps(k)}: {json.dumps(got[k], sort_keys=True, separators=(',', ':'))}" for k in sorted(got)]
        EXPECTED.write_text("{\n" + ",\n".join(lines) + "\n}\n")


if __name__ == "__main__":
    main()
