"""The ModelReplicaSet canary (docs/evaluation-gate.md, "The ModelReplicaSet canary"), pure.

With an AgentFleet that uses the set and has spec.rollout.evaluation, a change of spec.model or
spec.adapters does not roll the replicas: they keep the promoted fields (kept in the ConfigMap
MRS-promoted, as the AgentFleet keeps its own) and ONE replica of the spec as written is added, the
canary, which only the gated fleets' candidates call (its pods' serving label is ``canary``: no
Service of the set but MRS-canary selects it). Each gated fleet's gate records the canary's hash it
ran against (status.gate.canaries); when every such gate promoted it, the set rolls on to the spec as
written (the canary, of that spec, is its first new replica); when one held (or was aborted), the
canary goes and the replicas stay. The annotation agentfleet.io/gate on the set (promote or abort,
as on an AgentFleet) decides the canary that status.canary shows in place of the gates. Without
gated fleets nothing here changes anything.

``fleet_gates`` reads the fleets, ``decide_canary`` decides, ``canary_step`` says what to do to
the canary replica; the pass observes and acts (canarying.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from agentfleet_contract.gate import CANARY_FIELDS, canary_hash
from agentfleet_contract.modelreplicaset import CanaryFleet, CanaryStatus, ModelReplicaSet, ModelReplicaSetSpec

from agentfleet.controllers.modelreplicaset.records import Post
from agentfleet.gate import OVERRIDE_ANNOTATION, OverrideError, override
from agentfleet.render.modelreplicaset import common_labels, spec_hash
from agentfleet.render.modelreplicaset_names import _meta
from agentfleet.replica_rollout import ReplicaView, new_replica_names

# The condition on the ModelReplicaSet that says how its latest gated change fares.
CANARY_CONDITION = "Canary"
PROMOTED_KEY = "fields"  # MRS-promoted's key: the promoted model and adapters, JSON
MAX_FLEETS_SHOWN = 100  # CanaryStatus.fleets' max_length

Result = Literal["Waiting", "Running", "Promoted", "Held"]
Override = Literal["promote", "abort"]
OVERRIDE_IGNORED = f"the {OVERRIDE_ANNOTATION} annotation was removed: no canary was running for it to decide"


def promoted_config_name(mrs: str) -> str:
    return f"{mrs}-promoted"


@dataclass(frozen=True)
class FleetGate:
    """A gated AgentFleet that uses the set, reduced to what its gate says of the set's canary."""

    name: str
    phase: str | None  # its status.gate.phase (None: no gate status yet)
    canaries: Mapping[str, str]  # ModelReplicaSet -> canary hash its gate ran against (status.gate.canaries)

    def result(self, mrs: str, chash: str) -> Result:
        if self.canaries.get(mrs) != chash:
            return "Waiting"  # its gate has not started against this canary (yet)
        if self.phase == "Promoted":
            return "Promoted"
        if self.phase in ("Held", "Aborted"):
            return "Held"
        return "Running"


def fleet_gates(mrs: str, fleets: Iterable[Mapping[str, Any]]) -> tuple[FleetGate, ...]:
    """The AgentFleets (objects as listed) that name ``mrs`` as modelRef or routineModelRef and have
    spec.rollout.evaluation, sorted by name."""
    out = []
    for f in fleets:
        spec = f.get("spec") or {}
        refs = {(spec.get(k) or {}).get("name") for k in ("modelRef", "routineModelRef")}
        if mrs not in refs or not (spec.get("rollout") or {}).get("evaluation"):
            continue
        gate = (f.get("status") or {}).get("gate") or {}
        canaries = {
            str(c.get("modelReplicaSet")): str(c.get("hash"))
            for c in gate.get("canaries") or []
            if isinstance(c, Mapping)
        }
        out.append(FleetGate(str((f.get("metadata") or {}).get("name")), gate.get("phase"), canaries))
    return tuple(sorted(out, key=lambda g: g.name))


def canary_fields(spec: Mapping[str, Any]) -> dict[str, Any]:
    """What a canary tries out: the spec's model and adapters (wire form, as written)."""
    return {k: spec.get(k) for k in CANARY_FIELDS}


def read_promoted(cm: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """MRS-promoted's fields (None: none kept, or not a JSON object of the canary fields)."""
    raw = ((cm or {}).get("data") or {}).get(PROMOTED_KEY)
    try:
        fields = json.loads(raw) if raw else None
    except ValueError:
        return None
    return fields if isinstance(fields, dict) and set(fields) == set(CANARY_FIELDS) else None


def render_promoted(mrs: ModelReplicaSet, fields: Mapping[str, Any]) -> dict[str, Any]:
    """MRS-promoted, owned by the ModelReplicaSet (deleted with it)."""
    name = mrs.metadata["name"]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(mrs, promoted_config_name(name), common_labels(name)),
        "data": {PROMOTED_KEY: json.dumps(dict(fields), sort_keys=True)},
    }


@dataclass(frozen=True)
class CanaryPlan:
    """What the canary step decided: the spec the replicas run, the canary's, what to keep and say."""

    serving: dict[str, Any]  # the spec (wire) the set's replicas run: as written, or with the promoted fields
    canary: dict[str, Any] | None  # the spec (wire) of the one canary replica, while one runs
    keep: dict[str, Any] | None  # fields to write to MRS-promoted (adopted or promoted now)
    status: CanaryStatus | None  # status.canary (None: leave it out)
    condition: tuple[str, str, str] | None  # (status, reason, message) of the Canary condition
    posts: tuple[Post, ...] = ()
    # Only which adapters are loaded changed: the canary replica's pods are the serving replicas'
    # (same spec hash), told apart by their serving label alone; it loads the new adapters.
    same_pods: bool = False
    # The override annotation goes (after status is written): applied now, or nothing to decide.
    unannotate: bool = False


def _said(status: CanaryStatus | None) -> tuple[str, str, str] | None:
    if status is None:
        return None
    waiting = [f.name for f in status.fleets if f.result in ("Waiting", "Running")]
    if status.phase == "Serving":
        return ("True", "Serving", "the set serves its model and adapters as written: nothing on trial")
    if status.phase == "Running":
        return ("Unknown", "Running", f"canary {status.hash[:10]}: waiting for the gates of {', '.join(waiting)}")
    if status.phase == "Promoted" and status.overridden == "promote":
        return ("True", "Overridden", f"canary {status.hash[:10]} {_BY['promote']}: the set rolls on")
    if status.phase == "Promoted":
        return ("True", "Promoted", f"canary {status.hash[:10]} promoted by every gated fleet: the set rolls on")
    if status.overridden == "abort":
        return ("False", "Overridden", f"canary {status.hash[:10]} {_BY['abort']}: {_KEEP}")
    held = ", ".join(f.name for f in status.fleets if f.result == "Held") or "a fleet"
    return (
        "False",
        "Held",
        f"canary {status.hash[:10]} held by the gate of {held}: {_KEEP}",
    )


_KEEP = "the replicas keep the promoted model"
_BY = {
    how: f"{said} by the {OVERRIDE_ANNOTATION}={how} annotation"
    for how, said in (("promote", "promoted"), ("abort", "aborted"))
}


def _serving(
    spec: Mapping[str, Any],
    chash: str,
    keep: dict[str, Any] | None,
    before: CanaryStatus | None,
    how: Override | None,
    now: str,
) -> tuple[CanaryPlan, bool]:
    """The spec as written serves: status.canary says so (a gated fleet's gate reads it: nothing on
    trial, its candidate calls the set's serving replicas); a finished canary of this hash is kept."""
    if before is not None and before.hash == chash and before.phase in ("Serving", "Promoted"):
        return CanaryPlan(dict(spec), None, keep, before, _said(before)), False
    if how == "promote" and before is not None and before.hash == chash and before.phase in ("Running", "Held"):
        # Promoted by the annotation in a pass whose status was not written (MRS-promoted was): said now.
        status = before.model_copy(
            update={"phase": "Promoted", "overridden": "promote", "ready": False, "finished_at": now}
        )
        return CanaryPlan(dict(spec), None, keep, status, _said(status)), True
    status = CanaryStatus(hash=chash, phase="Serving")
    return CanaryPlan(dict(spec), None, keep, status, _said(status)), False


def _read_override(annotations: Mapping[str, str] | None) -> tuple[Override | None, str | None]:
    """The annotation's decision, or why its value means nothing (OverrideError's text)."""
    try:
        return override(annotations), None
    except OverrideError as e:
        return None, str(e)


def decide_canary(
    mrs: str,
    spec: Mapping[str, Any],
    promoted: Mapping[str, Any] | None,
    fleets: tuple[FleetGate, ...],
    before: CanaryStatus | None,
    now: str,
    *,
    ready: bool = False,
    annotations: Mapping[str, str] | None = None,
) -> CanaryPlan:
    """``spec``: the set's spec as written (wire); ``promoted``: MRS-promoted's fields; ``before``:
    status.canary as read; ``now``: RFC 3339; ``ready``: the canary replica of ``spec`` is Ready;
    ``annotations``: the set's (the override annotation)."""
    how, bad = _read_override(annotations)
    plan, applied = _decide(mrs, spec, promoted, fleets, before, now, ready, how)
    if OVERRIDE_ANNOTATION not in (annotations or {}):
        return plan
    if bad is not None and plan.status is not None:
        # Left in place until fixed or removed: the canary goes on as without it.
        invalid = Post("Warning", "InvalidOverride", bad)
        return replace(plan, condition=("False", "InvalidOverride", bad), posts=(*plan.posts, invalid))
    if applied:
        return replace(plan, unannotate=True)
    # Nothing on trial that it could decide (or no gated fleet left): it goes, said once.
    ignored = Post("Normal", "CanaryOverrideIgnored", OVERRIDE_IGNORED, once=False)
    return replace(plan, unannotate=True, posts=(*plan.posts, ignored))


def _decide(
    mrs: str,
    spec: Mapping[str, Any],
    promoted: Mapping[str, Any] | None,
    fleets: tuple[FleetGate, ...],
    before: CanaryStatus | None,
    now: str,
    ready: bool,
    how: Override | None,
) -> tuple[CanaryPlan, bool]:
    """decide_canary's plan, and whether the override ``how`` decided it."""
    written = canary_fields(spec)
    if not fleets:
        # No gated fleet: the spec as written serves, as without this feature. What was kept
        # stays (a fleet that turns its gate on later is compared with this spec by its own gate).
        return CanaryPlan(dict(spec), None, None, None, None), False
    chash = canary_hash(spec)
    if promoted is None or dict(promoted) == written:
        # The first version the gate sees is adopted; the promoted one is the one written.
        keep = written if promoted is None else None
        return _serving(spec, chash, keep, before, how, now)
    # A field the promoted version did not set (adapters: None) is left out, not set to null.
    serving = {k: v for k, v in {**spec, **promoted}.items() if v is not None}
    pods = spec_hash(ModelReplicaSetSpec.model_validate(spec))
    same = pods == spec_hash(ModelReplicaSetSpec.model_validate(serving))
    # The annotation decides the canary status.canary shows (not a newer change it has not shown):
    # promote a running or held one, abort a running one.
    shown_phase = before.phase if before is not None and before.hash == chash else None
    decided = how if (shown_phase, how) in (("Running", "promote"), ("Running", "abort"), ("Held", "promote")) else None
    if shown_phase == "Held" and decided is None:
        # A held change stays held until the spec changes again.
        assert before is not None
        return CanaryPlan(serving, None, None, before, _said(before), same_pods=same), False
    results = [CanaryFleet(name=f.name, result=f.result(mrs, chash)) for f in fleets]
    # status.canary.fleets holds at most MAX_FLEETS_SHOWN (the CRD's bound): the held ones first.
    shown = sorted(results, key=lambda r: (r.result != "Held", r.name))[:MAX_FLEETS_SHOWN]
    started = before.started_at if before is not None and before.hash == chash else now
    held = [r.name for r in results if r.result == "Held"]
    ended = {"hash": chash, "spec_hash": pods, "fleets": shown, "started_at": started, "finished_at": now}
    if decided == "abort" or (decided is None and held):
        status = CanaryStatus(phase="Held", overridden=decided, **ended)
        said = _BY["abort"] if decided else f"held by the gate of {', '.join(held)}"
        post = Post("Warning", "CanaryHeld", f"canary {chash[:10]} {said}")
        return CanaryPlan(serving, None, None, status, _said(status), (post,), same), decided is not None
    if decided == "promote" or all(r.result == "Promoted" for r in results):
        status = CanaryStatus(phase="Promoted", overridden=decided, **ended)
        said = _BY["promote"] if decided else "promoted by every gated fleet"
        post = Post("Normal", "CanaryPromoted", f"canary {chash[:10]} {said}: rolling on")
        return CanaryPlan(dict(spec), None, written, status, _said(status), (post,), same), decided is not None
    status = CanaryStatus(hash=chash, spec_hash=pods, phase="Running", ready=ready, fleets=shown, started_at=started)
    posts: list[Post] = []
    if before is None or before.hash != chash or before.phase != "Running":
        posts.append(
            Post(
                "Normal",
                "CanaryStarted",
                f"canary {chash[:10]}: one replica of the changed model or adapters for the gates of "
                f"{', '.join(f.name for f in fleets)}; the others keep the promoted ones",
            )
        )
    return CanaryPlan(serving, dict(spec), None, status, _said(status), tuple(posts), same), False


@dataclass(frozen=True)
class CanaryObserved:
    """What the canary step read: its decision (with the spec the replicas run), the ModelReplicaSet
    as written (the canary's spec), the canary replica(s) taken out of the views."""

    plan: CanaryPlan
    written: ModelReplicaSet
    views: Mapping[str, ReplicaView]  # the canary replica(s): pods of the canary's spec hash
    record: Mapping[str, Any] | None  # status.canary.replica as read


@dataclass(frozen=True)
class CanaryStep:
    """What act does to the canary replica in this pass."""

    create: str | None = None  # the name of a canary replica to place and start
    keep: str | None = None  # the canary replica that stays (its missing pods are created again)
    delete: tuple[str, ...] = ()  # canary replicas to delete (extras, or one whose pod failed)


def canary_step(name: str, c: CanaryObserved, taken: set[str]) -> CanaryStep:
    """Pure. One canary replica while a canary runs: the first whose pods have not failed; any
    other goes. None runs: create one under the lowest free name of the canary's spec hash."""
    if c.plan.canary is None:
        # A held change's canary that the rollout does not drain (same pods as the others): it goes.
        return CanaryStep(delete=tuple(r for r in sorted(c.views) if c.views[r].live))
    if c.plan.status is None or not c.plan.status.spec_hash:
        return CanaryStep()
    failed = tuple(r for r, v in sorted(c.views.items()) if any(p.terminal for p in v.live))
    alive = [r for r in sorted(c.views) if r not in failed and c.views[r].live]
    if alive:
        return CanaryStep(keep=alive[0], delete=(*failed, *alive[1:]))
    if failed:
        return CanaryStep(delete=failed)  # created afresh once its pods are gone
    going = [r for r in c.views if c.views[r].pods]
    if going:
        return CanaryStep()  # pods still terminating: the name is not free yet
    return CanaryStep(create=new_replica_names(name, c.plan.status.spec_hash, taken, 1)[0])
