"""tests/builders.py builds objects the API accepts: the defaults and each setter validate."""

from __future__ import annotations

from agentfleet_contract.agentfleet import AgentFleet
from agentfleet_contract.modelreplicaset import ModelReplicaSet
from agentfleet_contract.vectorindex import VectorIndex

from tests.builders import MRS, Fleet, Index


def test_the_smallest_objects_validate() -> None:
    ModelReplicaSet.model_validate(MRS("m").obj())
    assert AgentFleet.model_validate(Fleet("f").obj()).spec.model_ref.name == "llama-8b"
    assert VectorIndex.model_validate(Index("i").obj()).spec.collection == "docs"


def test_each_setter_reaches_the_field_it_names() -> None:
    af = AgentFleet.model_validate(
        Fleet("support")
        .ns("team-a")
        .model("big")
        .routine_model("smol", ["Summaries"])
        .index("docs")
        .workers(replicas=3, concurrency=8)
        .tool("search", "Retrieval")
        .prompt("Be brief.")
        .redis("redis://r:6379/0", password=("redis-auth", "pw"))
        .obj()
    )
    s = af.spec
    assert (s.model_ref.name, s.routine_model_ref.name, s.vector_index_ref.name) == ("big", "smol", "docs")
    assert s.workers.replicas == 3 and s.workers.concurrency == 8 and s.tools[0].name == "search"
    assert s.redis.password_secret_ref.name == "redis-auth" and s.system_prompt.inline == "Be brief."
    vi = VectorIndex.model_validate(
        Index("kb").milvus("http://m:19530").collection("wiki").configmap_source("w", "v2").obj()
    )
    assert vi.spec.collection == "wiki" and vi.spec.source.revision == "v2" and vi.spec.milvus.uri == "http://m:19530"


def test_obj_returns_a_fresh_copy() -> None:
    b = Fleet("f")
    first = b.obj()
    first["spec"]["modelRef"]["name"] = "changed"
    assert b.obj()["spec"]["modelRef"]["name"] == "llama-8b"
