"""The baselines ``agentfleet eval`` runs beside the fleet: closed-book (the model alone) and
one-shot RAG (one search with the question itself, one call asked to cite), on the fleet's own
model and index.

They run as ``python -m agentfleet_runtime oneshot`` with the fleet's runtime configuration: the
runtime builds the model client, the retriever (collection, encoder) and the prices from it as a
worker does, so a baseline differs from the agents only in the loop. The operator's package and
the runtime never import each other (import-linter); like ``--compare``'s local variants, the
evaluation reaches the runtime's code through a process and reads back task-API-shaped views,
which ``runner.outcome_of`` turns into the Outcomes the one scoring code scores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from agentfleet_contract.agentfleet import READ_AROUND_MAX
from agentfleet_eval.scoring import Outcome
from agentfleet_eval.taskset import EvalTask

from agentfleet_client.evaluation.runner import outcome_of

# Label -> the oneshot mode. The labels are the passes' names in the report and the journal.
BASELINES = {"closed-book": "closed-book", "one-shot-rag": "rag"}
NO_RETRIEVAL = frozenset({"closed-book"})


class BaselineError(ValueError):
    """A --baselines value that names no baseline; the message lists them."""


def parse_baselines(spec: str) -> list[str]:
    """``closed-book,one-shot-rag`` (the default), one of them, or ``none``. Pure."""
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if names == ["none"]:
        return []
    bad = [n for n in names if n not in BASELINES]
    if bad or not names:
        raise BaselineError(f"--baselines {spec!r}: use {', '.join(BASELINES)} (comma-separated) or none")
    return list(dict.fromkeys(names))


def _counts(spec: str, low: int, high: int | None, refusal: str) -> list[int]:
    """A comma-separated sweep of counts within low..high, each once; BaselineError(refusal) else. Pure."""
    try:
        ns = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise BaselineError(refusal) from None
    if any(n < low or (high is not None and n > high) for n in ns):
        raise BaselineError(refusal)
    return list(dict.fromkeys(ns))


def parse_rag_top_ks(spec: str) -> list[int]:
    """``--rag-top-k``: "" (the tool's topK), one count, or several to sweep ("3,5,8"). Pure."""
    return _counts(spec, 1, None, f"--rag-top-k {spec!r}: passages per search, a positive count or several (3,5,8)")


def parse_rag_read_arounds(spec: str) -> list[int]:
    """``--rag-read-around``: "" (the tool's readAround), one count, or several to sweep ("0,1"). Pure."""
    why = f"--rag-read-around {spec!r}: neighbouring chunks a side, 0 to {READ_AROUND_MAX}, or several (0,1)"
    return _counts(spec, 0, READ_AROUND_MAX, why)


BaselinePass = tuple[str, str, int | None, int | None]  # label, baseline, top_k, read_around (None: the tool's)


def baseline_passes(
    baselines: Sequence[str], rag_top_ks: Sequence[int], rag_read_arounds: Sequence[int] = ()
) -> list[BaselinePass]:
    """(pass label, baseline, passages, neighbouring chunks) for each pass: one-shot RAG once per
    swept top_k and readAround, labelled ``one-shot-rag@K`` and ``+aroundN`` for the knobs swept
    (its best setting is then read from the run, not assumed); one value keeps the plain label. Pure."""
    out: list[BaselinePass] = []
    ks: Sequence[int | None] = rag_top_ks or [None]
    ns: Sequence[int | None] = rag_read_arounds or [None]
    for b in baselines:
        if b != "one-shot-rag":
            out.append((b, b, None, None))
            continue
        for k in ks:
            for n in ns:
                label = b + (f"@{k}" if len(ks) > 1 else "") + (f"+around{n}" if len(ns) > 1 and n else "")
                out.append((label, b, k, n))
    return out


def oneshot_command(
    config_path: Path, label: str, concurrency: int, top_k: int | None, read_around: int | None = None
) -> list[str]:
    cmd = [sys.executable, "-m", "agentfleet_runtime", "oneshot", "--config", str(config_path)]
    cmd += ["--mode", BASELINES[label], "--concurrency", str(max(1, concurrency))]
    cmd += ["--top-k", str(top_k)] if top_k else []
    return cmd + (["--read-around", str(read_around)] if read_around is not None else [])


def run_baseline(
    doc: dict[str, Any],
    label: str,
    tasks: Sequence[EvalTask],
    *,
    concurrency: int = 1,
    top_k: int | None = None,
    read_around: int | None = None,
    timeout: float = 900.0,
    on_done: Callable[[EvalTask, Outcome], Any] | None = None,
    kubeconfig: str | None = None,
) -> list[Outcome]:
    """Every task answered by the baseline, outcomes in the order of ``tasks``. A task the
    process never answered (it died, or ``timeout`` per task ran out) is an error outcome.
    ``kubeconfig``: for a ``modelRouting`` that finds the replicas through their EndpointSlices."""
    if not tasks:
        return []
    work = Path(tempfile.mkdtemp(prefix=f"agentfleet-eval-{label}-"))
    (work / "runtime.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    by_id = {t.id: t for t in tasks}
    got: dict[str, Outcome] = {}
    log_path = work / "oneshot.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(  # noqa: S603 - this interpreter, the runtime's module
            oneshot_command(work / "runtime.yaml", label, concurrency, top_k, read_around),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, **({"KUBECONFIG": kubeconfig} if kubeconfig else {})},
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("".join(json.dumps({"id": t.id, "question": t.question}) + "\n" for t in tasks))
        proc.stdin.close()
        # The whole pass may take as long as its tasks would one after another, and no longer.
        rounds = -(-len(tasks) // max(1, concurrency))
        killer = threading.Timer(timeout * rounds, proc.kill)
        killer.start()
        try:
            for line in proc.stdout:
                try:
                    view = json.loads(line)
                except ValueError:
                    continue
                task = by_id.get(str(view.get("id")))
                if task is None:
                    continue
                o = outcome_of([view])
                got[task.id] = o
                if on_done is not None:
                    on_done(task, o)
            proc.wait()
        finally:
            killer.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    why = f"the {label} baseline gave no answer (exit {proc.returncode}; its log: {log_path})"
    missing = Outcome(status="error", reason=why)
    return [got.get(t.id, missing) for t in tasks]
