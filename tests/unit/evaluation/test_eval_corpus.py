"""The evaluation fleet's objects: the example's VectorIndex and AgentFleet pointed at each corpus."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from agentfleet_contract.agentfleet import AgentFleet
from agentfleet_contract.vectorindex import VectorIndex

from agentfleet.render import vectorindex as render
from e2e.eval.corpus import CORPORA, MANUAL, Corpus, with_manual_fleet, with_manual_source

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "agentfleet.yaml"


def _example(kind: str) -> dict:
    return next(d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d and d["kind"] == kind)


def test_manual_vectorindex_keeps_name_and_endpoint_and_reads_the_manual_volume() -> None:
    vi = _example("VectorIndex")
    got = VectorIndex.model_validate(with_manual_source(vi))
    assert got.metadata["name"] == vi["metadata"]["name"] and got.spec.milvus.uri == vi["spec"]["milvus"]["uri"]
    assert (
        got.spec.source.persistent_volume_claim.path == str(MANUAL) and got.spec.source.revision == "postgresql-doc-15"
    )
    assert got.spec.source.config_map is None and vi["spec"]["source"]["configMap"]  # the input is not changed
    # the operator renders it as a Job reading the mounted volume, which the local run swaps for MANUAL
    args = render.ingestion_args(got.spec, "postgresql-doc-15")
    assert args[args.index("--source-dir") + 1] == render.SOURCE_MOUNT


def test_manual_prompt_asks_to_cite_and_to_decline() -> None:
    got = AgentFleet.model_validate(with_manual_fleet(_example("AgentFleet")))
    prompt = got.spec.system_prompt.inline
    assert "PostgreSQL 15" in prompt and "cite" in prompt and "manual does not say" in prompt
    assert [t.name for t in got.spec.tools] == ["search_docs", "create_ticket"]  # no sub-agents at maxDepth 0
    assert got.spec.tools[1] == AgentFleet.model_validate(_example("AgentFleet")).spec.tools[1]


@pytest.mark.parametrize("corpus", CORPORA.values(), ids=list(CORPORA))
def test_each_corpus_fleet_settings_reach_the_deployed_fleet(corpus: Corpus) -> None:
    """What the corpus file's AgentFleet sets (the configuration measured in docs/results) is what the
    demo deploys: every section laid over the example, tools merged by name, the rest of the example kept."""
    example = _example("AgentFleet")
    theirs = corpus._object("AgentFleet")["spec"]
    got = corpus.with_fleet(example)
    AgentFleet.model_validate(got)
    for key, value in theirs.items():
        if key == "tools":
            assert [t["name"] for t in got["spec"]["tools"]] == [t["name"] for t in value]
            for tool, merged in zip(value, got["spec"]["tools"], strict=True):
                mine = next(t for t in example["spec"]["tools"] if t["name"] == tool["name"])
                assert merged["type"] == mine["type"] and merged.get("description") == mine.get("description")
                assert all(merged[k][f] == x for k, v in tool.items() if isinstance(v, dict) for f, x in v.items())
        elif isinstance(value, dict) and key != "systemPrompt":
            assert all(got["spec"][key][f] == x for f, x in value.items()), key
        else:
            assert got["spec"][key] == value, key
    assert got["spec"]["workers"] == example["spec"]["workers"] and got["spec"]["pricing"] == example["spec"]["pricing"]
    assert example == _example("AgentFleet")  # the input is not changed


@pytest.mark.parametrize("corpus", CORPORA.values(), ids=list(CORPORA))
def test_each_corpus_reads_its_debian_package_and_asks_to_cite_and_decline(corpus: Corpus) -> None:
    vi = _example("VectorIndex")
    got = VectorIndex.model_validate(corpus.with_source(vi))
    assert got.metadata["name"] == vi["metadata"]["name"] and got.spec.collection == vi["spec"]["collection"]
    assert got.spec.source.persistent_volume_claim.path == str(corpus.directory)
    assert got.spec.source.revision == corpus.package
    # Hybrid retrieval is part of the collection's schema: the demo must create it with the corpus's setting.
    assert (
        got.spec.full_text is not None
        and got.spec.full_text == VectorIndex.model_validate(corpus.vectorindex()).spec.full_text
    )
    prompt = AgentFleet.model_validate(corpus.with_fleet(_example("AgentFleet"))).spec.system_prompt.inline
    assert "cite" in prompt and "does not say" in prompt
    assert corpus.tasks.is_file() and corpus.objects.parent == corpus.tasks.parent
