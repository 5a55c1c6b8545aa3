"""The Prometheus series the routing client writes, read back from its registry: each attempt's
outcome and error reason, the ejected gauge, latency observations, in-flight counts, the hedge
threshold, and what the client tells its abort watch when it cancels an attempt.

The other client tests check routing decisions and read a few counters along the way; these pin
the series themselves (their label values and numbers), which dashboards and alerts read.
Everything runs on the simulator's virtual clock started at t=1000, so durations are exact and a
duration computed from the absolute clock (``now + started``) cannot pass for one taken from it.
"""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from agentfleet_runtime.model.client import ModelError, ModelRequest
from agentfleet_runtime.routing.client import RoutingModelClient, _tenant_of
from agentfleet_runtime.routing.metrics import RoutingMetrics
from agentfleet_runtime.routing.settings import Endpoint, RoutingSettings, Tier
from agentfleet_runtime.routing.sources import StaticSource
from agentfleet_sim import run_virtual

T0 = 1000.0  # the virtual clock's start: far from 0, so loop.time() and a duration differ


def answer(name: str) -> dict[str, Any]:
    return {
        "choices": [{"message": {"content": name}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2},
        "model": "m",
    }


class Engine:
    """One fake replica per endpoint name. ``mode``: ok, fail (500), conn (no status), bad (400,
    not retryable), crash (not a ModelError), hang. ``aborting``: the base URLs whose engine
    counts a cancelled request as aborted, half a second after the client went away (vLLM)."""

    def __init__(self, latency: float = 0.25) -> None:
        self.latency = latency
        self.per: dict[str, float] = {}  # a replica's own latency, where it differs
        self.mode: dict[str, str] = {}
        self.aborting: set[str] = set()
        self.aborted: dict[str, float] = {}
        self.timeouts: list[float] = []

    async def send(self, endpoint: Endpoint, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        self.timeouts.append(timeout)
        mode = self.mode.get(endpoint.name, "ok")
        try:
            await asyncio.sleep(3600 if mode == "hang" else self.per.get(endpoint.name, self.latency))
        except asyncio.CancelledError:
            if endpoint.base_url in self.aborting:
                asyncio.get_running_loop().call_later(0.5, self._abort, endpoint.base_url)
            raise
        if mode == "fail":
            raise ModelError(f"{endpoint.name} answered 500", status=500)
        if mode == "conn":
            raise ModelError(f"{endpoint.name} refused the connection")
        if mode == "bad":
            raise ModelError("bad request", status=400, retryable=False)
        if mode == "crash":
            raise RuntimeError("transport bug")
        return answer(endpoint.name)

    def _abort(self, base_url: str) -> None:
        self.aborted[base_url] = self.aborted.get(base_url, 0.0) + 1

    async def abort_count(self, base_url: str) -> float | None:
        if not base_url.startswith("http://"):
            raise LookupError(base_url)  # no such replica: unreadable, as over HTTP
        return self.aborted.get(base_url, 0.0)

    async def close(self) -> None:
        return None


def client_for(engine: Engine, n: int = 1, **routing: Any) -> tuple[RoutingModelClient, RoutingMetrics]:
    src = StaticSource([Endpoint(f"r{i}", f"http://x{i}/v1") for i in range(n)])
    metrics = RoutingMetrics(CollectorRegistry())
    settings = RoutingSettings(**{"ejection_consecutive_errors": 100, "ejection_seconds": 5, **routing})
    client = RoutingModelClient(
        (Tier("big", "big", settings), src),
        transport=engine,
        metrics=metrics,
        timeout=0.5,
        max_retries=0,
        backoff_base=0.001,
        rng=random.Random(0),
    )
    return client, metrics


def req(task: str = "t1", kind: str = "step") -> ModelRequest:
    return ModelRequest(messages=[{"role": "user", "content": "hi"}], task_id=task, root_id=task, kind=kind)  # type: ignore[arg-type]


def sample(metrics: RoutingMetrics, name: str, **labels: str) -> float | None:
    """The series' value, None when the client never wrote that series."""
    return metrics.registry.get_sample_value(name, labels)


def calls(metrics: RoutingMetrics, outcome: str, replica: str = "r0") -> float | None:
    return sample(metrics, "agentfleet_routing_replica_calls_total", model="big", replica=replica, outcome=outcome)


def errors(metrics: RoutingMetrics, reason: str, replica: str = "r0") -> float | None:
    return sample(metrics, "agentfleet_routing_replica_errors_total", model="big", replica=replica, reason=reason)


def test_each_attempt_outcome_and_error_reason_has_its_label() -> None:
    async def body() -> None:
        engine = Engine()
        client, m = client_for(engine)
        await client.complete(req())
        assert calls(m, "ok") == 1
        for mode in ("fail", "conn", "bad", "crash"):
            engine.mode["r0"] = mode
            with pytest.raises(ModelError) as raised:
                await client.complete(req())
        assert str(raised.value) == "transport bug"  # the crash, as a ModelError with its message
        # every failure that is not a timeout is an "error" attempt; a transport that raised
        # something else than a ModelError too
        assert calls(m, "error") == 4
        assert errors(m, "500") == 1
        assert errors(m, "connection") == 1  # no status: the connection; a crash is no replica error
        engine.mode["r0"] = "hang"
        with pytest.raises(ModelError, match=r"^r0 did not answer within 0\.5 s$"):
            await client.complete(req())
        assert calls(m, "timeout") == 1
        assert errors(m, "timeout") == 1
        # a 400 is the request's fault: no error series for the replica, none under another name
        assert sum(v for v in (errors(m, r) for r in ("500", "400", "connection", "timeout")) if v) == 3
        assert sorted(s.labels["reason"] for s in m.errors.collect()[0].samples if s.name.endswith("_total")) == [
            "500",
            "connection",
            "timeout",
        ]
        assert sorted(s.labels["outcome"] for s in m.calls.collect()[0].samples if s.name.endswith("_total")) == [
            "error",
            "ok",
            "timeout",
        ]
        assert engine.timeouts[0] == 0.5  # the attempt's timeout reaches the transport

    run_virtual(body(), start=T0)


def test_latency_is_observed_per_replica_and_kind_from_the_attempt_start() -> None:
    async def body() -> None:
        engine = Engine(latency=0.25)
        client, m = client_for(engine)
        await client.complete(req(kind="step"))
        await client.complete(req(kind="summary"))
        name = "agentfleet_routing_replica_call_duration_seconds"
        for kind in ("step", "summary"):
            assert sample(m, f"{name}_count", model="big", replica="r0", kind=kind) == 1
            assert sample(m, f"{name}_sum", model="big", replica="r0", kind=kind) == pytest.approx(0.25)
            assert sample(m, f"{name}_bucket", model="big", replica="r0", kind=kind, le="0.25") == 1
            assert sample(m, f"{name}_bucket", model="big", replica="r0", kind=kind, le="0.1") == 0
        engine.mode["r0"] = "fail"
        with pytest.raises(ModelError):
            await client.complete(req(kind="step"))
        assert sample(m, f"{name}_count", model="big", replica="r0", kind="step") == 1  # failures are not latencies

    run_virtual(body(), start=T0)


def test_ejected_gauge_is_one_while_ejected_and_zero_after_a_success() -> None:
    async def body() -> None:
        engine = Engine()
        client, m = client_for(engine, ejection_consecutive_errors=2)
        engine.mode["r0"] = "fail"
        with pytest.raises(ModelError):
            await client.complete(req())
        assert (
            sample(m, "agentfleet_routing_replica_ejected", model="big", replica="r0") is None
        )  # one error: not ejected
        with pytest.raises(ModelError):
            await client.complete(req())
        assert sample(m, "agentfleet_routing_replica_ejected", model="big", replica="r0") == 1
        assert sample(m, "agentfleet_routing_ejections_total", model="big", replica="r0") == 1
        engine.mode["r0"] = "ok"
        await asyncio.sleep(6)  # past the ejection: the probe succeeds
        await client.complete(req())
        assert sample(m, "agentfleet_routing_replica_ejected", model="big", replica="r0") == 0
        assert sample(m, "agentfleet_routing_ejections_total", model="big", replica="r0") == 1

    run_virtual(body(), start=T0)


def test_inflight_gauge_counts_the_calls_on_their_way_and_returns_to_zero() -> None:
    async def body() -> None:
        engine = Engine(latency=1.0)
        client, m = client_for(engine, n=1)
        client.timeout = 5.0
        first = asyncio.ensure_future(client.complete(req("a")))
        second = asyncio.ensure_future(client.complete(req("b")))
        await asyncio.sleep(0.5)
        assert sample(m, "agentfleet_routing_replica_inflight", model="big", replica="r0") == 2
        await asyncio.gather(first, second)
        assert sample(m, "agentfleet_routing_replica_inflight", model="big", replica="r0") == 0
        assert sample(m, "agentfleet_routing_replicas", model="big") == 1

    run_virtual(body(), start=T0)


def test_hedge_threshold_gauge_is_the_learned_percentile_per_kind() -> None:
    async def body() -> None:
        engine = Engine(latency=0.01)
        client, m = client_for(engine, n=4, hedging=True, hedge_max_extra_percent=50)
        for i in range(60):
            await client.complete(req(f"warm-{i}", kind="summary"))
        learned = client.primary.quantile("summary").value()
        assert learned == pytest.approx(0.01)
        assert sample(m, "agentfleet_routing_hedge_threshold_seconds", model="big", kind="summary") == learned
        assert sample(m, "agentfleet_routing_hedge_threshold_seconds", model="big", kind="step") is None

    run_virtual(body(), start=T0)


def test_hedge_results_and_what_each_loser_is_charged() -> None:
    """won / lost / failed per hedged call, and the loser's cost settled into the hedge budget:
    a whole call (12 tokens) on an engine not known to abort, the completion's share written
    before the cancel on one seen to abort (hedging.loser_cost)."""

    async def body() -> None:
        engine = Engine(latency=0.01)
        client, m = client_for(engine, n=2, hedging=True, hedge_max_extra_percent=100)
        pool = client.primary
        r0, r1 = pool.source.endpoints()
        engine.aborting = {r1.base_url}
        homes = {
            r.name: [t for t in (f"task-{i}" for i in range(400)) if pool.order(t, 0)[0].name == r.name]
            for r in (r0, r1)
        }
        for i in range(50):  # min_samples: the delay is known from the 50th answer on, none is hedged
            await client.complete(req(f"warm-{i}"))
        delay = pool.quantile("step").value()
        assert delay == pytest.approx(0.01)

        def hedges(result: str) -> float:
            return sample(m, "agentfleet_routing_hedges_total", model="big", result=result) or 0.0

        def charged_by(before: float) -> float:
            return pool.budget.charged - before

        # won, the loser on r1 whose engine is not known yet to abort: charged a whole call
        engine.mode = {"r1": "hang"}
        charged = pool.budget.charged
        out = await client.complete(req(homes["r1"][0]))
        assert out.content == "r0" and hedges("won") == 1 and hedges("lost") == 0
        assert charged_by(charged) == pytest.approx(12) and pool.budget.hedges == 1
        await asyncio.sleep(5)  # the abort watch sees r1's engine abort the cancelled loser
        assert client.seen_aborting(pool, r1) and not client.seen_aborting(pool, r0)

        # lost: r0 answers at 1.5 x the delay, the hedge on r1 (seen aborting) had run a third
        # of the winner's time: charged a third of the 2 completion tokens
        engine.mode = {}
        engine.per = {"r0": 1.5 * delay, "r1": 0.05}
        engine.timeouts.clear()
        charged = pool.budget.charged
        out = await client.complete(req(homes["r0"][0]))
        assert out.content == "r0" and hedges("lost") == 1 and hedges("won") == 1
        assert charged_by(charged) == pytest.approx(2 / 3)
        assert engine.timeouts == [0.5, pytest.approx(0.5 - delay)]  # the hedge gets what is left

        # won, the loser on r0 (not known to abort): a whole call again, whatever r1 is
        engine.per = {}
        engine.mode = {"r0": "hang"}
        charged = pool.budget.charged
        count = sample(
            m, "agentfleet_routing_replica_call_duration_seconds_count", model="big", replica="r1", kind="step"
        )
        out = await client.complete(req(homes["r0"][1]))
        assert out.content == "r1" and hedges("won") == 2
        assert charged_by(charged) == pytest.approx(12)
        assert (
            sample(m, "agentfleet_routing_replica_call_duration_seconds_count", model="big", replica="r1", kind="step")
            == (count or 0) + 1
        )

        # failed: both fail after the hedge went out; the advance (a mean call) stands
        engine.mode = {"r0": "fail", "r1": "fail"}
        engine.per = {"r0": 0.05, "r1": 0.05}
        charged = pool.budget.charged
        with pytest.raises(ModelError, match="answered 500"):
            await client.complete(req(homes["r0"][2]))
        assert hedges("failed") == 1 and hedges("won") == 2 and hedges("lost") == 1
        assert charged_by(charged) == pytest.approx(12)

        # each answer tells the budget whether the engine that served it aborts (the bank's cap);
        # r0's watch has too few cancels for a verdict, so it is told here that r0 runs them on
        client.aborts = lambda p, e: e.name == "r1"  # type: ignore[method-assign]
        told: list[bool] = []
        on_call = pool.budget.on_call
        pool.budget.on_call = lambda tokens, now, aborting=False: (
            told.append(aborting),
            on_call(tokens, now, aborting),
        )[1]  # type: ignore[method-assign]
        engine.mode, engine.per = {}, {}
        served = [(await client.complete(req(homes[r][3]))).content for r in ("r1", "r0")]
        assert sorted(served) == ["r0", "r1"] and told == [s == "r1" for s in served]
        await client.close()

    run_virtual(body(), start=T0)


def test_a_single_replica_is_never_hedged() -> None:
    async def body() -> None:
        engine = Engine(latency=0.01)
        client, m = client_for(engine, n=1, hedging=True, hedge_max_extra_percent=100)
        for i in range(60):  # min_samples is 50
            await client.complete(req(f"warm-{i}"))
        engine.latency = 0.1  # far past the learned delay, with budget to spare: nowhere to hedge to
        assert (await client.complete(req("slow"))).content == "r0"
        assert sample(m, "agentfleet_routing_hedge_threshold_seconds", model="big", kind="step") is None
        assert not any(s.value for s in m.hedges.collect()[0].samples)

    run_virtual(body(), start=T0)


def test_a_cancelled_attempt_is_counted_and_reported_to_the_abort_watch_under_its_url() -> None:
    """The watch learns per replica URL whether the engine aborts what the client cancels; the
    client must tell it which URL and when (hedging charges losers by that verdict)."""

    async def body() -> None:
        engine = Engine()
        client, m = client_for(engine, n=2)
        pool = client.primary
        r0, r1 = pool.source.endpoints()
        engine.mode = {"r0": "hang", "r1": "hang"}
        engine.aborting = {r0.base_url}
        watch = client.abort_watch(pool)
        assert client.abort_watch(pool) is watch  # one watch per tier, kept
        assert watch.known(r0.base_url) is None and client.aborts(pool, r0)  # assumed until seen

        async def cancel_one(replica: Endpoint) -> None:
            task = [t for t in (f"k{i}" for i in range(200)) if pool.order(t, 0)[0].name == replica.name][0]
            call = asyncio.ensure_future(client.complete(req(task)))
            await asyncio.sleep(0.1)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call

        await cancel_one(r0)
        assert calls(m, "cancelled") == 1 and calls(m, "error") is None
        await asyncio.sleep(5)
        assert watch.known(r0.base_url) is True and client.seen_aborting(pool, r0)
        for _ in range(6):  # an engine that runs cancelled requests on: seen after min_cancels
            await cancel_one(r1)
            await asyncio.sleep(5)
        await asyncio.sleep(30)
        assert calls(m, "cancelled", replica="r1") == 6
        assert watch.known(r1.base_url) is False
        assert not client.aborts(pool, r1) and not client.seen_aborting(pool, r1)
        assert client.aborts(pool, r0)
        await client.close()

    run_virtual(body(), start=T0)


def test_tenant_is_read_from_the_request_when_it_has_one() -> None:
    assert _tenant_of(req()) == ""
    assert _tenant_of(SimpleNamespace()) == ""  # type: ignore[arg-type]  # a request type without the field
    assert _tenant_of(SimpleNamespace(tenant="acme")) == "acme"  # type: ignore[arg-type]
    assert _tenant_of(SimpleNamespace(tenant=None)) == ""  # type: ignore[arg-type]
    assert _tenant_of(SimpleNamespace(tenant=7)) == "7"  # type: ignore[arg-type]


def test_a_call_stops_retrying_when_its_time_budget_runs_out() -> None:
    """request.timeout bounds the whole call: a 500 after 0.3 s, a second attempt cut by the budget
    at 0.5 s (a timeout), and no third attempt though max_retries would allow three more."""

    async def body() -> None:
        engine = Engine(latency=0.3)
        engine.mode = {"r0": "fail", "r1": "fail"}
        client, m = client_for(engine, n=2)
        client.max_retries = 3
        loop = asyncio.get_running_loop()
        request = ModelRequest(
            messages=[{"role": "user", "content": "hi"}], task_id="t", root_id="t", kind="step", timeout=0.5
        )  # type: ignore[arg-type]
        with pytest.raises(ModelError, match="did not answer within"):
            await client.complete(request)
        assert loop.time() - T0 == pytest.approx(0.5, abs=0.01)
        assert len(engine.timeouts) == 2
        outcomes = {s.labels["outcome"]: s.value for s in m.calls.collect()[0].samples if s.name.endswith("_total")}
        assert outcomes == {"error": 1, "timeout": 1}

    run_virtual(body(), start=T0)
