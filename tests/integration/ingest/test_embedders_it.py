"""The embedders and URL sources against real things: the packaged MiniLM weights, a local
OpenAI-compatible HTTP endpoint (answering with MiniLM), and a local web server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from agentfleet_runtime.ingest.chunking import chunk_text
from agentfleet_runtime.ingest.documents import Document, DocumentRef, Failure, fetch_url
from agentfleet_runtime.ingest.embedders import make_embedder
from agentfleet_runtime.ingest.embedding import EmbeddingError, EmbeddingSettings

pytestmark = pytest.mark.integration

REFERENCE = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
# sentence-transformers' published similarity matrix for these sentences under all-MiniLM-L6-v2.
REFERENCE_SIMILARITY = np.array([[1.0, 0.6660, 0.1046], [0.6660, 1.0, 0.1411], [0.1046, 0.1411, 1.0]])


def test_fp32_graph_reproduces_sentence_transformers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from e2e.harness.installers import ensure_ingest_packages

    ensure_ingest_packages()
    monkeypatch.setenv("AGENTFLEET_CACHE_DIR", str(tmp_path))  # builds the graph from the weights, no cache
    from agentfleet_runtime.ingest.minilm import MiniLMEmbedder

    e = MiniLMEmbedder(precision="fp32")
    assert list(tmp_path.glob("minilm-fp32-*.onnx"))
    v = e.embed(REFERENCE)
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(v @ v.T, REFERENCE_SIMILARITY, atol=1e-3)
    # Batching pads; padding must not change any vector.
    one_by_one = np.vstack([e.embed([s]) for s in REFERENCE])
    np.testing.assert_allclose(one_by_one, v, atol=1e-5)


def test_int8_stays_close_to_fp32(embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AGENTFLEET_CACHE_DIR", str(tmp_path))
    from agentfleet_runtime.ingest.minilm import MiniLMEmbedder

    fp32 = MiniLMEmbedder(precision="fp32")
    texts = REFERENCE + [
        f"Project {i} is maintained by someone in a city far away, and written in Go." for i in range(20)
    ]
    cos = (embedder.embed(texts) * fp32.embed(texts)).sum(axis=1)
    assert cos.min() > 0.97
    sim = embedder.embed(REFERENCE)
    np.testing.assert_allclose(sim @ sim.T, REFERENCE_SIMILARITY, atol=0.04)
    # Activations are quantized per batch, so a text's vector depends slightly on its batch mates:
    # a query embedded alone still lands within int8 noise of the same text embedded among chunks.
    alone = np.vstack([embedder.embed([t]) for t in texts[:5]])
    assert ((alone * embedder.embed(texts)[:5]).sum(axis=1) > 0.98).all()


@pytest.mark.parametrize("budget", [128, 254])  # the default chunk size, and the model's whole window
def test_int8_stays_close_to_fp32_on_real_chunks(
    embedder, budget: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """Chunks the ingestion pipeline really produces (generated corpus, sentence packing, full
    batches of mixed lengths): int8 must stay within quantization noise of fp32 at every length."""
    from agentfleet_runtime.ingest.chunking import chunk_document
    from agentfleet_runtime.ingest.minilm import MiniLMEmbedder
    from agentfleet_runtime.ingest.pipeline import IngestOptions
    from e2e.bench import ingest_corpus as gen

    monkeypatch.setenv("AGENTFLEET_CACHE_DIR", str(tmp_path))
    fp32 = MiniLMEmbedder(precision="fp32")
    docs = gen.generate(40, seed=5, filler_paragraphs=12).documents  # id -> text
    overlap = IngestOptions().overlap_tokens
    texts = [
        c.text
        for doc_id, text in docs.items()
        for c in chunk_document(doc_id, text, embedder.count_tokens, budget, overlap)
    ]
    lengths = embedder.count_tokens(texts)
    assert len(texts) >= 64 and max(lengths) > budget * 3 // 4  # full batches, near the budget
    cos = (embedder.embed(texts) * fp32.embed(texts)).sum(axis=1)
    print(f"budget {budget}: {len(texts)} chunks, int8 vs fp32 cosine min {cos.min():.4f} mean {cos.mean():.4f}")
    assert cos.min() > 0.97 and cos.mean() > 0.985


def test_minilm_tokenizer_drives_the_chunk_budget(embedder) -> None:  # type: ignore[no-untyped-def]
    text = " ".join(f"Sentence {i} mentions zarvokization and other wordpieces." for i in range(200))
    chunks = chunk_text(text, embedder.count_tokens, max_tokens=64, overlap_tokens=8)
    assert all(embedder.count_tokens([t])[0] <= 64 for t, _ in chunks)
    assert embedder.max_input_tokens == 254


class _EmbeddingsHandler(BaseHTTPRequestHandler):
    backend = None  # set per server
    failures_left = 0
    seen_auth: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen_auth.append(self.headers.get("Authorization", ""))
        if self.path != "/v1/embeddings":
            self.send_error(404)
            return
        if type(self).failures_left > 0:
            type(self).failures_left -= 1
            self.send_error(503, "warming up")
            return
        if body.get("model") != "minilm":
            self.send_error(400, "unknown model")
            return
        vectors = type(self).backend.embed(body["input"])  # type: ignore[union-attr]
        data = [{"object": "embedding", "index": i, "embedding": (v * 3).tolist()} for i, v in enumerate(vectors)]
        payload = json.dumps({"object": "list", "data": list(reversed(data)), "model": body["model"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def embeddings_server(embedder) -> Iterator[str]:  # type: ignore[no-untyped-def]
    handler = type("H", (_EmbeddingsHandler,), {"backend": embedder, "failures_left": 0, "seen_auth": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    server.handler = handler  # type: ignore[attr-defined]
    yield server  # type: ignore[misc]
    server.shutdown()
    server.server_close()


def test_openai_endpoint_embedder(embeddings_server, embedder) -> None:  # type: ignore[no-untyped-def]
    base = f"http://127.0.0.1:{embeddings_server.server_address[1]}/v1"
    embeddings_server.handler.failures_left = 2  # two 503s: retried
    # One request for the three texts, so the server's int8 batch matches embedder.embed(REFERENCE)
    # exactly (dynamic quantization scales activations per batch).
    e = make_embedder(
        EmbeddingSettings(
            provider="OpenAI", model="minilm", endpoint=base, api_key="sk-test", batch_size=3, dimension=384
        )
    )
    e._sleep = lambda s: None  # type: ignore[attr-defined]
    v = e.embed(REFERENCE)
    np.testing.assert_allclose(v, embedder.embed(REFERENCE), atol=1e-5)  # order restored, normalised
    assert set(embeddings_server.handler.seen_auth) == {"Bearer sk-test"}
    small = make_embedder(EmbeddingSettings(provider="OpenAI", model="minilm", endpoint=base, batch_size=2)).embed(
        REFERENCE
    )
    assert ((small * v).sum(axis=1) > 0.98).all()  # batches of 2 and 1: same vectors up to int8 noise
    bad = make_embedder(EmbeddingSettings(provider="OpenAI", model="other", endpoint=base))
    with pytest.raises(EmbeddingError, match="HTTP 400") as err:
        bad.embed(["x"])
    assert not err.value.retryable
    with pytest.raises(EmbeddingError, match="384 values per vector, expected 768"):
        make_embedder(EmbeddingSettings(provider="OpenAI", model="minilm", endpoint=base, dimension=768)).embed(["x"])
    with pytest.raises(EmbeddingError, match="produces 384 values but the index expects 768"):
        make_embedder(EmbeddingSettings(provider="Local", dimension=768))


class _Pages(BaseHTTPRequestHandler):
    calls: dict[str, int] = {}

    def do_GET(self) -> None:  # noqa: N802
        n = _Pages.calls[self.path] = _Pages.calls.get(self.path, 0) + 1
        if self.path == "/flaky" and n < 2:
            self.send_error(502)
            return
        pages = {
            "/doc.md": ("text/markdown", b"# Doc\n\nHello."),
            "/flaky": ("text/plain", b"Came back."),
            "/page": ("text/html", b"<p>Hi <b>there</b></p><script>x</script>"),
        }
        if self.path == "/big":
            body = b"a" * 5000
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path not in pages:
            self.send_error(404)
            return
        ctype, body = pages[self.path]
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_url_documents(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:

        def get(path: str) -> Document | Failure:
            return fetch_url(DocumentRef(base + path, base + path), 1000, timeout=5, retries=2, sleep=lambda s: None)

        doc = get("/doc.md")
        assert isinstance(doc, Document) and doc.text == "# Doc\n\nHello." and doc.metadata == {"url": base + "/doc.md"}
        assert get("/page").text == "Hi there"  # type: ignore[union-attr]
        assert get("/flaky").text == "Came back."  # type: ignore[union-attr]
        assert get("/missing") == Failure(base + "/missing", "HTTP 404 Not Found")
        big = get("/big")
        assert isinstance(big, Failure) and big.reason.startswith("too large")
        dead = fetch_url(
            DocumentRef("http://127.0.0.1:9/x", "http://127.0.0.1:9/x"),
            1000,
            timeout=1,
            retries=1,
            sleep=lambda s: None,
        )
        assert isinstance(dead, Failure) and "after 2 attempts" in dead.reason
    finally:
        server.shutdown()
        server.server_close()
