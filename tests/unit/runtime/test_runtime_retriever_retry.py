"""The Retriever's retry when Milvus is unavailable or slow (retriever.py): a bounded backoff on a
fresh client, and never a closed channel under another search still in flight (closing a gRPC
channel cancels its calls: a CancelledError killed the one-shot baseline and lost a worker's
search). The Milvus clients are fakes: the logic under test is ours; tests/integration searches a
real Milvus Lite."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from agentfleet_runtime.tools import retriever as retriever_module
from agentfleet_runtime.tools.retriever import Retriever

HITS = [[{"id": 1, "distance": 0.9, "entity": {"text": "checkpoint_timeout is 5min", "source": "wal.html"}}]]


class Embedder:
    def embed(self, texts):
        return [np.zeros(4, dtype=np.float32) for _ in texts]


class Client:
    """A Milvus client whose searches for "slow" wait for ``release``, for "fail" time out ``fails``
    times; close() cancels what is in flight, as a closed gRPC channel does."""

    def __init__(self, fails: int = 0) -> None:
        self.fails, self.closed, self.release = fails, False, asyncio.Event()
        self.pending: list[asyncio.Future] = []

    async def search(self, collection, data, **kw):
        if self.closed:
            raise RuntimeError("search on a closed channel")
        if self.fails:
            self.fails -= 1
            raise TimeoutError("Retry timeout: 30.0s")
        waiter = asyncio.ensure_future(self.release.wait())
        self.pending.append(waiter)
        await waiter
        return HITS

    async def close(self):
        self.closed = True
        for w in self.pending:
            w.cancel()


class Retrying(Retriever):
    def __init__(self, clients: list[Client]) -> None:
        super().__init__("http://milvus:19530", "docs", Embedder(), client=clients[0])
        self.fresh = clients[1:]

    def _milvus(self):
        if self._client is None:
            self._client = self.fresh.pop(0)
        return self._client


@pytest.fixture(autouse=True)
def no_waits(monkeypatch):
    monkeypatch.setattr(retriever_module, "RETRY_DELAYS_SECONDS", (0.0, 0.0), raising=False)


def test_a_retry_never_closes_the_channel_under_a_search_in_flight():
    async def run():
        first, second = Client(), Client()
        r = Retrying([first, second])
        slow = asyncio.ensure_future(r.search("slow"))
        await asyncio.sleep(0.01)  # the slow search is in flight on the first client
        first.fails = 1
        second.release.set()
        failed_once = await r.search("fail")  # times out on the first client, retried on the second
        first.release.set()
        found = await slow
        assert not first.closed  # retired, not closed, while its search ran
        await r.close()
        assert first.closed and second.closed
        return found, failed_once

    found, failed_once = asyncio.run(asyncio.wait_for(run(), 5))
    assert [p.source for p in found] == [p.source for p in failed_once] == ["wal.html"]


def test_retries_are_bounded():
    async def run():
        clients = [Client(fails=1) for _ in range(4)]
        r = Retrying(clients)
        with pytest.raises(Exception, match="unavailable"):
            await r.search("fail")
        return clients

    clients = asyncio.run(asyncio.wait_for(run(), 5))
    assert [c.fails for c in clients] == [0, 0, 0, 1]  # three attempts, each on a fresh client
