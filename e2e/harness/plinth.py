"""A small knowledge base of invented facts ("the Plinth platform") for real-agent tests and the
CPU model bench: no model knows these facts from training, so an answer that states one came
through a search. Collections are embedded with the real MiniLM encoder the ingestion path runs
(int8 ONNX, ``encoder()``), so the agents' searches meet the retrieval a fleet gives them; the
bag-of-words stand-in remains for retrieval-plumbing tests that check filters, not relevance."""

from __future__ import annotations

import functools
import hashlib
import re

import numpy as np

DIM = 128

DOCS = [
    (
        "zorblat.html",
        "Zorblat scheduler. The zorblat scheduler wakes up every 37 seconds by default (zorblat_interval = 37s).",
    ),
    (
        "frobnicate.html",
        "Frobnicate queue. The frobnicate queue waits 5 seconds before retrying a failed job (frobnicate_delay = 5s).",
    ),
    ("quarkle.html", "Quarkle cache. The quarkle cache keeps at most 900 entries; the oldest entry is evicted first."),
    (
        "history.html",
        (
            "Release history. The scheduler, the queue and the cache were first released in version 2.4 of the Plinth "
            "platform."
        ),
    ),
    (
        "snorkel.html",
        "Snorkel exporter. The snorkel exporter listens on port 9464 and exports metrics in the OpenMetrics format.",
    ),
    (
        "wibble.html",
        "Wibble tokens. A wibble token expires after 12 hours; refreshing one needs the wibble_refresh scope.",
    ),
]

SYSTEM = (
    "You answer questions about the Plinth platform. Search the documentation first and answer only from the passages "
    "you found, "
    "in one short sentence, citing the source of the passage."
)
DELEGATE = SYSTEM + (
    " When a question compares two things, use the delegate action: give each thing to its own sub-agent as one "
    "goal, then answer from their answers."
)

# (question, facts the answer must state (any of each tuple), source it must cite)
DEV_QUESTIONS = [
    (
        "How long does the frobnicate queue wait before it retries a failed job?",
        [("5 seconds", "5s", "5 s")],
        ["frobnicate.html"],
    ),
    ("Which port does the snorkel exporter listen on?", [("9464",)], ["snorkel.html"]),
    ("When does a wibble token expire?", [("12 hours", "12h")], ["wibble.html"]),
    ("Which entry does the quarkle cache evict first?", [("oldest",)], ["quarkle.html"]),
    ("In which Plinth version was the scheduler first released?", [("2.4",)], ["history.html"]),
    (
        "Compare the snorkel exporter port with the zorblat scheduler interval.",
        [("9464",), ("37",)],
        ["snorkel.html", "zorblat.html"],
    ),
]


class BagOfWords:
    """Hashed word counts, L2-normalised: a deterministic encoder for tests (no model files)."""

    name, max_input_tokens = "bow", 512

    def __init__(self, dimension: int = DIM) -> None:
        self.dimension = dimension

    def count_tokens(self, texts):
        return [len(t.split()) for t in texts]

    def embed(self, texts):
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in re.findall(r"\w+", t.lower()):
                out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % self.dimension] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


@functools.cache
def encoder():
    """The real MiniLM encoder of the ingestion path (int8 ONNX, built once into the cache)."""
    from agentfleet_runtime.ingest.minilm import MiniLMEmbedder

    return MiniLMEmbedder()


def make_collection(uri: str, name: str, docs=DOCS, embedder=None, full_text: bool = True) -> None:
    """A collection of ``docs`` ((source, text) or (source, text, metadata)) made the way the
    operator makes a VectorIndex's (CollectionManager, then the ingestion sink's upserts), embedded
    by ``embedder`` (default: the real MiniLM), with spec.fullText's BM25 field unless ``full_text``
    is off. FLAT: exact search over a handful of documents."""
    from agentfleet_milvus import (
        METADATA,
        SOURCE,
        TEXT,
        VECTOR,
        CollectionManager,
        CollectionSpec,
        MilvusSink,
        MilvusTarget,
    )

    embedder = embedder or encoder()
    target = MilvusTarget(uri=uri)
    spec = CollectionSpec(
        name, embedder.dimension, index_type="FLAT", full_text_analyzer="standard" if full_text else None
    )
    CollectionManager.connect(target, spec).ensure(wait_loaded=True)
    vectors = embedder.embed([d[1] for d in docs])
    rows = [
        {"id": d[0], TEXT: d[1], SOURCE: d[0], METADATA: d[2] if len(d) > 2 else {}, VECTOR: v.tolist()}
        for d, v in zip(docs, vectors, strict=True)
    ]
    sink = MilvusSink.connect(target, name)
    sink.upsert(rows)
    sink.client.flush(name)


def fleet_config(
    redis_url: str,
    fleet: str,
    model_url: str,
    *,
    system: str = SYSTEM,
    policies=(),
    budgets=None,
    mode: str = "JSONSchema",
    repairs: int = 1,
) -> dict:
    """A runtime config document: search + delegate tools, JSON decisions."""
    return {
        "fleet": fleet,
        "redisUrl": redis_url,
        # 120 s per call timed out on this shared machine (55-68 s per 1.5B step at load 16).
        "model": {"baseUrl": model_url, "name": "qwen", "timeoutSeconds": 300, "maxRetries": 0, "maxOutputTokens": 200},
        "systemPrompt": system,
        "tools": [
            {
                "name": "search",
                "type": "Retrieval",
                "description": "Search the Plinth documentation.",
                "retrieval": {"topK": 2, "cacheTtlSeconds": 0},
            },
            {
                "name": "delegate",
                "type": "Spawn",
                "description": "Give each goal to its own sub-agent and get their answers.",
                "timeoutSeconds": 300,
            },
        ],
        "decisions": {"mode": mode, "repairAttempts": repairs, "toolPolicies": list(policies)},
        "budgets": {"maxSteps": 6, "maxFanOut": 2, "maxDepth": 1, "timeoutSeconds": 1500, **(budgets or {})},
        "retry": {"maxAttempts": 1, "visibilityTimeoutSeconds": 300},
        "worker": {"concurrency": 4, "metricsPort": 0},
    }
