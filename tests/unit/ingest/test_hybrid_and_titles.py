"""Hybrid retrieval's collection schema decisions (spec.fullText) and section titles in chunks
(spec.chunking.sectionTitles): the pure parts. Milvus itself is in tests/integration/ingest."""

from __future__ import annotations

import re

import pytest
from agentfleet_contract.vectorindex import VectorIndex
from agentfleet_milvus.errors import ImmutableFieldConflict
from agentfleet_milvus.schema import CollectionSpec, CollectionState, full_text_analyzer, immutable_conflicts
from pydantic import ValidationError

from agentfleet.render.vectorindex import ingestion_args, ingestion_key
from agentfleet_runtime.ingest.chunking import _fit_title, chunk_document, heading_paths, title_at

_TOKEN = re.compile(r"\w+|[^\w\s]")


def count(texts: list[str]) -> list[int]:
    return [len(_TOKEN.findall(t)) for t in texts]


def vectorindex(**spec: object) -> VectorIndex:
    base = {"milvus": {"uri": "http://m:19530"}, "collection": "docs", "source": {"configMap": {"name": "d"}}}
    return VectorIndex.model_validate({"metadata": {"name": "kb", "namespace": "ns"}, "spec": {**base, **spec}})


PAGE = """## 20.5. Write Ahead Log

For additional information on tuning these settings, see Section 30.5.

### 20.5.1. Settings

wal_level (enum)
wal_level determines how much information is written to the WAL. The default value is replica.

### 20.5.2. Checkpoints

checkpoint_timeout (integer)
Maximum time between automatic WAL checkpoints. The default is five minutes (5min).

## 20.6. Replication

max_wal_senders (integer)
Specifies the maximum number of concurrent connections from standby servers. The default is 10.
"""


def test_heading_paths_nest_and_close_at_their_level():
    paths = [p for _, p in heading_paths(PAGE)]
    assert paths == [
        ("20.5. Write Ahead Log",),
        ("20.5. Write Ahead Log", "20.5.1. Settings"),
        ("20.5. Write Ahead Log", "20.5.2. Checkpoints"),
        ("20.6. Replication",),  # a level-2 heading closes the level-3 one inside the previous level 2
    ]
    offset = PAGE.index("Maximum time")
    assert title_at(heading_paths(PAGE), offset, "Maximum time ...") == "20.5. Write Ahead Log > 20.5.2. Checkpoints"
    # A chunk that begins with its own heading is not given it twice.
    at = PAGE.index("### 20.5.2.")
    assert title_at(heading_paths(PAGE), at, "### 20.5.2. Checkpoints\n\ncheckpoint_timeout") == "20.5. Write Ahead Log"
    assert title_at(heading_paths("no headings here"), 0, "no headings here") == ""


def test_section_titles_lead_every_chunk_and_the_budget_still_holds():
    plain = chunk_document("wal.html", PAGE, count, 64, 4)
    titled = chunk_document("wal.html", PAGE, count, 64, 4, section_titles=True)
    default_chunk = next(c for c in titled if "five minutes" in c.text)
    assert default_chunk.text.startswith("20.5. Write Ahead Log > 20.5.2. Checkpoints\n")
    assert not any(c.text.startswith("20.5") for c in plain)  # off: chunks as before
    for c in titled:
        assert c.tokens <= 64 and count([c.text])[0] <= 64, c
    # Ids hash the text as embedded: titled chunks never collide with untitled rows of the same page.
    assert not {c.id for c in plain} & {c.id for c in titled}


def test_a_title_over_its_quarter_of_the_budget_keeps_the_nearest_heading_then_cuts_words():
    assert _fit_title("Outer title words > Inner", 4, count) == ("Inner", 1)  # the whole path is 5 tokens
    assert _fit_title("Outer > Inner", 4, count) == ("Outer > Inner", 3)
    assert _fit_title("", 4, count) == ("", 0)
    long_heading = "# " + " ".join(f"word{i}" for i in range(40)) + "\n\nBody sentence here."
    chunk = next(c for c in chunk_document("x", long_heading, count, 16, 0, section_titles=True) if "Body" in c.text)
    title = chunk.text.split("\n")[0]
    assert title == "word0 word1 word2 word3" and chunk.tokens <= 16


def test_section_titles_reach_the_ingestion_job_and_change_its_key_only_when_on():
    off, on = vectorindex(), vectorindex(chunking={"sectionTitles": True})
    assert "--section-titles" not in ingestion_args(off.spec, "r") and "--section-titles" in ingestion_args(
        on.spec, "r"
    )
    assert ingestion_key(on.spec, "r", "u") != ingestion_key(off.spec, "r", "u")
    # The key of an index that leaves the new field off is the key it had before the field existed.
    assert ingestion_key(off.spec, "r", "u") == "a6600d9777"  # computed on main 202828d


def test_full_text_is_part_of_the_collection_schema():
    spec = CollectionSpec.from_vectorindex(vectorindex(fullText={}).spec)
    assert spec.full_text_analyzer == "standard"
    assert CollectionSpec.from_vectorindex(vectorindex().spec).full_text_analyzer is None
    dense = CollectionState(exists=True, dimension=384, shards=1)
    (conflict,) = immutable_conflicts(spec, dense)
    assert conflict.field == "spec.fullText.analyzer" and (conflict.existing, conflict.desired) == ("unset", "standard")
    assert "re-ingest" in str(ImmutableFieldConflict("docs", [conflict]))
    assert (
        immutable_conflicts(spec, CollectionState(exists=True, dimension=384, shards=1, full_text_analyzer="standard"))
        == []
    )


def test_the_analyzer_is_read_back_from_a_described_collection():
    def desc(params: object, functions: bool = True) -> dict:
        fields = [
            {"name": "text", "params": {"max_length": 65535, "analyzer_params": params}},
            {"name": "sparse", "params": {}},
        ]
        fn = [{"name": "bm25", "type": "BM25", "input_field_names": ["text"], "output_field_names": ["sparse"]}]
        return {"fields": fields, "functions": fn if functions else []}

    assert full_text_analyzer(desc('{"type": "english"}')) == "english"  # Milvus echoes the params as JSON text
    assert full_text_analyzer(desc({"type": "standard"})) == "standard"
    assert full_text_analyzer(desc(None)) == "standard"  # not echoed: Milvus' default analyzer
    assert full_text_analyzer(desc("not json")) == "standard"
    assert full_text_analyzer(desc({"type": "english"}, functions=False)) is None


def test_full_text_fields_are_validated_with_messages():
    v = vectorindex(fullText={"rrfK": 10, "candidates": 50})
    assert v.spec.full_text is not None and (v.spec.full_text.rrf_k, v.spec.full_text.candidates) == (10, 50)
    with pytest.raises(ValidationError, match="analyzer"):
        vectorindex(fullText={"analyzer": "klingon"})
    with pytest.raises(ValidationError, match="rrfK|rrf_k"):
        vectorindex(fullText={"rrfK": 0})
