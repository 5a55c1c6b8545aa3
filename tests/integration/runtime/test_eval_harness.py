"""`agentfleet eval` against a real task API and worker (Redis, Milvus Lite retrieval, a scripted
model): the task API reports what each task retrieved and cited, and the harness scores planted
failures as failures. The scripted model plays five agents: one right and grounded, one wrong,
one citing a document it never retrieved, one citing a retrieved passage that lacks the fact,
and one that declines a question the documents do not answer."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiohttp import web
from runtime_helpers import arun, environment, running_worker
from test_runtime_retrieval_milvus import DOCS

from agentfleet_client.evaluation.cli import main as eval_main
from agentfleet_runtime.server.api import TaskAPI
from agentfleet_runtime.tools.retriever import Retriever
from e2e.harness import plinth
from e2e.harness.ports import free_port

pytestmark = pytest.mark.integration

AOF = json.dumps({"query": "AOF persistence appends every write to a log file"})
STREAMS = json.dumps({"query": "streams consumer groups pending entries"})
RULES = [
    {
        "match": "Q-right",
        "steps": 2,
        "tool": "kb",
        "args": AOF,
        "answer": "AOF appends every write to a log file [source: aof.md]",
    },
    {"match": "Q-wrong", "steps": 2, "tool": "kb", "args": AOF, "answer": "AOF deletes old snapshots [source: aof.md]"},
    {
        "match": "Q-unretrieved",
        "steps": 2,
        "tool": "kb",
        "args": STREAMS,
        "answer": "AOF appends every write [source: aof.md]",
    },
    {
        "match": "Q-lacking",
        "steps": 2,
        "tool": "kb",
        "args": AOF,
        "answer": "Consumer groups keep pending entries [source: aof.md]",
    },
    {"match": "Q-none", "steps": 1, "answer": "The documents do not mention the price of Kaffee."},
]
TASKS = [
    {
        "id": "right",
        "part": "dev",
        "kind": "command",
        "question": "Q-right: what does AOF do?",
        "facts": [["appends every write", "appends each write"]],
        "supporting": ["aof.md"],
    },
    {
        "id": "wrong",
        "part": "dev",
        "kind": "command",
        "question": "Q-wrong: what does AOF do?",
        "facts": ["appends every write"],
        "supporting": ["aof.md"],
    },
    {
        "id": "unretrieved",
        "part": "dev",
        "kind": "default",
        "question": "Q-unretrieved: what does AOF do?",
        "facts": ["appends every write"],
        "supporting": ["aof.md"],
    },
    {
        "id": "lacking",
        "part": "dev",
        "kind": "default",
        "question": "Q-lacking: what do consumer groups keep?",
        "facts": ["pending entries"],
        "supporting": ["streams.md"],
    },
    {"id": "none", "kind": "unanswerable", "question": "Q-none: what does Kaffee cost?", "part": "dev"},
]


def test_eval_scores_planted_failures_through_the_task_api(milvus_uri, redis_server, fleet, tmp_path: Path):
    collection = "eval_" + fleet
    # The real MiniLM encoder, as a fleet's retrieval runs it: the scored retrieval is real too.
    plinth.make_collection(milvus_uri, collection, [(src, text, {"lang": lang}) for src, text, lang in DOCS])
    tools = [{"name": "kb", "type": "Retrieval", "retrieval": {"topK": 1, "cacheTtlSeconds": 0}}]
    taskset = tmp_path / "tasks.jsonl"
    taskset.write_text("\n".join(json.dumps(t) for t in TASKS) + "\n")
    (tmp_path / "tokens").write_text("secret-token\n")

    async def body() -> int:
        async with environment(
            redis_server.url, fleet, tools=tools, api={"tokensFile": str(tmp_path / "tokens")}
        ) as env:
            env.model.model.rules = RULES
            retriever = Retriever(milvus_uri, collection, plinth.encoder())
            runner = web.AppRunner(TaskAPI(env.config).app())
            await runner.setup()
            port = free_port()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            try:
                async with running_worker(env.config, retriever_factory=lambda c, t: retriever):
                    argv = [
                        str(taskset),
                        "--part",
                        "all",
                        "--api",
                        f"http://127.0.0.1:{port}",
                        "--token-file",
                        str(tmp_path / "tokens"),
                        "--out",
                        str(tmp_path / "out"),
                        "--k",
                        "1",
                    ]
                    return await asyncio.to_thread(eval_main, argv)
            finally:
                await runner.cleanup()

    assert arun(body(), timeout=120) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    got = {t["id"]: t for t in report["runs"][0]["tasks"]}
    assert (got["right"]["success"], got["right"]["grounded"], got["right"]["recall"]) == (True, True, 1.0)
    assert got["right"]["retrievedSources"] == ["aof.md"] and got["right"]["citations"] == ["aof.md"]
    assert got["right"]["toolCalls"] == {"kb": 1} and got["right"]["modelCalls"] == 2
    assert got["wrong"]["success"] is False and got["wrong"]["grounded"] is False
    assert got["unretrieved"]["success"] is True and got["unretrieved"]["grounded"] is False
    assert got["unretrieved"]["why"] == "correct but ungrounded: cites aof.md, which the task never retrieved"
    assert got["unretrieved"]["recall"] == 0.0
    assert (
        got["lacking"]["success"] is True
        and got["lacking"]["grounded"] is False
        and "no cited passage states" in got["lacking"]["why"]
    )
    assert got["none"]["success"] is True and got["none"]["grounded"] is None
    s = report["runs"][0]["summary"]
    assert s["tasks"] == 5 and s["success"] == 0.8 and s["grounded"] == 0.25 and s["endReasons"] == {"final_answer": 5}
    assert (tmp_path / "out" / "report.png").stat().st_size > 10_000
