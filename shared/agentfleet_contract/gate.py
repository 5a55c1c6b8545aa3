"""The evaluation gate's records: one task's result for one version (what the evaluation Job
writes, the operator reads), the results ConfigMap's layout, and the figures a decision reports in
status. docs/evaluation-gate.md."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, ValidationError

from agentfleet_contract.common import DECIMAL, Model

Version = Literal["current", "candidate"]
Reason = Literal[
    "Passed",
    "SuccessDropped",
    "GroundingDropped",
    "DeclinesDropped",
    "CostRose",
    "BudgetExhausted",
    "NoTasks",
    "Overridden",
]


class GateTaskResult(Model):
    """One task of the gate's sample answered by one version and scored by agentfleet eval's scorer."""

    task_id: str = Field(max_length=253, description="The task's id in its task set.")
    version: Version = Field(description="Which version answered: current or candidate.")
    success: bool = Field(description="The answer states every expected fact (or declines an unanswerable question).")
    grounded: bool | None = Field(
        default=None, description="Citations name retrieved passages stating the facts; unset for unanswerable ones."
    )
    unanswerable: bool = Field(default=False, description="The question expects a decline.")
    tokens: int = Field(default=0, ge=0, description="Tokens of the task and its sub-agents.")
    cost: str = Field(
        default="0", max_length=32, pattern=DECIMAL, description="Cost of the task in the pricing currency."
    )
    not_run: bool = Field(
        default=False,
        description="The task never reached a model, twice: it is left out of every comparison, not scored as a "
        "failure.",
    )
    mac: str | None = Field(
        default=None,
        max_length=64,
        description="HMAC-SHA256 of the result under the gate's key: the Job signs it, the operator counts it only "
        "if it verifies.",
    )


class GateMeasure(Model):
    """A measure compared task by task: candidate minus current on the tasks both versions scored."""

    tasks: int = Field(ge=0, description="Tasks both versions scored on this measure.")
    current: float = Field(ge=0, le=1, description="The current version's rate.")
    candidate: float = Field(ge=0, le=1, description="The candidate's rate.")
    delta: float = Field(ge=-1, le=1, description="Candidate minus current.")
    low: float = Field(ge=-1, le=1, description="Low end of the paired 95% interval of the delta (Newcombe).")
    high: float = Field(ge=-1, le=1, description="High end of that interval.")
    p: float = Field(ge=0, le=1, description="Exact McNemar p-value of no difference.")
    max_drop_points: int | None = Field(default=None, description="The rule's limit; unset when not checked.")
    passed: bool = Field(description="The interval's low end is at or above minus the limit (or not checked).")


class GateFigures(Model):
    """What a gate measured, as status and the Event report it."""

    tasks: int = Field(ge=0, description="Tasks of the sample both versions finished.")
    success: GateMeasure | None = Field(default=None, description="Task success.")
    grounded: GateMeasure | None = Field(
        default=None, description="Answerable tasks whose answers are grounded in their citations."
    )
    declines: GateMeasure | None = Field(default=None, description="Unanswerable questions declined.")
    cost_basis: Literal["cost", "tokens"] = Field(
        default="cost", description="What the cost ratio compares: cost, or tokens when the fleet has no prices."
    )
    current_per_task: float = Field(default=0, ge=0, description="The current version's mean cost (or tokens) a task.")
    candidate_per_task: float = Field(default=0, ge=0, description="The candidate's mean cost (or tokens) a task.")
    cost_ratio: float | None = Field(default=None, ge=0, description="Candidate per task over current per task.")
    tokens: int = Field(default=0, ge=0, description="Tokens both versions spent on the gate.")
    not_run: int = Field(default=0, ge=0, description="Tasks left out because one version's run never reached a model.")
    wall_seconds: float = Field(default=0, ge=0, description="Wall time of the gate so far.")


# -- the results ConfigMap: what the Job writes and the operator reads (docs/evaluation-gate.md) ----

# The candidate's fleet name in its runtime document is FLEET + this: its own Redis keys and stream.
CANDIDATE_FLEET_SUFFIX = "~candidate"
# The current version's, on the gate's own private workers (its baseline): FLEET + this. Tenants'
# tasks on the serving workers never queue ahead of a gate task, so load does not decide the gate.
BASELINE_FLEET_SUFFIX = "~current"
# The key holding the sampled task ids (a JSON list), written once before any task runs.
SAMPLE_KEY = "sample"
# The sample's HMAC under the gate's key (the results carry theirs in GateTaskResult.mac).
SAMPLE_MAC_KEY = "sample.mac"
# The key holding what judged (JSON: the task set's and the scorer's SHA-256), signed like a result.
JUDGE_KEY = "judge"
JUDGE_MAC_KEY = "judge.mac"
# The gate's key: a Secret of this key, named like the results ConfigMap, that the operator creates
# for each gate and mounts into the Job's environment as GATE_KEY_ENV. Nothing else gets it: a
# result that does not verify under it was not written by the gate's Job.
GATE_KEY_SECRET_KEY = "key"
GATE_KEY_ENV = "AGENTFLEET_GATE_KEY"

# What a side-effect tool does in a gate task (spec.rollout.evaluation.sideEffects): Skip, never
# called (the model reads that it was not, the task's steps keep the intended call), or
# DryRunHeader, an HTTP tool called with DRY_RUN_HEADER so that an endpoint that supports it acts
# as if. A gate task (tenant agentfleet-gate, which no caller can take) carries the mode in its
# metadata under SIDE_EFFECTS_METADATA; a gate task without it (a sub-agent) skips.
SideEffects = Literal["Skip", "DryRunHeader"]
SIDE_EFFECTS_METADATA = "gateSideEffects"
DRY_RUN_HEADER = "X-Agentfleet-Dry-Run"
VERSIONS: tuple[Version, ...] = ("current", "candidate")
# Where the image keeps the task sets that ship: spec.rollout.evaluation.taskSet.shipped NAME is
# SHIPPED_TASK_SET_DIR/NAME-tasks.yaml (e2e/eval/NAME-tasks.yaml in the repository).
SHIPPED_TASK_SET_DIR = "/usr/share/agentfleet/eval"
# A ConfigMap key is at most 253 characters of [-._a-zA-Z0-9]; a task id that is not one of at most
# this many is written as its cleaned form plus a hash of it.
MAX_KEY_ID = 200
_KEY_ID = re.compile(rf"^[-._a-zA-Z0-9]{{1,{MAX_KEY_ID}}}$")
_NOT_KEY = re.compile(r"[^-._a-zA-Z0-9]")


# The fields of a ModelReplicaSet whose change a gated fleet's gate runs against a canary replica.
CANARY_FIELDS = ("model", "adapters")


def canary_hash(mrs_spec: Mapping[str, object]) -> str:
    """Hash of a ModelReplicaSet's model and adapters as written (its spec, wire form): the name of
    its canary, computed alike by the set's pass and by each gated fleet's gate that runs against it."""
    fields = {k: mrs_spec.get(k) for k in CANARY_FIELDS}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]


class GateResultsError(ValueError):
    """A results ConfigMap that the gate cannot read; the message names the key and the fix."""


def shipped_task_set(name: str) -> str:
    """The path of a shipped task set in the runtime image."""
    return f"{SHIPPED_TASK_SET_DIR}/{name}-tasks.yaml"


def key_id(task_id: str) -> str:
    """``task_id`` as the part of a ConfigMap key after the version: itself when it is a valid key
    of at most MAX_KEY_ID characters, else its invalid characters replaced by ``_``, cut, then ``-``
    and the first 10 hex digits of its SHA-256, so two ids never share a key."""
    if _KEY_ID.match(task_id):
        return task_id
    digest = hashlib.sha256(task_id.encode()).hexdigest()[:10]
    return f"{_NOT_KEY.sub('_', task_id)[: MAX_KEY_ID - 11]}-{digest}"


def result_key(version: Version, task_id: str) -> str:
    """The key one (version, task) result is written under."""
    return f"{version}.{key_id(task_id)}"


def _mac(key: bytes, gate: str, what: str, text: str) -> str:
    """HMAC-SHA256 of ``text`` bound to the gate (its results ConfigMap's name) and to what it is,
    so a value signed for one key or one gate verifies for no other."""
    return hmac.new(key, f"{gate}\n{what}\n{text}".encode(), hashlib.sha256).hexdigest()


def _result_text(r: GateTaskResult) -> str:
    return json.dumps(r.model_dump(mode="json", by_alias=True, exclude={"mac"}), sort_keys=True, separators=(",", ":"))


def sign_result(key: bytes, gate: str, r: GateTaskResult) -> GateTaskResult:
    """``r`` with its mac under the gate's key (what the Job writes)."""
    return r.model_copy(update={"mac": _mac(key, gate, result_key(r.version, r.task_id), _result_text(r))})


def result_verifies(key: bytes, gate: str, r: GateTaskResult) -> bool:
    want = _mac(key, gate, result_key(r.version, r.task_id), _result_text(r))
    return r.mac is not None and hmac.compare_digest(r.mac, want)


def sign_value(key: bytes, gate: str, name: str, raw: str) -> str:
    """The mac of a signed key's raw value (the sample, the judge)."""
    return _mac(key, gate, name, raw)


@dataclass(frozen=True)
class VerifiedResults:
    """What a results ConfigMap holds that the gate's Job wrote, and what it holds that it did not."""

    sample: list[str] | None  # None: no sample, or one that does not verify
    results: list[GateTaskResult]  # the results that verify
    judge: dict[str, str] | None  # what judged (the task set's and the scorer's digests), when signed
    rejected: tuple[str, ...]  # the keys whose values do not verify: not counted


def verified_results(data: Mapping[str, str] | None, key: bytes | None, gate: str) -> VerifiedResults:
    """``results_in`` keeping only what verifies under the gate's ``key`` (None: no key, so
    nothing verifies). A value that is no result at all counts as not run, as before; a result,
    sample or judge whose mac is missing or wrong is rejected."""
    data = data or {}
    rejected: list[str] = []
    raw = data.get(SAMPLE_KEY)
    sample_ok = (
        raw is not None and key is not None and _same(data.get(SAMPLE_MAC_KEY), sign_value(key, gate, SAMPLE_KEY, raw))
    )
    if raw is not None and not sample_ok:
        rejected.append(SAMPLE_KEY)
    sample, results = results_in({k: v for k, v in data.items() if k != SAMPLE_KEY or sample_ok})
    good = []
    for r in results:
        if key is not None and result_verifies(key, gate, r):
            good.append(r)
        else:
            rejected.append(result_key(r.version, r.task_id))
    judge = None
    jraw = data.get(JUDGE_KEY)
    if jraw is not None:
        if key is not None and _same(data.get(JUDGE_MAC_KEY), sign_value(key, gate, JUDGE_KEY, jraw)):
            try:
                got = json.loads(jraw)
            except ValueError:
                got = None
            if isinstance(got, dict) and all(isinstance(v, str) for v in got.values()):
                judge = {str(k): v for k, v in got.items()}
        else:
            rejected.append(JUDGE_KEY)
    return VerifiedResults(sample, good, judge, tuple(sorted(rejected)))


def _same(got: str | None, want: str) -> bool:
    return got is not None and hmac.compare_digest(got, want)


def results_in(data: Mapping[str, str] | None) -> tuple[list[str] | None, list[GateTaskResult]]:
    """The sample (None before it is written) and the results a results ConfigMap's ``data`` holds.
    A value that is not a valid result is left out: its (version, task) counts as not run. A sample
    that is no JSON list of task ids raises GateResultsError: it is written once and never changed,
    so another sample would compare other tasks."""
    data = data or {}
    sample: list[str] | None = None
    raw = data.get(SAMPLE_KEY)
    if raw is not None:
        try:
            sample = json.loads(raw)
        except ValueError:
            sample = None
        if not isinstance(sample, list) or not all(isinstance(t, str) for t in sample):
            raise GateResultsError(
                f"key {SAMPLE_KEY} must be a JSON list of task ids (the gate's Job writes it once): "
                "delete the results ConfigMap to start the gate over"
            )
    results: list[GateTaskResult] = []
    for key, value in data.items():
        version = key.split(".", 1)[0]
        if version not in VERSIONS:
            continue
        try:
            r = GateTaskResult.model_validate_json(value)
        except (ValidationError, ValueError):
            continue
        if r.version == version and key == result_key(r.version, r.task_id):
            results.append(r)
    return sample, results


def pending(task_ids: Iterable[str], done: Iterable[GateTaskResult]) -> list[tuple[Version, str]]:
    """The (version, task) results still missing, current before candidate per task: a restarted
    gate runs only these."""
    have = {(r.version, r.task_id) for r in done}
    return [(v, t) for t in task_ids for v in VERSIONS if (v, t) not in have]
