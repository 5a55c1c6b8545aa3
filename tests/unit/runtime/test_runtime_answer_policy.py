"""One answer policy (issue 60, item 1): spec.tools[].retrieval.answerPolicy (Loop, OneShot,
Cascade) replaces seven Retrieval switches; each is one class (issue 77), and an experiment names one
of its class's variants in the runtime configuration's ``answering: {variant, params}`` (agentfleet
eval --compare answering=...), which the operator never reads; not the CRD. Every example still
applies: each agentfleet.io object of examples/ and e2e/eval/
validates against the generated CRD's schema."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml
from agentfleet_contract.agentfleet import AgentFleetSpec
from agentfleet_contract.runtime_config import RuntimeConfig

from agentfleet_runtime.answering.policies import Cascade, Loop, OneShot, VariantError, policy_for
from agentfleet_runtime.loop.agent import LoopSettings
from e2e.eval.corpus import CORPORA
from tests.unit.runtime.test_runtime_decisions import FIRST_SEARCH, ScriptedModel, run_task

ROOT = Path(__file__).resolve().parents[3]
OLD_SWITCHES = (
    "searchFirst",
    "answerFirst",
    "answerFirstPrompt",
    "declineUnknownNames",
    "declineOtherSubjects",
    "checkAnswerNames",
    "followUpTopK",
)


def config(policy: str | None = None, answering: dict | None = None) -> RuntimeConfig:
    retrieval = {"answerPolicy": policy} if policy else {}
    tools = [{"name": "web", "type": "HTTP", "http": {"url": "http://x"}}, {"name": "kb", "type": "Retrieval",
             "retrieval": retrieval}]  # fmt: skip
    return RuntimeConfig.model_validate({"tools": tools, "answering": answering})


def test_each_policy_is_its_class_searching_with_its_tool():
    assert policy_for(config()) == Loop() and policy_for(config()).tool is None
    assert policy_for(config("OneShot")) == OneShot("kb")
    assert policy_for(config("Cascade")) == Cascade("kb")


def test_an_experiment_names_a_variant_the_policy_class_validates():
    assert policy_for(config("Cascade", {"variant": "reread"})) == Cascade("kb", reread=True)
    with pytest.raises(
        VariantError, match=r"answering.variant: Cascade has no variant 'verifySearch' \(its variants: reread\)"
    ):
        policy_for(config("Cascade", {"variant": "verifySearch"}))
    with pytest.raises(VariantError, match="answering.variant: OneShot has no variant 'reread'"):
        policy_for(config("OneShot", {"variant": "reread"}))
    with pytest.raises(VariantError, match="answering.params"):
        policy_for(config("Cascade", {"variant": "reread", "params": {"form": "Quote"}}))
    # The contract carries the variant as it is: the operator never reads it.
    assert RuntimeConfig.model_validate({"answering": {"variant": "anything", "params": {"k": 1}}}).answering


def test_the_old_experiment_settings_are_refused_by_name():
    with pytest.raises(ValueError, match="rereadOrder"):
        config("Cascade", {"rereadOrder": "Reversed"})


@pytest.mark.parametrize("switch", OLD_SWITCHES)
def test_the_old_switches_are_gone_from_the_api(switch):
    spec = {"modelRef": {"name": "m"}, "redis": {"url": "redis://r:6379"}, "vectorIndexRef": {"name": "v"},
            "tools": [{"name": "kb", "type": "Retrieval", "retrieval": {switch: True}}]}  # fmt: skip
    with pytest.raises(ValueError, match=switch):
        AgentFleetSpec.model_validate(spec)


def test_one_retrieval_tool_at_most_answers_by_a_policy():
    tools = [{"name": n, "type": "Retrieval", "retrieval": {"answerPolicy": "Cascade"}} for n in ("a", "b")]
    spec = {"modelRef": {"name": "m"}, "redis": {"url": "redis://r:6379"}, "vectorIndexRef": {"name": "v"}}
    with pytest.raises(ValueError, match="at most one Retrieval tool"):
        AgentFleetSpec.model_validate({**spec, "tools": tools})
    tools[1]["retrieval"]["answerPolicy"] = "Loop"
    AgentFleetSpec.model_validate({**spec, "tools": tools})


def test_one_shot_never_goes_on_to_the_loop():
    """OneShot is one-shot RAG in the fleet: the first answer is the answer, even one the check
    would send on (Cascade does)."""
    invented = "VACUUM FULL takes a lock for 30 seconds [source: explicit-locking.html]"
    model = ScriptedModel([invented])
    _, finished, _, _ = run_task(model, LoopSettings("s", decisions=FIRST_SEARCH, answering=OneShot("search")))
    assert finished["answer"] == invented and len(model.requests) == 1
    model = ScriptedModel([invented, '{"action": "answer", "answer": "x", "sources": []}'])
    run_task(model, LoopSettings("s", decisions=FIRST_SEARCH, answering=Cascade("search")))
    assert len(model.requests) == 2


def _objects() -> list[tuple[str, dict]]:
    """Every example object; the evaluation fleets as the demo applies them (laid over the example
    AgentFleet, e2e.eval.corpus.Corpus.with_fleet)."""
    out = []
    for p in sorted((ROOT / "examples").rglob("*.yaml")):
        for doc in yaml.safe_load_all(p.read_text()):
            if isinstance(doc, dict) and str(doc.get("apiVersion", "")).startswith("agentfleet.io/"):
                out.append((f"{p.relative_to(ROOT)}:{doc['kind']}/{doc['metadata']['name']}", doc))
    fleet = next(d for w, d in out if w.startswith("examples/agentfleet.yaml:AgentFleet/"))
    for corpus in CORPORA.values():
        out.append((f"{corpus.objects.relative_to(ROOT)}:AgentFleet (over the example)", corpus.with_fleet(fleet)))
    return out


def _schema(kind: str) -> dict:
    for p in (ROOT / "crds").glob("*.yaml"):
        crd = yaml.safe_load(p.read_text())
        if crd["spec"]["names"]["kind"] == kind:
            return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    raise AssertionError(f"no CRD for {kind}")


@pytest.mark.parametrize("where,obj", _objects(), ids=[w for w, _ in _objects()])
def test_every_example_applies_against_the_generated_crd(where, obj):
    """The API server's structural check of each example (CEL rules aside, which the pydantic
    models mirror: tests/unit/test_api_validation.py): no unknown field, every type and enum right."""
    strict = _closed(_schema(obj["kind"]))
    # OpenAPI v3.0's schema dialect (a boolean exclusiveMinimum) is JSON Schema draft 4's.
    jsonschema.Draft4Validator(strict).validate({k: v for k, v in obj.items() if k in ("apiVersion", "kind", "spec")})


def _closed(schema: dict) -> dict:
    """The schema as the API server prunes: an object with properties accepts no other field."""
    out = dict(schema)
    if "properties" in out:
        out["properties"] = {k: _closed(v) for k, v in out["properties"].items()}
        if not out.get("x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", False)
    if isinstance(out.get("items"), dict):
        out["items"] = _closed(out["items"])
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _closed(out["additionalProperties"])
    return out
