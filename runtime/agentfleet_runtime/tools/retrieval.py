"""Retrieval tool: search the VectorIndex through a Retriever, with a Redis cache for repeats.

The Retriever (``agentfleet_runtime.tools.retriever.Retriever``) is another module's; this tool only
relies on the ``RetrieverLike`` protocol below, so tests and other backends can stand in for it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any, Protocol

from agentfleet_runtime.model.prompt import tool_schema
from agentfleet_runtime.tools.base import ToolContext, ToolError

PARAMETERS = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "description": "What to search for, in natural language."},
        "top_k": {
            "type": "integer",
            "description": "More passages than the default, when the first ones were not enough.",
            "minimum": 1,
            "maximum": 50,
        },
    },
    "required": ["query"],
}
# A call may ask for more neighbouring chunks than the fleet's readAround (the model is not offered
# it; the runtime's verifying search asks for 1), never more than this: each one a side adds a
# passage's worth of tokens to every later call that re-reads the result.
READ_AROUND_ASKED_MAX = 2


class PassageLike(Protocol):
    id: Any
    text: str
    score: float
    source: str
    metadata: dict[str, Any]


class RetrieverLike(Protocol):
    # read_around is passed only when it is set (spec.tools[].retrieval.readAround above 0).
    async def search(self, query: str, top_k: int = 5, filter: str | None = None, **kw: Any) -> list[PassageLike]: ...


class CacheLike(Protocol):
    async def get(self, key: str) -> str | None: ...

    async def set(self, key: str, value: str, ex: int | None = None) -> Any: ...


def cache_digest(query: str, top_k: int, filter: str | None, read_around: int = 0) -> str:
    # Normalise whitespace only: "Foo  bar" and "Foo bar" are the same question; case may matter.
    norm = " ".join(query.split())
    key = [norm, top_k, filter or ""] + ([read_around] if read_around else [])
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:40]


async def search_passages(
    retriever: RetrieverLike, query: str, top_k: int, filter: str | None = None, read_around: int = 0
) -> list[dict[str, Any]]:
    """One search as the passages a model is shown (and the cache stores): the tool's and one-shot RAG's."""
    kw = {"read_around": read_around} if read_around else {}
    found = await retriever.search(query, top_k=top_k, filter=filter, **kw)
    return [
        {
            "id": str(p.id),
            "text": p.text,
            "score": float(p.score),
            "source": p.source,
            "metadata": dict(p.metadata or {}),
        }
        for p in found
    ]


def format_passages(passages: list[dict[str, Any]]) -> str:
    if not passages:
        return "No passages found."
    out = []
    for i, p in enumerate(passages, 1):
        src = p.get("source") or p.get("id")
        out.append(f"[{i}] ({src}, score {float(p.get('score', 0)):.3f})\n{p.get('text', '')}")
    return "\n\n".join(out)


# One-shot RAG's request (the eval's baseline, oneshot.py) and the answer-first call's in its form
# (answerFirstPrompt: OneShot): the RAG prompt asks for what the eval scores (the answer, its sources,
# a decline when the passages do not say), and names the citation form the task API reads.
RAG_PROMPT = (
    "Answer the question from the numbered passages below. Cite the source of every passage you use as "
    "[source: NAME], with NAME as the passage's head line shows it. If the passages do not answer the question, "
    "say that the documentation does not say, and give no value."
)


def rag_messages(
    question: str, passages: Sequence[dict[str, Any]], instruction: str = RAG_PROMPT
) -> list[dict[str, str]]:
    """One-shot RAG's request: the instruction as the system message, the passages and the question. Pure."""
    return [
        {"role": "system", "content": instruction},
        {"role": "user", "content": f"Passages:\n\n{format_passages(list(passages))}\n\nQuestion: {question}"},
    ]


# The head line format_passages writes above each passage; parse_passages reads it back.
_PASSAGE_HEAD = re.compile(r"^\[(\d+)\] \((.*), score (-?[\d.]+)\)$", re.M)


def parse_passages(output: str) -> list[dict[str, Any]]:
    """The passages of one observation that ``format_passages`` wrote: rank, source, score, text.

    The task API reads them back to show which passages a task retrieved (what its citations may
    name), and so does anything that acts on a search's result."""
    heads = list(_PASSAGE_HEAD.finditer(output))
    out = []
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(output)
        body = output[m.end() : end].strip()
        if body:
            out.append({"rank": int(m.group(1)), "source": m.group(2), "score": float(m.group(3)), "text": body})
    return out


# A follow-up search mostly finds what the task has already read: in the 2026-11-26 held-out
# PostgreSQL run, 100 of the 120 passages the loop's searches returned had been shown by an earlier
# search of the same task, and each sat in every later prompt again (docs/results/2026-11-27-cite-values.md).
SHOWN_ABOVE = "(the same passage as shown above)"


class RepeatsElided:
    """How a task's history shows its search results (model.prompt's observation view): a passage an
    earlier result of the same task already showed keeps its head line, the source an answer cites,
    and its text is replaced by SHOWN_ABOVE; a result with nothing new keeps its first passage whole.
    A small model answers from the last thing it read, and with only a note to read it answered with
    the note (tests/integration/runtime/test_runtime_real_agent.py, a sub-agent that searched twice).
    Stateful in step order, so the prompt of step n is a prefix of step n+1's and a resumed task
    sends the same."""

    __slots__ = ("_shown",)

    def __init__(self) -> None:
        self._shown: set[tuple[str, str]] = set()

    def __call__(self, output: str) -> str:
        heads = list(_PASSAGE_HEAD.finditer(output))
        if not heads:
            return output
        spans = [
            (m, output[m.start() : heads[i + 1].start() if i + 1 < len(heads) else len(output)])
            for i, m in enumerate(heads)
        ]
        keys = [(m.group(2), segment[len(m.group(0)) :].strip()) for m, segment in spans]
        repeated = [bool(body) and (src, body) in self._shown for src, body in keys]
        if all(repeated):
            repeated[0] = False
        parts = [output[: heads[0].start()]]
        for (m, segment), key, again in zip(spans, keys, repeated, strict=True):
            parts.append(f"{m.group(0)}\n{SHOWN_ABOVE}{segment[len(segment.rstrip()) :]}" if again else segment)
            self._shown.add(key)
        return "".join(parts)


class RetrievalTool:
    side_effects = False
    read_only = True  # the same query returns the same passages (and the cache answers it)

    def __init__(
        self,
        name: str,
        retriever: RetrieverLike,
        *,
        cache: CacheLike | None = None,
        cache_key: Any = None,
        description: str = "",
        top_k: int = 5,
        filter: str | None = None,
        read_around: int = 0,
        cache_ttl: int = 300,
        timeout: float = 30.0,
        parameters: dict[str, Any] | None = None,
        on_cache: Any = None,
    ) -> None:
        self.name = name
        self.retriever = retriever
        self.cache = cache
        self.cache_key = cache_key or (lambda digest: f"rcache:{name}:{digest}")
        self.description = description or "Searches the knowledge base and returns the most relevant passages."
        self.top_k = top_k
        self.filter = filter
        self.read_around = read_around  # neighbouring chunks a side joined to each passage (readAround)
        self.cache_ttl = cache_ttl
        self.timeout = timeout
        self.parameters = parameters or PARAMETERS
        self.on_cache = on_cache  # metrics hook: on_cache(hit: bool)
        self._in_flight: dict[str, asyncio.Future[list[dict[str, Any]]]] = {}

    def schema(self) -> dict[str, Any]:
        return tool_schema(self.name, self.description, self.parameters)

    async def close(self) -> None:
        close = getattr(self.retriever, "close", None)
        if close is not None:
            await close()

    async def run(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        query = arguments.get("query") or arguments.get("input") or ""
        if not isinstance(query, str) or not query.strip():
            raise ToolError(f"{self.name} needs a non-empty 'query' string", unhealthy=False)
        top_k = arguments.get("top_k", self.top_k)
        if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= 50:
            top_k = self.top_k
        # The fleet's topK is the least a search returns: a model may ask for more, never for fewer
        # (a 0.5B model asked for 1 passage and then missed the one that held the answer).
        top_k = max(top_k, self.top_k)
        read_around = self._read_around(arguments.get("read_around"))
        key = self.cache_key(cache_digest(query, top_k, self.filter, read_around))
        # Single flight: identical queries already in progress in this worker wait for that one
        # lookup instead of all missing the cache at once. The entry is made before the cache is
        # read, so it covers the read too: a query whose cache read was in flight while another
        # stored the result would otherwise search a second time.
        pending = self._in_flight.get(key)
        if pending is not None:
            if self.on_cache:
                self.on_cache(True)
            return format_passages(await asyncio.shield(pending))
        fut: asyncio.Future[list[dict[str, Any]]] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = fut
        try:
            passages = await self._lookup(query, top_k, key, read_around)
            fut.set_result(passages)
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # retrieved here, so a future nobody else awaited does not warn
            raise
        finally:
            del self._in_flight[key]
        return format_passages(passages)

    def _read_around(self, asked: Any) -> int:
        """The neighbouring chunks a side this search joins: the fleet's readAround, or more when a
        call asks (the runtime's verifying search), at most READ_AROUND_ASKED_MAX whoever asks."""
        if not isinstance(asked, int) or isinstance(asked, bool) or asked <= self.read_around:
            return self.read_around
        return max(self.read_around, min(asked, READ_AROUND_ASKED_MAX))

    async def _lookup(self, query: str, top_k: int, key: str, read_around: int) -> list[dict[str, Any]]:
        if self.cache is not None and self.cache_ttl > 0:
            cached = await self.cache.get(key)
            if cached is not None:
                if self.on_cache:
                    self.on_cache(True)
                return json.loads(cached)
        return await self._search(query, top_k, key, read_around)

    async def _search(self, query: str, top_k: int, key: str, read_around: int) -> list[dict[str, Any]]:
        try:
            passages = await search_passages(self.retriever, query, top_k, self.filter, read_around)
        except ToolError:
            raise
        except Exception as e:  # the index being down is the tool's failure, not the task's
            raise ToolError(f"{self.name} search failed: {type(e).__name__}: {e}") from e
        if self.cache is not None and self.cache_ttl > 0:
            if self.on_cache:
                self.on_cache(False)
            await self.cache.set(key, json.dumps(passages), ex=self.cache_ttl)
        return passages
