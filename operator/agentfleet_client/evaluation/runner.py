"""Running a task set through a fleet's task API, as a user would: bearer token, POST, then GET.

Each task is submitted once (Idempotency-Key = run id + task id), polled until it ends, and read
back with its steps and the steps of every sub-agent (``children``, recursively): the passages the
tree retrieved, the tool calls it made and what it cost. An optional judge model (any OpenAI-
compatible endpoint) adds its own verdict beside the fact-based score, never instead of it.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TextIO

from agentfleet_eval.outcome import outcome_of as outcome_of  # where callers found it before agentfleet_eval
from agentfleet_eval.scoring import Outcome
from agentfleet_eval.taskset import EvalTask

TERMINAL = ("done", "cancelled", "dead")
POLL_SECONDS = 1.0


class TaskAPIError(RuntimeError):
    """The task API refused a request or could not be reached."""


@dataclass(frozen=True)
class Target:
    """One fleet's task API."""

    name: str
    url: str  # e.g. http://127.0.0.1:8080 (without /v1)
    token: str


def _request(
    target: Target,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(target.url.rstrip("/") + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", f"Bearer {target.token}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - the URL the user gave
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace")[:500]
        hint = " (check --token-file: the API wants one of its bearer tokens)" if e.code == 401 else ""
        raise TaskAPIError(f"{method} {path}: HTTP {e.code} {detail}{hint}") from e
    except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
        raise TaskAPIError(f"{method} {target.url}{path}: {getattr(e, 'reason', e)}") from e


def _tree(target: Target, root: dict[str, Any]) -> list[dict[str, Any]]:
    """The root task's view and every descendant's, read with their steps."""
    out, frontier, seen = [root], list(root.get("children") or []), {root["id"]}
    while frontier:
        tid = frontier.pop(0)
        if tid in seen:
            continue
        seen.add(tid)
        view = _request(target, "GET", f"/v1/tasks/{tid}")
        out.append(view)
        frontier += view.get("children") or []
    return out


def run_task(target: Target, task: EvalTask, run_id: str, timeout: float) -> Outcome:
    created = _request(
        target,
        "POST",
        "/v1/tasks",
        {"goal": task.question, "metadata": {"eval": run_id, "evalTask": task.id}},
        headers={"Idempotency-Key": f"eval-{run_id}-{task.id}"},
    )
    tid = created["id"]
    deadline = time.monotonic() + timeout
    while True:
        view = _request(target, "GET", f"/v1/tasks/{tid}?steps=0")
        if view.get("status") in TERMINAL:
            break
        if time.monotonic() > deadline:
            try:
                _request(target, "POST", f"/v1/tasks/{tid}/cancel", {})
            except TaskAPIError:
                pass
            return timed_out(target, tid, timeout)
        time.sleep(POLL_SECONDS)
    return outcome_of(_tree(target, _request(target, "GET", f"/v1/tasks/{tid}")))


def timed_out(target: Target, tid: str, timeout: float) -> Outcome:
    """A task the harness gave up on: a failure, with its latency at least the timeout and the
    tokens, cost, steps and passages it had used by then (read after the cancel; a step still in
    flight may add more). Zeros would flatter the pass: on the 2026-11-26 PostgreSQL run, 9 agent
    tasks the 300 s limit stopped counted no tokens against the agent."""
    try:
        spent = outcome_of(_tree(target, _request(target, "GET", f"/v1/tasks/{tid}")))
    except TaskAPIError:
        spent = Outcome(task_id=tid)
    return dataclasses.replace(
        spent,
        status="timeout",
        reason="harness_timeout",
        answer="",
        citations=(),
        error=f"no end within {timeout:.0f}s",
        latency_seconds=timeout,
    )


# --- judge -----------------------------------------------------------------------------------------


JUDGE_PROMPT = (
    "You grade answers against reference facts. Question: {question}\nReference facts: {facts}\nAnswer: {answer}\n"
    'Reply with one JSON object: {{"correct": true}} if the answer states the reference facts (or, when there are '
    "none, "
    'declines because the documentation does not answer the question), else {{"correct": false}}.'
)


def parse_verdict(text: str) -> bool | None:
    """The judge's verdict from its reply; None when it gave none we can read."""
    start, end = text.find("{"), text.rfind("}")
    if start >= 0 and end > start:
        try:
            v = json.loads(text[start : end + 1]).get("correct")
            if isinstance(v, bool):
                return v
        except (ValueError, AttributeError):
            pass
    low = text.strip().lower()
    if low.startswith(("yes", "correct", "true")):
        return True
    if low.startswith(("no", "incorrect", "false")):
        return False
    return None


def judge(url: str, model: str, api_key: str, task: EvalTask, answer: str, timeout: float = 120.0) -> bool | None:
    facts = "; ".join(f.describe() for f in task.facts) or "(none: the documentation does not answer this question)"
    body = {
        "model": model,
        "messages": [
            {"role": "user", "content": JUDGE_PROMPT.format(question=task.question, facts=facts, answer=answer)}
        ],
        "temperature": 0,
        "max_tokens": 32,
    }
    req = urllib.request.Request(url.rstrip("/") + "/chat/completions", data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    if api_key:
        req.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - the URL the user gave
            reply = json.loads(resp.read())
        return parse_verdict(reply["choices"][0]["message"].get("content") or "")
    except (urllib.error.URLError, TimeoutError, ValueError, KeyError, IndexError):
        return None


# --- a whole run -------------------------------------------------------------------------------------


class Progress:
    """A one-line progress bar on a terminal (plain lines when not a terminal)."""

    def __init__(self, total: int, label: str, out: TextIO | None = None) -> None:
        # sys.stderr as it is now, not as it was at import: a default bound at import kept a stream
        # that a test runner's capture had since closed (mutmut's clean run failed on it).
        out = out or sys.stderr
        self.total, self.label, self.out = total, label, out
        self.done = self.ok = 0
        self.t0 = time.monotonic()
        self.lock = threading.Lock()
        self.tty = out.isatty()

    def tick(self, ok: bool) -> None:
        with self.lock:
            self.done += 1
            self.ok += ok
            width = 30
            fill = width * self.done // max(1, self.total)
            line = (
                f"{self.label} [{'#' * fill}{'.' * (width - fill)}] {self.done}/{self.total} tasks  "
                f"{time.monotonic() - self.t0:6.1f}s  success {self.ok}/{self.done}"
            )
            self.out.write(("\r" + line) if self.tty else line + "\n")
            if self.tty and self.done == self.total:
                self.out.write("\n")
            self.out.flush()


def run_all(
    target: Target,
    tasks: Sequence[EvalTask],
    *,
    run_id: str,
    concurrency: int,
    timeout: float,
    on_done: Callable[[EvalTask, Outcome], bool] | None = None,
    start_by: float | None = None,
) -> list[Outcome | None]:
    """Every task through the API, ``concurrency`` at a time; outcomes in the order of ``tasks``.
    With ``start_by`` (a time.monotonic() value), tasks not started by then are not submitted
    (None): a run on a time budget reports the tasks it ran, and says how many it did not."""

    def one(task: EvalTask) -> Outcome | None:
        if start_by is not None and time.monotonic() > start_by:
            return None
        try:
            o = run_task(target, task, run_id, timeout)
        except TaskAPIError as e:
            o = Outcome(status="error", reason=str(e))
        if on_done is not None:
            on_done(task, o)
        return o

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        return list(pool.map(one, tasks))
