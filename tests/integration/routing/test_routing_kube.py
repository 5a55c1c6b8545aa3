"""The EndpointSlice watcher with the real kubernetes client against a small fake API server on
127.0.0.1 (list + watch of discovery.k8s.io/v1 EndpointSlices): the replica set follows the watch
live (scale-up, drain, slice deletion) and survives the watch stream ending."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web
from kubernetes import client

from agentfleet_runtime.routing.kube import EndpointSliceSource

pytestmark = pytest.mark.integration
PATH = "/apis/discovery.k8s.io/v1/namespaces/ns/endpointslices"


def slice_(name: str, *pods: tuple[str, str, bool]) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "resourceVersion": "1",
            "labels": {"kubernetes.io/service-name": "big-replicas"},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8000, "protocol": "TCP"}],
        "endpoints": [
            {
                "addresses": [ip],
                "conditions": {"ready": ready},
                "targetRef": {"kind": "Pod", "name": pod, "namespace": "ns"},
            }
            for pod, ip, ready in pods
        ],
    }


class FakeApi:
    def __init__(self) -> None:
        self.slices: dict[str, dict[str, Any]] = {}
        self.events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.selectors: list[str] = []
        self.lists = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.selectors.append(request.query.get("labelSelector", ""))
        if request.query.get("watch") not in ("true", "True", "1"):
            self.lists += 1
            return web.json_response(
                {
                    "apiVersion": "discovery.k8s.io/v1",
                    "kind": "EndpointSliceList",
                    "metadata": {"resourceVersion": "1"},
                    "items": list(self.slices.values()),
                }
            )
        resp = web.StreamResponse()
        resp.content_type = "application/json"
        await resp.prepare(request)
        while True:
            event = await self.events.get()
            if event is None:  # end this watch stream, as the API server does at its timeout
                break
            await resp.write(json.dumps(event).encode() + b"\n")
        await resp.write_eof()
        return resp

    def emit(self, kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            self.slices.pop(obj["metadata"]["name"], None)
        else:
            self.slices[obj["metadata"]["name"]] = obj
        self.events.put_nowait({"type": kind, "object": obj})


async def until(cond: Any, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "condition not reached"
        await asyncio.sleep(0.05)


def test_the_replica_set_follows_the_endpointslices_live() -> None:
    async def body() -> None:
        api = FakeApi()
        api.slices["s1"] = slice_("s1", ("big-0", "10.0.0.1", True), ("big-1", "10.0.0.2", False))
        app = web.Application()
        app.router.add_get(PATH, api.handle)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        conf = client.Configuration(host=f"http://127.0.0.1:{port}")
        source = EndpointSliceSource.for_model_replica_set("ns", "big", api_client=client.ApiClient(conf))
        try:
            await source.start()
            names = lambda: [e.name for e in source.endpoints()]  # noqa: E731
            assert names() == ["big-0"] and source.endpoints()[0].base_url == "http://10.0.0.1:8000/v1"
            assert api.selectors[0] == "kubernetes.io/service-name=big-replicas"
            api.emit(
                "MODIFIED", slice_("s1", ("big-0", "10.0.0.1", True), ("big-1", "10.0.0.2", True))
            )  # big-1 became ready
            await until(lambda: names() == ["big-0", "big-1"])
            api.emit("ADDED", slice_("s2", ("big-2", "10.0.0.3", True)))  # scale-up into a second slice
            await until(lambda: names() == ["big-0", "big-1", "big-2"])
            api.emit("MODIFIED", slice_("s1", ("big-1", "10.0.0.2", True)))  # big-0 drained: left the Service
            await until(lambda: names() == ["big-1", "big-2"])
            api.events.put_nowait(None)  # the watch ends: the source re-lists and watches again
            await until(lambda: api.lists >= 2)
            api.emit("DELETED", slice_("s2"))
            await until(lambda: names() == ["big-1"])
        finally:
            thread = source._thread
            api.events.put_nowait(None)
            await source.close()
            await runner.cleanup()
        assert thread is not None and not thread.is_alive()

    asyncio.run(asyncio.wait_for(body(), 60))
