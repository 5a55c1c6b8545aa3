"""The retrieval call agents use: query text -> embedding -> Milvus search -> passages.

One place for it, shared by the agent runtime and the tests, and built from the same settings as
ingestion (spec.embedding), so queries and chunks are embedded by the same model.

    retriever = Retriever.for_index(vectorindex_spec, uri="http://milvus:19530")
    passages = await retriever.search("how do I rotate the API key?", top_k=5, filter='tenant == "acme"')

``filter`` is a Milvus boolean expression over the collection's fields: ``source``, the partition
key field, or JSON paths into ``metadata`` (``metadata["revision"] == "r7"``). A filter on the
partition key lets Milvus search only that key's partitions.

Scores: higher is more similar for every metric. COSINE and IP return Milvus' similarity as is;
L2 returns the negated (squared) distance.

Hybrid retrieval (the VectorIndex's spec.fullText): each query is searched twice in one Milvus
request, by its embedding over ``vector`` and by its words over the BM25 ``sparse`` field Milvus
fills from ``text``, and the two lists are fused by reciprocal rank (RRF: a passage scores
1/(k + rank) in each list it is in). The score is then that fused value, not a similarity. Words
a dense encoder blurs (setting names such as ``wal_level``, error codes, numbers) are what BM25
matches exactly.

Reading around (``read_around``; spec.tools[].retrieval.readAround): each passage comes back with
its document's neighbouring chunks on either side, joined into one passage (the chunks' overlap and
repeated section title shown once), so a fact one sentence past a chunk's end is in the passage
that ranked. A hit already inside a better-ranked hit's window is not returned again, and no window
reaches into a better one's (no text is shown twice). The neighbours are read by one Milvus query
under the search's own ``filter`` (a tenant's partition filter holds for them too) and the hit's
revision.

Errors: ``MilvusUnavailable`` when Milvus cannot be reached (after one quick retry on a fresh
channel; retry later), ``MilvusRequestError``
when it refuses the search (bad filter, missing collection), ``EmbeddingError`` from the embedder.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from agentfleet_contract.agentfleet import READ_AROUND_MAX
from agentfleet_milvus import CHANNEL_OPTIONS, METADATA, SOURCE, SPARSE, TEXT, VECTOR, MilvusUnavailable, translate

from agentfleet_runtime.ingest.embedders import make_embedder
from agentfleet_runtime.ingest.embedding import Embedder, EmbeddingSettings

MAX_TOP_K = 16384  # Milvus' limit on topk
OVERLAP_MIN = 12
# Bounded backoff between a search's attempts when Milvus is unavailable or slow: a channel the server
# closed reconnects at once; a Milvus Lite starved of CPU times out in bursts of seconds.
RETRY_DELAYS_SECONDS = (0.2, 2.0)
T = TypeVar("T")


@dataclass(frozen=True)
class Hybrid:
    """spec.fullText as the retriever needs it."""

    rrf_k: int = 60
    candidates: int = 20


@dataclass(frozen=True)
class Passage:
    id: str
    text: str
    score: float
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)


def to_passages(hits: Sequence[Mapping[str, Any]], metric: str) -> list[Passage]:
    """Milvus search hits (one query's list) as passages, best first. Pure."""
    out = []
    for h in hits:
        entity = h.get("entity") or {}
        distance = float(h.get("distance", 0.0))
        out.append(
            Passage(
                id=str(h.get("id", entity.get("id", ""))),
                text=str(entity.get(TEXT, "")),
                score=-distance if metric.upper() == "L2" else distance,
                source=str(entity.get(SOURCE, "")),
                metadata=dict(entity.get(METADATA) or {}),
            )
        )
    out.sort(key=lambda p: p.score, reverse=True)
    return out


def _chunk(metadata: Mapping[str, Any] | None) -> int | None:
    """A chunk's number in its document (ingestion's metadata["chunk"]); None if it has none."""
    c = (metadata or {}).get("chunk")
    return c if isinstance(c, int) and not isinstance(c, bool) else None


def _literal(value: str) -> str:
    """A Milvus expression's string literal: JSON's escaping is what its parser reads."""
    return json.dumps(value)


def windows_filter(hits: Sequence[Passage], chunks: int, filter: str | None = None) -> str | None:
    """The Milvus expression that selects the neighbours of ``hits`` (``chunks`` a side), within the
    search's own ``filter``; None when no hit has a chunk number. Pure."""
    clauses = []
    chunk = f'{METADATA}["chunk"]'  # a range of it, not "in [...]": Milvus Lite takes no "in" on a JSON path
    for p in hits:
        c = _chunk(p.metadata)
        if c is None:
            continue
        clause = f"{SOURCE} == {_literal(p.source)} and {chunk} >= {max(0, c - chunks)} and {chunk} <= {c + chunks}"
        revision = p.metadata.get("revision")
        if isinstance(revision, str):
            clause += f' and {METADATA}["revision"] == {_literal(revision)}'
        clauses.append(f"({clause})")
    if not clauses:
        return None
    either = " or ".join(clauses)
    return f"({filter}) and ({either})" if filter else either


def join_chunks(first: str, second: str) -> str:
    """Two consecutive chunks of one document as one text: the second's repeated section title
    (its first line, when the first chunk starts with the same line) and the overlap the chunker
    carried over from the first are left out. Pure."""
    head, _, body = second.partition("\n")
    if body and first.partition("\n")[0] == head:
        second = body
    # An overlap is at least OVERLAP_MIN characters: a shorter match is as likely a coincidence.
    probe = second[:OVERLAP_MIN]
    start = first.find(probe) if len(probe) == OVERLAP_MIN else -1
    while start >= 0:
        if second.startswith(first[start:]):
            return first + second[len(first) - start :]
        start = first.find(probe, start + 1)
    return f"{first}\n{second}"


def with_neighbours(hits: Sequence[Passage], rows: Sequence[Mapping[str, Any]], chunks: int) -> list[Passage]:
    """Each hit joined with its neighbouring chunks (``rows``: Milvus query results, ``chunks`` a
    side), best first; a hit that lies in a better hit's window is dropped, its text being there
    already, and a window stops short of a better hit's. Pure."""
    by_key: dict[tuple[str, int], str] = {}
    for r in rows:
        c = _chunk(r.get(METADATA))
        if c is not None:
            by_key[(str(r[SOURCE]), c)] = str(r[TEXT])  # the query asks for both fields
    out: list[Passage] = []
    covered: set[tuple[str, int]] = set()
    for p in hits:
        c = _chunk(p.metadata)
        if c is None:
            out.append(p)
            continue
        if (p.source, c) in covered:
            continue
        text, first, last = p.text, c, c
        for step in (-1, 1):  # back, then on; each side stops at a gap or a better hit's window
            for i in range(c + step, c + step * (chunks + 1), step):
                near = by_key.get((p.source, i))
                if near is None or (p.source, i) in covered:
                    break
                text = join_chunks(near, text) if step < 0 else join_chunks(text, near)
                first, last = min(first, i), max(last, i)
        covered.update((p.source, i) for i in range(first, last + 1))
        meta = {**p.metadata, "window": [first, last]}
        out.append(Passage(id=p.id, text=text, score=p.score, source=p.source, metadata=meta))
    return out


class Retriever:
    def __init__(
        self,
        uri: str,
        collection: str,
        embedder: Embedder,
        *,
        token: str = "",
        user: str = "",
        password: str = "",
        database: str = "default",
        search_params: Mapping[str, Any] | None = None,
        metric: str = "COSINE",
        timeout: float = 10.0,
        client: Any | None = None,
        hybrid: Hybrid | None = None,
    ) -> None:
        self.uri = uri
        self.collection = collection
        self.embedder = embedder
        self.metric = metric.upper()
        self.search_params = dict(search_params or {})
        self.timeout = timeout
        self.hybrid = hybrid
        self._credentials = {
            "token": token,
            "user": user,
            "password": password,
            "db_name": "" if database == "default" else database,
        }
        self._client = client
        # Clients replaced after a failure. Not closed until close(): other searches may still be in
        # flight on them, and closing a channel cancels its calls (a CancelledError no caller expects).
        self._retired: list[Any] = []

    @classmethod
    def for_index(
        cls,
        spec: Any,
        *,
        uri: str | None = None,
        token: str = "",
        user: str = "",
        password: str = "",
        api_key: str | None = None,
        embedder: Embedder | None = None,
        timeout: float = 10.0,
    ) -> Retriever:
        """From a VectorIndexSpec (pydantic model or same attributes); ``uri`` overrides spec.milvus.uri (managed
        Milvus).
        ``timeout`` bounds each Milvus call (the Retrieval tool passes its own timeoutSeconds)."""
        target = uri or spec.milvus.uri
        if not target:
            raise ValueError(
                "a managed Milvus has no uri in the spec: pass the endpoint from VectorIndex status.endpoint"
            )
        emb = embedder or make_embedder(
            EmbeddingSettings.from_spec(spec.embedding, dimension=spec.dimension, api_key=api_key)
        )
        full_text = getattr(spec, "full_text", None)
        return cls(
            target,
            spec.collection,
            emb,
            token=token,
            user=user,
            password=password,
            database=spec.milvus.database,
            search_params=spec.index.search_params,
            metric=spec.metric,
            timeout=timeout,
            hybrid=Hybrid(full_text.rrf_k, full_text.candidates) if full_text is not None else None,
        )

    def _milvus(self) -> Any:
        if self._client is None:
            from pymilvus import AsyncMilvusClient

            # dedicated: pymilvus otherwise shares one channel per address process-wide, bound to
            # the event loop that opened it; a Retriever must work in whatever loop it runs in. Its
            # keepalive is CHANNEL_OPTIONS': a worker idles between a task's searches.
            self._client = AsyncMilvusClient(
                uri=self.uri, timeout=self.timeout, dedicated=True, grpc_options=CHANNEL_OPTIONS, **self._credentials
            )
        return self._client

    async def _embed(self, texts: list[str]) -> list[list[float]]:
        # The encoder is CPU-bound and releases the GIL: keep it off the event loop.
        vectors = await asyncio.to_thread(self.embedder.embed, texts)
        return [v.tolist() for v in vectors]

    async def search_many(
        self, queries: Sequence[str], top_k: int = 5, filter: str | None = None, read_around: int = 0
    ) -> list[list[Passage]]:
        """Several queries in one embedding batch and one Milvus call (and, reading around, one
        query for all their neighbours)."""
        if not 1 <= top_k <= MAX_TOP_K:
            raise ValueError(f"top_k must be within 1..{MAX_TOP_K}")
        if not 0 <= read_around <= READ_AROUND_MAX:
            raise ValueError(f"read_around must be within 0..{READ_AROUND_MAX}")
        if not queries or any(not q.strip() for q in queries):
            raise ValueError("queries must be non-empty text")
        vectors = await self._embed(list(queries))

        async def found(client: Any) -> list[list[Passage]]:
            if self.hybrid is not None:
                fused = [self._hybrid(client, q, v, top_k, filter) for q, v in zip(queries, vectors, strict=True)]
                return [to_passages(hits, "IP") for hits in await asyncio.gather(*fused)]
            results = await client.search(
                self.collection,
                data=vectors,
                filter=filter or "",
                limit=top_k,
                output_fields=[TEXT, SOURCE, METADATA],
                search_params={"metric_type": self.metric, "params": self.search_params},
                anns_field=VECTOR,
                timeout=self.timeout,
            )
            return [to_passages(hits, self.metric) for hits in results]

        lists = await self._read(found)
        if read_around == 0:
            return lists
        expr = windows_filter([p for hits in lists for p in hits], read_around, filter)
        if expr is None:
            return lists

        async def neighbours(client: Any) -> list[dict[str, Any]]:
            rows = await client.query(
                self.collection, filter=expr, output_fields=[TEXT, SOURCE, METADATA], timeout=self.timeout
            )
            return list(rows)

        rows = await self._read(neighbours)
        return [with_neighbours(hits, rows, read_around) for hits in lists]

    async def _read(self, call: Callable[[Any], Awaitable[T]]) -> T:
        """One read of Milvus, retried on a fresh channel after a bounded backoff when Milvus is unavailable."""
        for attempt in range(len(RETRY_DELAYS_SECONDS) + 1):
            client = self._milvus()
            try:
                return await call(client)
            except Exception as e:  # noqa: BLE001 - translated to our error types
                err = translate(e)
                if not isinstance(err, MilvusUnavailable) or attempt == len(RETRY_DELAYS_SECONDS):
                    raise err from e
                self._retire(client)
                await asyncio.sleep(RETRY_DELAYS_SECONDS[attempt])
        raise AssertionError("unreachable")

    async def _hybrid(self, client: Any, query: str, vector: list[float], top_k: int, filter: str | None) -> Any:
        """One query's fused hits: dense and BM25 searched in one request, fused by Milvus' RRF."""
        from pymilvus import AnnSearchRequest, RRFRanker

        assert self.hybrid is not None
        limit = max(top_k, self.hybrid.candidates)
        expr = filter or None
        param = {"metric_type": self.metric, "params": self.search_params}
        dense = AnnSearchRequest(data=[vector], anns_field=VECTOR, param=param, limit=limit, expr=expr)
        # The query's text goes to Milvus as is: its BM25 function analyses it as it did the chunks.
        words = AnnSearchRequest(data=[query], anns_field=SPARSE, param={"metric_type": "BM25"}, limit=limit, expr=expr)
        results = await client.hybrid_search(
            self.collection,
            [dense, words],
            RRFRanker(self.hybrid.rrf_k),
            limit=top_k,
            output_fields=[TEXT, SOURCE, METADATA],
            timeout=self.timeout,
        )
        return results[0]

    def _retire(self, client: Any) -> None:
        """The next search opens a fresh client, unless a concurrent search already replaced this one."""
        if self._client is client:
            self._client = None
            self._retired.append(client)

    async def search(
        self, query: str, top_k: int = 5, filter: str | None = None, read_around: int = 0
    ) -> list[Passage]:
        return (await self.search_many([query], top_k, filter, read_around))[0]

    async def close(self) -> None:
        clients, self._retired = [*self._retired, self._client], []
        self._client = None
        for client in clients:
            if client is not None:
                try:
                    await client.close()
                except Exception:  # noqa: BLE001 - a retired channel may be broken already
                    pass

    async def __aenter__(self) -> Retriever:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
