"""The pydantic models accept every example and refuse every invalid case."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest
import yaml
from agentfleet_contract import BY_KIND, AgentFleet, ModelReplicaSet, VectorIndex

from tests.cases import contains, invalid_cases, merge_patch

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
CASES = invalid_cases()


def _agentfleet_objects(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d and d["apiVersion"].startswith("agentfleet.io/")]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_valid(path: Path) -> None:
    objs = _agentfleet_objects(path)
    assert objs, f"{path.name} holds no agentfleet.io object"
    for obj in objs:
        model = BY_KIND[obj["kind"]].model.model_validate(obj)
        # Everything the user set survives a round trip through the models.
        assert contains(model.wire(), obj)


def test_every_kind_has_an_example() -> None:
    kinds = {o["kind"] for p in EXAMPLES for o in _agentfleet_objects(p)}
    assert kinds == set(BY_KIND)


def test_case_table_covers_every_kind_and_enough_rules() -> None:
    assert {c.kind for c in CASES} == set(BY_KIND)
    assert len(CASES) >= 20
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", [c for c in CASES if c.python != "none"], ids=lambda c: c.id)
def test_invalid_objects_are_refused(case) -> None:
    model = BY_KIND[case.kind].model
    with pytest.raises(pydantic.ValidationError) as err:
        model.model_validate(case.obj)
    if case.python == "same":
        assert case.expect in str(err.value)


@pytest.mark.parametrize("case", [c for c in CASES if c.update is not None], ids=lambda c: c.id)
def test_update_cases_start_from_a_valid_object(case) -> None:
    # An immutability case is only meaningful if the object it updates was accepted.
    BY_KIND[case.kind].model.model_validate(case.obj)
    BY_KIND[case.kind].model.model_validate(merge_patch(case.obj, case.update))


def test_defaults_match_the_documented_ones() -> None:
    mrs = ModelReplicaSet.model_validate({"spec": {"model": {"name": "org/m"}}}).spec
    assert (mrs.engine.tensor_parallel_size, mrs.engine.pipeline_parallel_size) == (1, 1)
    assert mrs.engine.enable_prefix_caching is True
    assert mrs.autoscaling.enabled is False and mrs.replicas == 1
    assert mrs.routing.policy == "PrefixAffinity"
    vi = VectorIndex.model_validate({"spec": {"milvus": {"uri": "http://m:19530"}, "collection": "c"}}).spec
    assert (vi.dimension, vi.shards, vi.in_memory_replicas, vi.deletion_policy) == (384, 1, 1, "Retain")
    af = AgentFleet.model_validate({"spec": {"modelRef": {"name": "m"}, "redis": {"url": "redis://r"}}}).spec
    assert af.budgets.max_steps == 30 and af.retry.max_attempts == 3


def test_wire_form_is_camel_case_and_omits_unset() -> None:
    mrs = ModelReplicaSet.model_validate(
        {"spec": {"model": {"name": "org/m"}, "autoscaling": {"prometheusURL": "http://p:9090"}}}
    )
    wire = mrs.wire()
    assert wire["spec"]["autoscaling"]["prometheusURL"] == "http://p:9090"
    assert "servedName" not in wire["spec"]["model"]
    assert "tensorParallelSize" in wire["spec"]["engine"]
