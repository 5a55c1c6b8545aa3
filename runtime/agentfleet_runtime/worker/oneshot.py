"""One-shot answers on a fleet's own model and index: the baselines an agent loop must beat.

    python -m agentfleet_runtime oneshot --config runtime.yaml --mode rag [--top-k 5] [--read-around 1] < qs.jsonl

- ``closed-book``: the model alone, one call with the question;
- ``rag``: one search of the fleet's first Retrieval tool with the question itself (the tool's
  topK, or ``--top-k``; its filter; its readAround, or ``--read-around``), then one call with those
  passages, asked to cite them.

The model client, the retriever (Milvus collection, encoder) and the prices are built from the
runtime configuration exactly as a worker builds them, so a baseline differs from the fleet only
in the loop. Input: one JSON object per line, ``{"id": ..., "question": ...}``; output: one line
per question, shaped as the task API's view of a finished task (``answer``, ``citations``,
``retrieved``, ``usage``, ``treeUsage``, ``durationSeconds``, ``steps``), so ``agentfleet eval``
reads and scores it with the code it scores tasks with. ``--concurrency`` questions run at once.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Sequence
from typing import Any, Literal, TextIO

from agentfleet_contract.runtime_config import RuntimeConfig

from agentfleet_runtime.core.budget import Prices
from agentfleet_runtime.core.citations import parse_citations
from agentfleet_runtime.core.types import Usage
from agentfleet_runtime.model.client import ModelClient, ModelRequest
from agentfleet_runtime.tools.retrieval import (
    RetrieverLike,
    format_passages,
    parse_passages,
    rag_messages,
    search_passages,
)

Mode = Literal["closed-book", "rag"]
MODES: tuple[Mode, ...] = ("closed-book", "rag")

# Why these words: the closed-book prompt asks for a short answer and lets the model say it does not
# know; the RAG prompt (tools.retrieval.RAG_PROMPT) is also the answer-first call's (answerFirstPrompt: OneShot).
CLOSED_BOOK_PROMPT = "Answer the question briefly. If you do not know the answer, say that you do not know."


def messages(mode: Mode, question: str, passages: Sequence[dict[str, Any]] = ()) -> list[dict[str, str]]:
    """The one request's messages. Pure."""
    if mode == "closed-book":
        return [{"role": "system", "content": CLOSED_BOOK_PROMPT}, {"role": "user", "content": question}]
    return rag_messages(question, passages)


def view(
    qid: str,
    question: str,
    *,
    answer: str,
    passages: Sequence[dict[str, Any]],
    usage: Usage,
    cost_nanos: int,
    seconds: float,
    tool: str,
    status: str = "done",
    reason: str = "final_answer",
    error: str = "",
) -> dict[str, Any]:
    """A task-API-shaped view of one one-shot answer (what ``agentfleet eval`` scores). Pure."""
    # The passages as the agent's observation would show them, read back as the task API does.
    shown = parse_passages(format_passages(list(passages))) if passages else []
    retrieved = [{"step": 0, "call": 0, **p} for p in shown]
    cost = format(cost_nanos / 1e9, ".9f").rstrip("0").rstrip(".") or "0"
    return {
        "id": qid,
        "goal": question,
        "status": status,
        "reason": reason,
        "answer": answer,
        "error": error or None,
        "durationSeconds": round(seconds, 3),
        "stepCount": 1 if status == "done" or usage.total else 0,
        "usage": {
            "promptTokens": usage.prompt_tokens,
            "completionTokens": usage.completion_tokens,
            "totalTokens": usage.total,
        },
        "treeUsage": {"totalTokens": usage.total, "cost": cost},
        "cost": cost,
        "children": [],
        "citations": parse_citations(answer) if status == "done" else [],
        "retrieved": retrieved,
        "steps": [{"n": 0, "toolCalls": [{"name": tool}] if passages else []}],
    }


class OneShot:
    """Answers questions in one mode with a model client and, for ``rag``, a retriever."""

    def __init__(
        self,
        mode: Mode,
        model: ModelClient,
        prices: Prices,
        *,
        retriever: RetrieverLike | None = None,
        top_k: int = 5,
        filter: str | None = None,
        read_around: int = 0,
        tool: str = "search",
        timeout: float = 300.0,
    ) -> None:
        if mode == "rag" and retriever is None:
            raise ValueError("the rag baseline needs a Retrieval tool in the runtime configuration")
        self.mode, self.model, self.prices, self.retriever = mode, model, prices, retriever
        self.top_k, self.tool, self.timeout = top_k, tool, timeout
        # The tool's own filter and readAround: the baseline searches what the fleet's first search does.
        self.filter, self.read_around = filter, read_around

    async def answer(self, qid: str, question: str) -> dict[str, Any]:
        t0 = time.monotonic()
        passages: list[dict[str, Any]] = []
        try:
            if self.mode == "rag":
                assert self.retriever is not None
                passages = await search_passages(self.retriever, question, self.top_k, self.filter, self.read_around)
            reply = await self.model.complete(
                ModelRequest(
                    messages=messages(self.mode, question, passages),
                    task_id=f"oneshot-{qid}",
                    root_id=f"oneshot-{qid}",
                    timeout=self.timeout,
                )
            )
        except Exception as e:  # noqa: BLE001 - one question's failure is its outcome, not the run's
            return view(
                qid,
                question,
                answer="",
                passages=passages,
                usage=Usage(),
                cost_nanos=0,
                seconds=time.monotonic() - t0,
                tool=self.tool,
                status="dead",
                reason="error",
                error=f"{type(e).__name__}: {e}"[:500],
            )
        return view(
            qid,
            question,
            answer=(reply.content or "").strip(),
            passages=passages,
            usage=reply.usage,
            cost_nanos=self.prices.cost_nanos(reply.usage),
            seconds=time.monotonic() - t0,
            tool=self.tool,
        )


async def serve_lines(oneshot: OneShot, lines: TextIO, out: TextIO, concurrency: int = 1) -> int:
    """Answer every input line, ``concurrency`` at a time, writing each view as it finishes."""
    gate = asyncio.Semaphore(max(1, concurrency))
    lock = asyncio.Lock()

    async def one(raw: str) -> None:
        q = json.loads(raw)
        async with gate:
            v = await oneshot.answer(str(q["id"]), str(q["question"]))
        async with lock:
            out.write(json.dumps(v) + "\n")
            out.flush()

    jobs = [one(raw) for raw in lines if raw.strip()]
    await asyncio.gather(*jobs)
    return len(jobs)


async def run(
    config: RuntimeConfig,
    mode: Mode,
    *,
    top_k: int | None = None,
    read_around: int | None = None,
    concurrency: int = 1,
    lines: TextIO | None = None,
    out: TextIO | None = None,
) -> int:
    """Build the fleet's model client and retriever from ``config`` and answer ``lines``."""
    from agentfleet_runtime.core.config import prices_of
    from agentfleet_runtime.store.connection import connect
    from agentfleet_runtime.tools.registry import default_retriever
    from agentfleet_runtime.worker.lifecycle import model_client

    redis = connect(config.redis_url, config.redis_password, 4) if config.model_routing else None
    model = model_client(config, redis)
    tool = next((t for t in config.tools if t.type == "Retrieval"), None)
    retriever = default_retriever(config, tool) if mode == "rag" and tool is not None else None
    settings = tool.retrieval if tool is not None else None
    k = top_k or (settings.top_k if settings else 5)
    around = read_around if read_around is not None else (settings.read_around if settings else 0)
    oneshot = OneShot(
        mode,
        model,
        prices_of(config),
        retriever=retriever,
        top_k=k,
        filter=settings.filter if settings else None,
        read_around=around,
        tool=tool.name if tool else "search",
        timeout=float(config.model.timeout_seconds),
    )
    try:
        if retriever is not None:
            # The encoder and the Milvus channel load on the first search: a worker's are warm,
            # so the baseline's first question should not carry that either.
            await retriever.search("warm-up", top_k=1)
        return await serve_lines(oneshot, lines or sys.stdin, out or sys.stdout, concurrency)
    finally:
        await model.close()
        close = getattr(retriever, "close", None)
        if close is not None:
            await close()
        if redis is not None:
            await redis.aclose()
