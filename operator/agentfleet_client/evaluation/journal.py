"""The run's journal, ``results.jsonl`` in --out: every finished task's outcome, appended as it
ends, so ``agentfleet eval --resume`` picks an interrupted run up where it stopped.

The first line names the run (its id, the task set); each further line is one pass's (agent,
variant or baseline: its label) outcome of one task, with the invocation that ran it and the
seconds since that invocation began the pass, so a resumed pass's wall time adds up the time
each invocation spent on it. A resumed run keeps the run id, so a task
that was still running in the fleet when the harness stopped is found again by its
Idempotency-Key rather than submitted twice; tasks a pass already finished are not run again.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

from agentfleet_eval.scoring import Outcome

FILE = "results.jsonl"


def outcome_record(o: Outcome) -> dict[str, Any]:
    """An Outcome as JSON (the cost as a decimal string, exact). Pure."""
    d = dataclasses.asdict(o)
    d["cost"] = str(o.cost)
    return d


def outcome_from(d: dict[str, Any]) -> Outcome:
    """The Outcome a journal line holds; fields it lacks keep their defaults. Pure."""
    known = {f.name for f in dataclasses.fields(Outcome)}
    kw = {k: v for k, v in d.items() if k in known}
    for name in ("citations", "retrieved"):
        if name in kw:
            kw[name] = tuple(kw[name] or ())
    if "cost" in kw:
        kw["cost"] = Decimal(str(kw["cost"]))
    return Outcome(**kw)


class Journal:
    """Appends outcomes to ``path`` (thread-safe: passes report from their worker threads)."""

    def __init__(self, path: Path, run_id: str, task_set: str, done: dict[tuple[str, str], Outcome] | None = None):
        self.path, self.run_id, self.task_set = path, run_id, task_set
        self.done: dict[tuple[str, str], Outcome] = dict(done or {})
        self.session = secrets.token_hex(4)  # this invocation
        self.walls: dict[tuple[str, str], float] = {}  # (pass, invocation) -> seconds it spent on the pass
        self._lock = threading.Lock()

    @classmethod
    def start(cls, outdir: Path, run_id: str, task_set: str) -> Journal:
        """A new journal (an earlier one in ``outdir`` is replaced)."""
        outdir.mkdir(parents=True, exist_ok=True)
        path = outdir / FILE
        path.write_text(json.dumps({"runId": run_id, "taskSet": task_set}) + "\n")
        return cls(path, run_id, task_set)

    @classmethod
    def resume(cls, outdir: Path, task_set: str) -> Journal | None:
        """The journal in ``outdir`` with its finished outcomes; None when there is none. A
        journal of another task set is an error: its tasks would be scored against the wrong questions."""
        path = outdir / FILE
        if not path.exists():
            return None
        text = path.read_text()
        if text and not text.endswith("\n"):
            with path.open("a") as f:
                f.write("\n")  # the line a killed run was writing ends here: the next one starts afresh
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if not lines:
            return None
        head = json.loads(lines[0])
        if head.get("taskSet") != task_set:
            other = head.get("taskSet")
            raise ValueError(f"--resume: {path} is a run of {other!r}, not {task_set!r}; give another --out")
        journal = cls(path, str(head["runId"]), task_set)
        for ln in lines[1:]:
            try:
                rec = json.loads(ln)
            except ValueError:
                continue  # a line cut short when the run was killed: that task runs again
            journal.done[(rec["pass"], rec["task"])] = outcome_from(rec["outcome"])
            key = (rec["pass"], str(rec.get("session", "")))
            journal.walls[key] = max(journal.walls.get(key, 0.0), float(rec.get("seconds", 0.0)))
        return journal

    def finished(self, label: str, task_id: str) -> Outcome | None:
        return self.done.get((label, task_id))

    def earlier_seconds(self, label: str) -> float:
        """The wall time earlier invocations spent on a pass (each: until its last task ended)."""
        return sum(s for (lbl, session), s in self.walls.items() if lbl == label and session != self.session)

    def add(self, label: str, task_id: str, o: Outcome, seconds: float = 0.0) -> None:
        """One task's outcome, ``seconds`` after this invocation began the pass."""
        rec = {"pass": label, "task": task_id, "session": self.session, "seconds": round(seconds, 3)}
        line = json.dumps({**rec, "outcome": outcome_record(o)}, default=str)
        with self._lock:
            self.done[(label, task_id)] = o
            with self.path.open("a") as f:
                f.write(line + "\n")
