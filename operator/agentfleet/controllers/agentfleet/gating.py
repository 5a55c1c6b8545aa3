"""The evaluation gate as a step of the AgentFleet pass's decide, pure (docs/evaluation-gate.md).

A fleet with spec.rollout.evaluation serves the version it last promoted: the answer fields kept in
the ConfigMap FLEET-promoted, over the rest of the spec as written (agentfleet.gate.serving_spec),
so that worker counts or prices apply at once while a change to answers waits for its gate. This
step plans both versions from one observation (deciding.plan_fleet), hashes what the written spec
answers with (agentfleet.gate.answer_hash, its references resolved), asks agentfleet.gate.next_step
what to do, and returns the serving version's plan with the gate's part beside it: the candidate
to apply, the evaluation Job to start, what a finished or superseded gate leaves to delete, the
answer fields to keep when a version is promoted, and what status, the condition and the Event say.
The gate's object names are made once, at the start (render.gate.gate_names), and passed to each part.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from agentfleet_contract.agentfleet import AgentFleet, GateCanary, GateJudge, GateStatus, RolloutEvaluation
from agentfleet_contract.gate import (
    GATE_KEY_SECRET_KEY,
    GateResultsError,
    GateTaskResult,
    VerifiedResults,
    canary_hash,
    verified_results,
)
from pydantic import ValidationError

from agentfleet.controllers.agentfleet import deciding
from agentfleet.controllers.agentfleet.deciding import Resolved
from agentfleet.controllers.agentfleet.records import (
    EVALUATION_GATE,
    JSON,
    GatePlan,
    NeedsProbe,
    Observed,
    Plan,
    Post,
    RuntimePlan,
    Subject,
    Verdict,
)
from agentfleet.gate import (
    OVERRIDE_ANNOTATION,
    OverrideError,
    Step,
    answer_hash,
    evaluation_hash,
    next_step,
    override,
    pinned_evaluation,
    promoted_fields,
    report,
    serving_spec,
)
from agentfleet.render import gate as rg

Override = Literal["promote", "abort"]
PROMPT_LIMIT = 262_144  # spec.systemPrompt.inline's maxLength
GATE_JOB_RECREATED = "the running gate's evaluation Job was gone: created again; it runs only the missing results"
GATE_CANARY_READY = "the canary replicas of the changed model are Ready: the evaluation Job starts"
OVERRIDE_IGNORED = f"the {OVERRIDE_ANNOTATION} annotation was removed: no gate was running for it to decide"
RESULTS_NOT_OWNED = "ResultsNotOwned"
RESULTS_REJECTED = "GateResultsRejected"
EVALUATION_CHANGED = "EvaluationChanged"
API_SERVER_UNKNOWN = "ApiServerUnknown"
NO_API_SERVER = (
    "the gate's evaluation Job needs the API server's addresses for its egress policy, and the operator has "
    "none (without them the Job could reach any host on ports 443 and 6443): set the chart's value "
    "workerEgress.apiServerCIDRs (the operator's AGENTFLEET_API_SERVER_CIDRS) to the API server's addresses; "
    "the change waits, the serving version keeps serving"
)


def owned(obj: JSON, subject: Subject) -> bool:
    """Whether ``obj`` is this fleet's own child: an ownerReference to this AgentFleet by UID. A
    name alone proves nothing: the gate's names are computable from the spec."""
    uid = (subject.obj.get("metadata") or {}).get("uid")
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return bool(uid) and any(
        r.get("kind") == "AgentFleet" and r.get("uid") == uid and r.get("name") == subject.name for r in refs
    )


def key_of(secret: JSON | None) -> bytes | None:
    """The gate's key from its Secret (None: none, or no key in it)."""
    raw = ((secret or {}).get("data") or {}).get(GATE_KEY_SECRET_KEY)
    try:
        return base64.b64decode(raw, validate=True) if raw else None
    except (binascii.Error, ValueError):
        return None


def pinned(obs: Observed) -> RolloutEvaluation | None:
    """The rule that judges the written spec: the promoted version's (plan.pinned_evaluation)."""
    try:
        return pinned_evaluation(obs.fleet.spec, obs.promoted)
    except ValidationError:
        return obs.fleet.spec.evaluation  # a record this version cannot read: the written spec serves


def gate_status(obs: Observed) -> GateStatus | None:
    """status.gate as read (None: none, or one this version cannot read)."""
    raw = obs.subject.status.get("gate")
    if not raw:
        return None
    try:
        return GateStatus.model_validate(raw)
    except ValidationError:
        return None


def read_promoted(cm: JSON | None) -> dict[str, Any] | None:
    """FLEET-promoted's answer fields (None: none kept, or not a JSON object)."""
    raw = ((cm or {}).get("data") or {}).get(rg.PROMOTED_KEY)
    try:
        fields = json.loads(raw) if raw else None
    except ValueError:
        return None
    return fields if isinstance(fields, dict) else None


def serving_fleet(af: AgentFleet, promoted: Mapping[str, Any] | None) -> AgentFleet | None:
    """The fleet the serving workers run when a gate keeps it from the spec as written; None when
    the written spec serves (no gate, nothing promoted yet, or the same answer fields)."""
    if not promoted:
        return None
    try:
        spec = serving_spec(af.spec, promoted)
    except ValidationError:
        return None  # a record this version cannot read: the written spec serves
    if spec.evaluation is None and af.spec.evaluation is None:
        return None  # no gate kept, none written: the written spec serves
    if promoted_fields(spec) == promoted_fields(af.spec):
        return None
    return af.model_copy(update={"spec": spec})


def read_results(
    data: Mapping[str, str] | None, key: bytes | None, gate: str
) -> tuple[list[str] | None, list[GateTaskResult], VerifiedResults]:
    """The sampled task ids (None until the Job wrote them) and the results of the sampled tasks,
    as the Job wrote them: signed under the gate's ``key`` (``verified_results``; what does not
    verify is not counted, and the third value says what). A sample that does not read as one
    is treated as not written: the Job stops on it (exit 2, its message says the fix) and the
    gate's time budget ends the gate."""
    try:
        got = verified_results(data, key, gate)
    except GateResultsError:
        return None, [], VerifiedResults(None, [], None, ())
    if got.sample is None:
        return None, got.results, got
    wanted = set(got.sample)
    return got.sample, [r for r in got.results if r.task_id in wanted], got


def resolved_refs(obs: Observed, af: AgentFleet, r: Resolved) -> dict[str, str]:
    """What the references of ``af`` resolve to that changes answers: the system prompt's text,
    each ModelReplicaSet's model and adapters, the VectorIndex's collection and embedding."""
    out = {"prompt": r.prompt or ""}
    for tier, ref in (("model", af.spec.model_ref), ("routineModel", af.spec.routine_model_ref)):
        if ref is not None:
            mspec = (obs.models.get(ref.name) or {}).get("spec") or {}
            out[tier] = json.dumps({"model": mspec.get("model"), "adapters": mspec.get("adapters")}, sort_keys=True)
    vspec = dict(r.index.spec or {})
    if vspec:
        out["index"] = json.dumps({k: vspec.get(k) for k in ("collection", "embedding")}, sort_keys=True)
    return out


@dataclasses.dataclass(frozen=True)
class CanaryRoutes:
    """What the fleet's ModelReplicaSets say of a change of their model or adapters (their status.canary)."""

    canaries: frozenset[str]  # sets whose canary replica the candidate calls, not their serving replicas
    ready: bool  # every such canary is Ready and every set has seen its spec as written: the Job may run
    record: tuple[GateCanary, ...]  # status.gate.canaries at the gate's start: the hashes it runs against


def canary_routes(obs: Observed, af: AgentFleet) -> CanaryRoutes:
    """A set whose status.canary runs (or held) the hash of its spec as written has that spec on its
    canary replica only: the candidate calls it there. A set whose status.canary names another hash
    has not seen its spec yet (it may be about to start a canary): the Job waits. A set without
    status.canary has never had a gated fleet (nothing on trial)."""
    canaries: set[str] = set()
    ready = True
    record = []
    for ref in (af.spec.model_ref, af.spec.routine_model_ref):
        if ref is None:
            continue
        mrs = obs.models.get(ref.name) or {}
        h = canary_hash(mrs.get("spec") or {})
        record.append(GateCanary(model_replica_set=ref.name, hash=h))
        said = (mrs.get("status") or {}).get("canary")
        if not isinstance(said, dict):
            continue
        if said.get("hash") != h:
            ready = False
        elif said.get("phase") in ("Running", "Held"):
            canaries.add(ref.name)
            ready = ready and said.get("phase") == "Running" and said.get("ready") is True
    return CanaryRoutes(frozenset(canaries), ready, tuple(record))


def kept_fields(af: AgentFleet, r: Resolved) -> dict[str, Any]:
    """The answer fields to keep for a version that serves: promoted_fields, with a prompt taken
    from a ConfigMap kept as its text (inline), so that a change of the ConfigMap waits for its
    gate like a change of the spec (a text over the inline limit stays a reference: served live)."""
    fields = promoted_fields(af.spec)
    sp = af.spec.system_prompt
    if sp is not None and sp.config_map_ref is not None and r.prompt is not None and len(r.prompt) <= PROMPT_LIMIT:
        fields["systemPrompt"] = {"inline": r.prompt}
    return fields


def _override(af: AgentFleet) -> tuple[Override | None, str | None]:
    try:
        return override((af.metadata or {}).get("annotations")), None
    except OverrideError as e:
        return None, str(e)


def candidate_objects(names: rg.GateNames, candidate: str) -> tuple[tuple[str, str, str], ...]:
    """What a gate leaves to delete when it ends: the candidate's workers, config and egress
    policy, and the Job. Its results ConfigMap stays, for the record."""
    return (
        ("batch/v1", "Job", names.job(candidate)),
        *(
            obj
            for private in (names.candidate, names.baseline)
            for obj in (
                ("apps/v1", "Deployment", private.workers),
                ("v1", "ConfigMap", private.config),
                ("networking.k8s.io/v1", "NetworkPolicy", private.egress),
            )
        ),
    )


def _at(clock: datetime) -> str:
    return clock.strftime("%Y-%m-%dT%H:%M:%SZ")


def _serving(obs: Observed) -> tuple[Plan, str] | None:
    """The serving version's plan and hash, when it is not the written spec."""
    if obs.serving is None:
        return None
    seen = dataclasses.replace(obs.serving, probed=obs.probed, fresh=obs.fresh)
    plan, r = deciding.plan_fleet(seen, seen.fleet)
    assert isinstance(plan, Plan), plan  # the same Redis, already probed
    return plan, answer_hash(seen.fleet.spec, resolved_refs(seen, seen.fleet, r))


def decide(obs: Observed) -> Plan | NeedsProbe:
    """The pass's plan: the serving version's runtime, and the gate's part (Plan.gate)."""
    af = obs.fleet
    evaluation = pinned(obs)
    before = gate_status(obs)
    if evaluation is None and before is None:
        return deciding.decide(obs)  # no gate now, none before: the spec as written serves
    want, r = deciding.plan_fleet(obs, af)
    if isinstance(want, NeedsProbe):
        return want
    assert obs.clock is not None, "observe reads the clock for the gate"
    at = _at(obs.clock)
    if want.runtime is None:
        # The written spec cannot run (Ready says why): nothing rolls out, the gate waits as it is.
        idle = None if before is None else GatePlan(report(Step("Idle"), before, at), running=before.phase == "Running")
        return dataclasses.replace(want, gate=idle)
    serving = _serving(obs)
    if before is None and serving is not None:
        # status.gate was lost (the object restored without its status): the kept version serves.
        before = GateStatus(phase="Serving", current=serving[1])
    wanted = answer_hash(af.spec, resolved_refs(obs, af, r))
    names = rg.gate_names(af)
    name = names.results(before.candidate) if before and before.candidate else ""
    sampled, results, verified = read_results(obs.results, obs.gate_key, name)
    how, bad = _override(af)
    step = next_step(evaluation, wanted, before, sampled=sampled or [], results=results, now=obs.clock, override=how)
    if step.kind == "Start" and obs.egress is not None and not obs.egress.api_server:
        # The Job's egress policy would name ports only: it does not start (issue 76).
        step = Step("Idle")
        refused = Verdict(EVALUATION_GATE, False, API_SERVER_UNKNOWN, NO_API_SERVER)
        said = report(step, before, at)
        base = want if serving is None else serving[0]
        return dataclasses.replace(
            base,
            gate=GatePlan(said, verdict=refused, posts=(Post("Warning", API_SERVER_UNKNOWN, NO_API_SERVER),)),
        )
    if step.kind == "Finish" and step.decision is not None and step.overridden is None and sampled is None:
        if step.decision.reason != "BudgetExhausted":
            step = Step("Run", candidate=wanted)  # the Job has not sampled yet: nothing to decide
    promote = step.kind == "Adopt" or (step.kind == "Finish" and step.decision is not None and step.decision.promote)
    base = want if promote or serving is None else serving[0]
    kept = kept_fields(af, r) if promote else None
    gate = _gate_plan(obs, names, want, step, before, at, kept, bad, evaluation, verified, base.runtime)
    return dataclasses.replace(base, gate=gate)


def _gate_plan(
    obs: Observed,
    names: rg.GateNames,
    want: Plan,
    step: Step,
    before: GateStatus | None,
    at: str,
    kept: dict[str, Any] | None,
    bad: str | None,
    evaluation: RolloutEvaluation | None,
    verified: VerifiedResults,
    serving_runtime: RuntimePlan | None,
) -> GatePlan:
    af = obs.fleet
    routes = canary_routes(obs, af)
    posts: list[Post] = []  # in the order they are said: the step's, the objects', the verdict's
    said = _gate_report(obs, names, step, before, at, evaluation, verified, routes, posts)
    running = said.gate.phase == "Running"
    foreign = obs.gate_foreign if step.kind == "Run" else None
    deletes = _gate_deletes(names, step, before, foreign)
    objects = _gate_objects(obs, names, want, step, evaluation, serving_runtime, routes, foreign, deletes, posts)
    verdict = _gate_verdict(obs, step, said, bad, foreign, posts)
    annotated = OVERRIDE_ANNOTATION in ((af.metadata or {}).get("annotations") or {})
    unannotate = annotated and bad is None and not running
    if unannotate and step.overridden is None:
        posts.append(Post("Normal", "GateOverrideIgnored", OVERRIDE_IGNORED, once=False))
    return GatePlan(
        report=said,
        promoted=rg.render_promoted(af, names, kept) if kept is not None else None,
        create=objects.create,
        key=objects.key,
        apply=tuple(objects.apply),
        delete=tuple(deletes),
        unannotate=unannotate,
        verdict=verdict,
        posts=tuple(posts),
        running=running,
    )


def _gate_report(
    obs: Observed,
    names: rg.GateNames,
    step: Step,
    before: GateStatus | None,
    at: str,
    evaluation: RolloutEvaluation | None,
    verified: VerifiedResults,
    routes: Any,
    posts: list[Post],
) -> Any:
    """status.gate for this step: at its start, what judges (the promoted version's rule, pinned, and
    the operator's runtime image); while it runs and when it ends, what the Job's signed results say."""
    af = obs.fleet
    said = report(step, before, at)
    if step.kind == "Start":
        judge = GateJudge(evaluation=evaluation_hash(evaluation), scorer_image=obs.runtime_image or None)
        update = {"canaries": list(routes.record), "judge": judge}
        said = dataclasses.replace(said, gate=said.gate.model_copy(update=update))
        if evaluation_hash(af.spec.evaluation) != judge.evaluation:
            posts.append(Post("Normal", EVALUATION_CHANGED, EVALUATION_HELD, once=False))
    elif step.kind in ("Run", "Finish") and before is not None:
        said = _judged(said, before, verified, posts, names.results(before.candidate or ""))
    return said


def _gate_deletes(
    names: rg.GateNames, step: Step, before: GateStatus | None, foreign: str | None
) -> list[tuple[str, str, str]]:
    """What goes: a superseded (or switched-off) gate's Job and candidate, a finished gate's
    candidate, and the gate's Job when someone else's object holds its name."""
    deletes: list[tuple[str, str, str]] = []
    stopped = step.superseded
    if step.kind == "Adopt" and stopped is None and before is not None and before.phase == "Running":
        stopped = before.candidate  # the gate was turned off while it ran
    if stopped is not None:
        # A superseded gate's Job goes; its candidate too, unless a new one takes its place now.
        old = candidate_objects(names, stopped)
        deletes += old[:1] if step.kind == "Start" else old
    if step.kind == "Finish" and step.candidate is not None:
        deletes += candidate_objects(names, step.candidate)
    if foreign is not None and step.candidate is not None:
        # Someone else's object under the gate's name: the Job would write there (or sign with a
        # key that someone else chose). It goes; the gate waits until the object is removed.
        deletes += candidate_objects(names, step.candidate)[:1]
    return deletes


@dataclasses.dataclass
class _GateObjects:
    """What the gate applies and creates this pass."""

    apply: list[JSON] = dataclasses.field(default_factory=list)
    create: JSON | None = None
    key: JSON | None = None


def _gate_objects(
    obs: Observed,
    names: rg.GateNames,
    want: Plan,
    step: Step,
    evaluation: RolloutEvaluation | None,
    serving_runtime: RuntimePlan | None,
    routes: Any,
    foreign: str | None,
    deletes: list[tuple[str, str, str]],
    posts: list[Post],
) -> _GateObjects:
    """The candidate's runtime, the current version's private baseline, the results object, the
    gate's key and its Job, while a gate starts or runs."""
    out = _GateObjects()
    if step.kind not in ("Start", "Run") or want.runtime is None or step.candidate is None or foreign:
        return out
    af = obs.fleet
    out.apply += rg.render_candidate(
        names, dict(want.runtime.doc or {}), [dict(o) for o in want.runtime.children], canaries=routes.canaries
    )
    if serving_runtime is not None:
        # The current version runs the gate's tasks on its own workers, as the candidate does.
        out.apply += rg.render_baseline(
            names, dict(serving_runtime.doc or {}), [dict(o) for o in serving_runtime.children]
        )
    # A running gate whose Job is gone (deleted by hand) gets it again; applied each pass instead,
    # a Job's immutable template would refuse a changed spec.rollout.evaluation mid-gate.
    lost = step.kind == "Run" and not obs.gate_job
    if step.kind == "Start" or (lost and obs.results is None):
        out.create = rg.render_results(af, names, step.candidate)
    if step.kind == "Start" or (step.kind == "Run" and obs.gate_key is None):
        out.key = rg.render_gate_key(af, names, step.candidate, obs.fresh_gate_key)
        if step.kind == "Run" and not lost:
            # A running gate without its key (started before keys, or the Secret deleted): its
            # Job cannot sign what it writes, so it goes and comes back with the new key.
            deletes.append(candidate_objects(names, step.candidate)[0])
    if (step.kind == "Start" or lost) and evaluation is not None and routes.ready:
        # While a ModelReplicaSet's canary loads (or the set has not seen its change yet) the
        # Job waits: its first tasks would find no replica of the changed model. It runs the
        # promoted version's rule and task set (pinned), never the change's own.
        out.apply += rg.render_gate(af, names, evaluation, step.candidate, image=obs.runtime_image, egress=obs.egress)
        if lost:
            posts.append(
                Post("Normal", "GateCanaryReady", GATE_CANARY_READY)
                if routes.canaries
                else Post("Normal", "GateJobRecreated", GATE_JOB_RECREATED)
            )
    return out


def _gate_verdict(
    obs: Observed, step: Step, said: Any, bad: str | None, foreign: str | None, posts: list[Post]
) -> Verdict | None:
    """The EvaluationGate condition when it is not the decision's own: an override that means
    nothing, results someone else owns, or (nothing happened) the condition kept as it was."""
    if bad is not None:
        posts.append(Post("Warning", "InvalidOverride", bad))
        return Verdict(EVALUATION_GATE, False, "InvalidOverride", bad)
    if foreign is not None:
        said_foreign = (
            f"{foreign} exists but is not this AgentFleet's (no ownerReference with its UID): the gate neither "
            f"reads nor writes it and its Job waits; delete {foreign} and the operator creates its own"
        )
        posts.append(Post("Warning", RESULTS_NOT_OWNED, said_foreign))
        return Verdict(EVALUATION_GATE, False, RESULTS_NOT_OWNED, said_foreign)
    kept_cond = next((c for c in obs.subject.own_conditions if c.get("type") == EVALUATION_GATE), None)
    if step.kind == "Idle" and kept_cond is not None:
        if (kept_cond.get("status"), kept_cond.get("reason")) == said.condition[:2]:
            # Nothing happened: the condition keeps what the decision said (its figures).
            return Verdict(EVALUATION_GATE, said.condition[0], said.condition[1], str(kept_cond.get("message")))
    return None


EVALUATION_HELD = (
    "the change alters spec.rollout.evaluation: the promoted version's rule, task set and sample judge it, "
    "and the new evaluation takes effect only once the change is promoted"
)


def _judged(said: Any, before: GateStatus, verified: VerifiedResults, posts: list[Post], results: str) -> Any:
    """status.gate with what the Job says judged (its signed digests) and how many values of the
    results ConfigMap did not verify; a Warning when some did not."""
    update: dict[str, Any] = {}
    if verified.judge:
        judge = before.judge or GateJudge()
        update["judge"] = judge.model_copy(
            update={
                "task_set_sha256": verified.judge.get("taskSetSha256"),
                "scorer_sha256": verified.judge.get("scorerSha256"),
            }
        )
    rejected = len(verified.rejected)
    if rejected or before.rejected_results:
        update["rejected_results"] = max(rejected, before.rejected_results or 0)
    if rejected:
        posts.append(
            Post(
                "Warning",
                RESULTS_REJECTED,
                f"{rejected} value(s) in ConfigMap {results} do not verify under the gate's key (not written by its "
                f"evaluation Job): not counted; first: {verified.rejected[0][:80]}",
            )
        )
    if not update:
        return said
    return dataclasses.replace(said, gate=said.gate.model_copy(update=update))
