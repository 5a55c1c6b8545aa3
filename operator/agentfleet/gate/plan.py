"""What starts a gate and what it still has to run. Pure."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Literal

from agentfleet_contract.agentfleet import AgentFleetSpec, RolloutEvaluation

OVERRIDE_ANNOTATION = "agentfleet.io/gate"
# The parts of the spec that change what the agents answer. Worker counts, the task API, prices,
# rate limits, retries, Redis, tracing and the rollout itself change how answers are served, not
# which: a change to those alone rolls out at once.
ANSWER_FIELDS = (
    "image",
    "model_ref",
    "model_adapter",
    "routine_model_ref",
    "routine_steps",
    "vector_index_ref",
    "system_prompt",
    "tools",
    "decisions",
    "budgets",
    "model_calls",
    # The judge travels with what it judges no more (issue 76, finding 5): a change to
    # spec.rollout.evaluation is itself gated, by the promoted version's rule, and takes effect
    # only once promoted (or by the override annotation).
    "rollout",
)


def answer_hash(spec: AgentFleetSpec, resolved: Mapping[str, str] | None = None) -> str:
    """A short hash of what changes answers: ANSWER_FIELDS of the spec, plus ``resolved`` (what the
    references point at, such as the ModelReplicaSet's model and adapters and the prompt
    ConfigMap's text, which the controller reads)."""
    parts = spec.model_dump(mode="json", by_alias=True, include=set(ANSWER_FIELDS))
    blob = json.dumps({"spec": parts, "resolved": dict(resolved or {})}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def serving_spec(spec: AgentFleetSpec, promoted: Mapping[str, object] | None) -> AgentFleetSpec:
    """The spec the serving workers run: ``spec`` with the promoted version's answer fields
    (``promoted_fields`` of it, kept by the controller), so that a change to worker counts or prices
    applies at once while a change to answers waits for its gate."""
    if not promoted:
        return spec
    data = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    for name in ANSWER_FIELDS:
        alias = AgentFleetSpec.model_fields[name].alias or name
        if name == "rollout" and alias not in promoted:
            continue  # a record kept before the rule was pinned: the written rule judges, as it did
        data.pop(alias, None)
    return AgentFleetSpec.model_validate({**data, **promoted})


def promoted_fields(spec: AgentFleetSpec) -> dict[str, object]:
    """The answer fields of a spec as JSON (camelCase), to keep beside the serving version.
    ``rollout`` is always there (null when the version had none): its absence marks a record kept
    before the rule was pinned."""
    fields = spec.model_dump(mode="json", by_alias=True, exclude_none=True, include=set(ANSWER_FIELDS))
    return {"rollout": None, **fields}


def pinned_evaluation(spec: AgentFleetSpec, promoted: Mapping[str, object] | None) -> RolloutEvaluation | None:
    """The rule, task set and sample that judge a change of ``spec``: the promoted version's, not
    the one the change writes (a change that loosens its own rule is judged by the rule it
    loosens). Without a promoted version (the first, adopted) or with a record kept before the
    rule was pinned, the spec's own."""
    return serving_spec(spec, promoted).evaluation


def evaluation_hash(evaluation: RolloutEvaluation | None) -> str | None:
    """A short hash of a spec.rollout.evaluation, for status.gate.judge."""
    if evaluation is None:
        return None
    blob = json.dumps(evaluation.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class OverrideError(ValueError):
    """The override annotation holds a value it cannot mean; the message names the fix."""


def override(annotations: Mapping[str, str] | None) -> Literal["promote", "abort"] | None:
    """The person's decision on the running gate, from the AgentFleet's annotation."""
    value = (annotations or {}).get(OVERRIDE_ANNOTATION)
    if value is None:
        return None
    v = value.strip().lower()
    if v in ("promote", "abort"):
        return v  # type: ignore[return-value]
    raise OverrideError(f"annotation {OVERRIDE_ANNOTATION} must be promote or abort: fix or remove it")
