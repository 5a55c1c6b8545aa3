"""What a drain reads from a real engine's /metrics (`inflight.read_in_flight`): the requests a
replica holds, 0 when it is idle, so a drained replica is deleted once idle rather than after
lifecycle.drainTimeoutSeconds. On vLLM (the package's engine) and on llama-server (the demo's CPU
engine, SmolLM2 on the binary every tier runs), whose series are llamacpp:* and none of vLLM's."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest

from agentfleet.controllers.modelreplicaset.inflight import read_in_flight
from e2e.harness import llama_server, vllm
from e2e.harness.installers import smollm_gguf

pytestmark = pytest.mark.integration


def _complete(api: str, model: str, max_tokens: int, key: str | None, errors: list[BaseException]) -> None:
    # ignore_eos: the request holds its slot for all max_tokens, whatever the model would say.
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Count upwards from 1."}],
        "max_tokens": max_tokens,
        "ignore_eos": True,
    }
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    req = urllib.request.Request(api + "/chat/completions", data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=300) as resp:  # noqa: S310 - 127.0.0.1
            resp.read()
    except BaseException as e:  # noqa: BLE001 - reported by _sending
        errors.append(e)


@contextmanager
def _sending(api: str, model: str, n: int, max_tokens: int, key: str | None = None) -> Iterator[list[threading.Thread]]:
    """N requests sent at once, each holding its slot for ``max_tokens``; every one must be served."""
    errors: list[BaseException] = []
    args = (api, model, max_tokens, key, errors)
    threads = [threading.Thread(target=_complete, args=args, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    try:
        yield threads
    finally:
        for t in threads:
            t.join(timeout=300)
    assert not errors, errors


def _most_seen(port: int, while_alive: list[threading.Thread]) -> int:
    """The largest in-flight count read while the requests run (every read must succeed)."""
    most = 0
    while any(t.is_alive() for t in while_alive):
        n = read_in_flight("127.0.0.1", port, timeout=5.0)
        assert n is not None, "the engine's /metrics gave no in-flight count"
        most = max(most, n)
        time.sleep(0.2)
    return most


def test_a_drain_reads_llama_servers_requests_and_its_idle(tmp_path) -> None:
    with llama_server.serving(tmp_path, alias="smollm2-135m", timeout=180, gguf=smollm_gguf(), slots=2) as api:
        port = urlsplit(api).port
        assert port is not None
        assert read_in_flight("127.0.0.1", port, timeout=5.0) == 0
        # 4 requests on 2 slots: 2 processing and 2 deferred (waiting for a slot), all held.
        with _sending(api, "smollm2-135m", 4, 300) as threads:
            assert _most_seen(port, threads) == 4
        assert read_in_flight("127.0.0.1", port, timeout=5.0) == 0


def test_a_drain_reads_vllms_requests_and_its_idle(engine: vllm.Engine) -> None:
    assert read_in_flight("127.0.0.1", engine.port, timeout=5.0) == 0
    with _sending(engine.api, vllm.SERVED, 2, 64, vllm.API_KEY) as threads:
        assert _most_seen(engine.port, threads) == 2
    assert read_in_flight("127.0.0.1", engine.port, timeout=5.0) == 0
