"""The second reading (`answering.reread`) of stored `agentfleet eval` runs, replayed on a live model
in both passage orders (`answering.rereadOrder`: Ranked and Reversed), each scored as the task would
have ended.

For each task of the cascade pass whose first answer (the journal's) fails the answer-first check
over its first passages (`answerfirst.plain_answer`), the second reading's request is sent again in
each order (`answerfirst.in_order`, `answerfirst.request_messages`' Fleet form: the fleet's system
prompt from the eval set's objects), and the reply is judged as the stage judges a second reading
with the loop off: it ends the task when it passes the check (declined when only pages not naming
the question hold its values, or, after a first decline, when it states what no passage holds);
otherwise the task ends held. The eval's scorer scores each ending.

The Ranked replay is the stage as the run ran it: how often it ends as the journal's task did says
how far the replay can be trusted. Tasks the verifying search ended (`verifiable`) are counted apart.

A replay is not a run: the first answers are the journal's. Only the sets a candidate may be tuned on
are read (the guard): never a held-out part or a set kept for a pre-registered test.

    python -m e2e.bench.reread_replay JOURNAL.jsonl[.gz] TASKSET.yaml FLEET.yaml --url URL [--url URL] [--pass cand]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gzip
import itertools
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import yaml
from agentfleet_eval.scoring import Outcome, TaskScore, score
from agentfleet_eval.taskset import EvalTask, load_taskset

from agentfleet_runtime.core.citations import parse_citations
from agentfleet_runtime.loop import answercheck
from agentfleet_runtime.loop.answerfirst import fleet_messages, in_order, plain_answer, verifiable
from agentfleet_runtime.tools.retrieval import parse_passages
from e2e.bench.verify_replay import opening_outputs, pass_outcomes

READ = ("Ranked", "Reversed")  # the readings replayed
ORDERS = (*READ, "RankedThenReversed")  # answering.rereadOrder's values: the third from the two
# The sets a candidate may be tuned on: the fresh sets of earlier tests and the dev parts. The held-out
# parts and the sets kept for a pre-registered test decide a candidate, so a replay never reads them.
BASE = {"postgres-manual", "python-library"}
TUNING = {f"{name}-fresh{suffix}" for name in BASE for suffix in ("", "-b", "-c", "-d", "-e")}

Ask = Callable[[list[dict[str, str]]], Awaitable[str]]  # messages -> the reply's text


class GuardError(ValueError):
    """The journal is of a set a candidate may not be tuned on."""


def guard(task_set: str) -> None:
    """Refuse a journal of any set but the tuning sets: the earlier fresh sets and the dev parts."""
    name, _, part = task_set.partition("#")
    if name in TUNING or (name in BASE and part == "dev"):
        return
    raise GuardError(
        f"{task_set!r} is not a set to tune on: replay the dev parts or the fresh to fresh-e sets, "
        "never a held-out part or a set kept for a pre-registered test"
    )


@dataclasses.dataclass(frozen=True)
class Ending:
    answer: str
    kind: str  # answered, declined-other, held-after-decline, own-decline, held
    declined: bool  # the reply said the passages do not answer (the stage's first_declined after it)
    score: TaskScore


@dataclasses.dataclass(frozen=True)
class Replayed:
    task: str
    stored: TaskScore
    verifiable: bool  # the verifying search may have ended the task before any second reading
    endings: dict[str, Ending]


def ending(
    task: EvalTask, reply: str, seen: list[str], first_declined: bool, subject: str, hold: bool | None = None
) -> tuple[str, str, bool]:
    """How a reading again with the loop off ends the task: (answer, kind, whether the reply declined).
    ``first_declined``: the first
    answer declined; ``hold``: an earlier reading declined, so what no passage holds is held (unset:
    ``first_declined``). Pure."""
    hold = first_declined if hold is None else hold
    shown = [(p["source"], p["text"]) for out in seen for p in parse_passages(out)]
    numbered = answercheck.passage_numbers(seen, "Fleet")
    answer, why = plain_answer(reply, seen, shown, task.question, False, numbered)
    declined = why == answercheck.ANSWER_FIRST_UNANSWERED
    if why is None:
        other = answercheck.other_subject(answer, shown, task.question, subject)
        if other:
            return answercheck.decline_other(other), "declined-other", declined
        if (
            hold
            and not answercheck.says_unanswered(answer)
            and answercheck.unsupported_claims(answer, seen, task.question)
        ):
            return answercheck.DECLINE, "held-after-decline", declined
        return answer, "answered", declined
    if reply.strip() and answercheck.says_unanswered(reply) and not first_declined:
        return answercheck.tidy_citations(reply), "own-decline", declined
    return answercheck.DECLINE, "held", declined


async def replay_one(task: EvalTask, o: Outcome, ask: Ask, subject: str) -> Replayed | None:
    """One task: None when its first answer passes the check (no second reading), else each order's ending."""
    seen = opening_outputs(o)
    first = (o.first_answer or "").strip()
    if not first or not seen:
        return None
    shown = [(p["source"], p["text"]) for out in seen for p in parse_passages(out)]
    answer, why = plain_answer(first, seen, shown, task.question, False, answercheck.passage_numbers(seen, "OneShot"))
    if why is None:
        return None
    declined = why == answercheck.ANSWER_FIRST_UNANSWERED

    async def one(order: str) -> tuple[str, list[str]]:
        ordered = in_order(seen, order)
        return await ask(fleet_messages(subject, ordered, task.question)), ordered

    def ended(reply: str, ordered: list[str], hold: bool) -> Ending:
        answer, kind, said = ending(task, reply, ordered, declined, subject, hold)
        ended_as = dataclasses.replace(o, answer=answer, citations=tuple(parse_citations(answer)))
        return Ending(answer, kind, said, score(task, ended_as))

    (ranked, ranked_seen), (reversed_, reversed_seen) = await asyncio.gather(*(one(order) for order in READ))
    by_order = {"Ranked": ended(ranked, ranked_seen, declined), "Reversed": ended(reversed_, reversed_seen, declined)}
    # RankedThenReversed: the Ranked reading's ending when it ended the task, else the reversed reading's,
    # held after a decline when either earlier reading declined (the stage's run.first_declined).
    if by_order["Ranked"].kind in ("answered", "declined-other"):
        by_order["RankedThenReversed"] = by_order["Ranked"]
    else:
        by_order["RankedThenReversed"] = ended(reversed_, reversed_seen, declined or by_order["Ranked"].declined)
    return Replayed(task.id, score(task, o), verifiable(answer, why, seen, task.question), by_order)


def summary(rows: list[Replayed]) -> list[str]:
    """The replay's lines: each order's right endings, what each won and lost against Ranked (the stage
    as the runs ran it), and how often the Ranked replay ends as the run did."""
    read = [r for r in rows if not r.verifiable]

    def right(r: Replayed, order: str) -> bool:
        return r.endings[order].score.success

    grounded = {o: sum(bool(r.endings[o].score.grounded) for r in read if right(r, o)) for o in ORDERS}
    same = sum(right(r, "Ranked") == r.stored.success for r in read)
    lines = [
        f"read again {len(read)} (and {len(rows) - len(read)} the verifying search may have ended): "
        + ", ".join(f"{o} right {sum(right(r, o) for r in read)} (grounded {grounded[o]})" for o in ORDERS),
    ]
    for o in ORDERS[1:]:
        won = [r.task for r in read if right(r, o) and not right(r, "Ranked")]
        lost = [r.task for r in read if right(r, "Ranked") and not right(r, o)]
        lines.append(f"{o} won {len(won)} {won}, lost {len(lost)} {lost}")
    lines += [
        f"the Ranked replay ends as the run did on {same} of {len(read)}",
        "endings: "
        + "; ".join(
            f"{o} " + ", ".join(f"{k} {n}" for k, n in sorted(Counter(r.endings[o].kind for r in read).items()))
            for o in ORDERS
        ),
    ]
    return lines


def task_set_of(path: Path) -> str:
    """The journal's task set, from its head line."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rt") as f:
        return str(json.loads(f.readline()).get("taskSet", ""))


def fleet_prompt(objects: Path) -> str:
    """The eval set's AgentFleet's inline system prompt (e2e/eval/<corpus>.yaml)."""
    fleet = next(d for d in yaml.safe_load_all(objects.read_text()) if d and d.get("kind") == "AgentFleet")
    return fleet["spec"]["systemPrompt"]["inline"]


async def _replay(args: argparse.Namespace) -> list[Replayed]:
    import aiohttp

    guard(task_set_of(args.journal))
    outcomes = pass_outcomes(args.journal, args.pass_name)
    tasks = {t.id: t for t in load_taskset(args.taskset).tasks}
    subject = fleet_prompt(args.fleet)
    turn = itertools.count()
    async with aiohttp.ClientSession() as session:

        async def ask(messages: list[dict[str, str]]) -> str:
            url = args.url[next(turn) % len(args.url)]  # the orders side by side, one replica each
            body = {"model": args.model, "messages": messages, "max_tokens": 1024, "temperature": 0.0}
            async with session.post(f"{url}/chat/completions", json=body) as resp:
                resp.raise_for_status()
                return (await resp.json())["choices"][0]["message"]["content"] or ""

        rows = [await replay_one(tasks[tid], o, ask, subject) for tid, o in outcomes.items() if tid in tasks]
    return [r for r in rows if r is not None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("journal", type=Path)
    ap.add_argument("taskset", type=Path)
    ap.add_argument("fleet", type=Path, help="the eval set's objects (e2e/eval/<corpus>.yaml): the fleet's prompt")
    ap.add_argument("--url", action="append", required=True, help="an OpenAI-compatible /v1 base URL; repeat")
    ap.add_argument("--pass", dest="pass_name", default="cand", help="the cascade pass's label in the journal")
    ap.add_argument("--model", default="qwen")
    args = ap.parse_args()
    for line in summary(asyncio.run(_replay(args))):
        print(line)


if __name__ == "__main__":
    main()
