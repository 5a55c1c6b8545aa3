"""Replica discovery rules (EndpointSlices -> endpoints), settings from the CRD blocks, pool order."""

from __future__ import annotations

from agentfleet_contract.agentfleet import RateLimit
from agentfleet_contract.modelreplicaset import Routing

from agentfleet_runtime.routing.factory import ModelRoutingConfig
from agentfleet_runtime.routing.hashing import rendezvous_order
from agentfleet_runtime.routing.pool import LastReplica, ReplicaPool
from agentfleet_runtime.routing.settings import Endpoint, RateLimitSettings, RoutingSettings, Tier, routine_kinds
from agentfleet_runtime.routing.sources import StaticSource, endpoints_from_slices


def _ep(ip: str, pod: str, **cond: bool) -> dict:
    return {"addresses": [ip], "conditions": {"ready": True, **cond}, "targetRef": {"kind": "Pod", "name": pod}}


def test_endpoints_from_slices_keep_only_ready_serving_endpoints() -> None:
    slices = [
        {
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8000}, {"name": "metrics", "port": 9000}],
            "endpoints": [
                _ep("10.0.0.1", "m-0"),
                _ep("10.0.0.2", "m-1", ready=False),
                _ep("10.0.0.3", "m-2", terminating=True),
                _ep("10.0.0.4", "m-3", serving=False),
            ],
        },
        {
            "addressType": "IPv6",
            "ports": [{"name": "http", "port": 8000}],
            "endpoints": [_ep("fd00::5", "m-4"), _ep("10.0.0.1", "m-0")],
        },
        {
            "addressType": "IPv4",
            "ports": [{"name": "other", "port": 1}, {"name": "x", "port": 2}],
            "endpoints": [_ep("10.0.0.9", "m-9")],
        },
    ]
    got = endpoints_from_slices(slices)
    assert [e.name for e in got] == ["m-0", "m-4"]
    assert got[1].base_url == "http://[fd00::5]:8000/v1"


def test_settings_come_from_the_crd_blocks() -> None:
    s = RoutingSettings.from_spec(
        Routing.model_validate(
            {"policy": "LeastLoaded", "loadBoundPercent": 150, "hedging": {"enabled": True, "maxExtraPercent": 3}}
        )
    )
    assert (s.policy, s.eps, s.hedging, s.hedge_max_extra_percent, s.hedge_after_percentile) == (
        "LeastLoaded",
        0.5,
        True,
        3,
        95,
    )
    assert RoutingSettings.from_spec({"ejectionSeconds": 7}).ejection_seconds == 7
    r = RateLimitSettings.from_spec(RateLimit(tokens_per_minute=1000))
    assert r.enabled and r.tokens_per_minute == 1000 and r.max_wait_seconds == 30
    assert routine_kinds(["ToolArguments", "Summaries"]) == {"tool_arguments", "summary"}
    cfg = ModelRoutingConfig.model_validate(
        {"primary": {"modelReplicaSet": "big", "endpoints": ["http://127.0.0.1:1/v1"]}, "routineSteps": ["Summaries"]}
    )
    assert cfg.primary.routing.policy == "PrefixAffinity"


def _pool(policy: str, n: int = 4) -> ReplicaPool:
    src = StaticSource([Endpoint(f"r{i}", f"http://127.0.0.1:{9000 + i}/v1") for i in range(n)])
    return ReplicaPool(
        Tier("m", "m", RoutingSettings(policy=policy, ejection_consecutive_errors=1, ejection_seconds=10)), src
    )  # type: ignore[arg-type]


def test_pool_order_leaves_out_ejected_replicas_until_probe_time() -> None:
    pool = _pool("PrefixAffinity")
    home = pool.order("task", 0)[0].name
    pool.detector(home).on_failure(0)
    assert home not in [e.name for e in pool.order("task", 1)]
    assert pool.order("task", 10)[0].name == home  # probe-back goes to the home replica
    for e in pool.source.endpoints():
        pool.detector(e.name).on_failure(0)
    assert len(pool.order("task", 1)) == 4  # all ejected: panic mode tries them all


def test_pool_order_puts_tried_replicas_last() -> None:
    pool = _pool("PrefixAffinity")
    first = pool.order("t", 0)
    again = pool.order("t", 0, exclude=[first[0].name])
    assert again[0] == first[1] and again[-1] == first[0]


def test_round_robin_and_least_loaded_orders() -> None:
    rr = _pool("RoundRobin")
    assert [rr.order("same", 0)[0].name for _ in range(4)] == ["r0", "r1", "r2", "r3"]
    ll = _pool("LeastLoaded")
    ll.inflight.update({"r0": 3, "r1": 1, "r2": 0, "r3": 2})
    assert [e.name for e in ll.order("x", 0)] == ["r2", "r1", "r3", "r0"]


# --- found unpinned by the mutation report (docs/mutation-testing.md) ------------------------


def test_every_routing_field_is_read_from_its_crd_name() -> None:
    s = RoutingSettings.from_spec(
        {
            "policy": "RoundRobin",
            "loadBoundPercent": 120,
            "subAgentAffinity": False,
            "hedging": {"enabled": True, "afterPercentile": 90, "maxExtraPercent": 7},
            "ejectionConsecutiveErrors": 3,
            "ejectionSeconds": 12.5,
        }
    )
    got = (
        s.policy,
        s.load_bound_percent,
        s.sub_agent_affinity,
        s.hedging,
        s.hedge_after_percentile,
        s.hedge_max_extra_percent,
    )
    assert got == ("RoundRobin", 120, False, True, 90, 7)
    assert (s.ejection_consecutive_errors, s.ejection_seconds) == (3, 12.5)
    # Absent fields keep the defaults.
    assert RoutingSettings.from_spec({}) == RoutingSettings() == RoutingSettings.from_spec(None)
    r = RateLimitSettings.from_spec({"tokensPerMinute": 1000, "perTenantTokensPerMinute": 100, "maxWaitSeconds": 5})
    assert (r.tokens_per_minute, r.per_tenant_tokens_per_minute, r.max_wait_seconds) == (1000, 100, 5.0)
    tenant_only = RateLimitSettings.from_spec({"perTenantTokensPerMinute": 100})
    assert tenant_only.enabled and tenant_only.max_wait_seconds == 30.0


def test_endpoints_from_slices_port_fallback_names_and_every_slice() -> None:
    slices = [
        # No port named http and more than one port: this slice serves nothing; later ones still count.
        {
            "addressType": "IPv4",
            "ports": [{"name": "other", "port": 1}, {"name": "x", "port": 2}],
            "endpoints": [_ep("10.0.0.9", "m-9")],
        },
        # The only port, unnamed, is the serving port; an endpoint without a targetRef is named by its address.
        {
            "addressType": "IPv4",
            "ports": [{"port": 8080}],
            "endpoints": [{"addresses": ["10.0.0.7"], "conditions": {"ready": True}}],
        },
        {
            "addressType": "IPv4",
            "ports": [{"name": "metrics", "port": 9000}, {"name": "http", "port": 8000}],
            "endpoints": [
                {"addresses": [], "conditions": {}},
                _ep("10.0.0.2", "m-1", ready=False),
                _ep("10.0.0.3", "m-2"),
            ],
        },
    ]
    got = endpoints_from_slices(slices)
    assert [(e.name, e.base_url) for e in got] == [
        ("10.0.0.7", "http://10.0.0.7:8080/v1"),
        ("m-2", "http://10.0.0.3:8000/v1"),
    ]


def test_preferred_follows_the_task_skips_ejected_replicas_and_the_cap_is_strict() -> None:
    names = [f"r{i}" for i in range(4)]
    p = ReplicaPool(
        Tier("m", "m", RoutingSettings(ejection_consecutive_errors=1, ejection_seconds=10)),
        StaticSource([Endpoint(n, f"http://{n}/v1") for n in names]),
    )
    home = rendezvous_order("task-1", names)[0]
    moved = next(n for n in names if n not in (home, rendezvous_order("sub-key", names)[0]))
    p.last.swap("task-1", moved)  # a hedge won there: the task's history is cached on `moved`
    assert p.preferred("task-1", 0.0)[0] == moved
    assert p.preferred("sub-key", 0.0, task="task-1")[0] == moved  # per task, not per key
    still = ReplicaPool(Tier("m", "m", RoutingSettings(stay_after_move=False)), p.source)
    still.last.swap("task-1", moved)
    assert still.preferred("task-1", 0.0)[0] == home
    # An ejected home is not preferred.
    p.detector(home).on_failure(0.0)
    p.last = type(p.last)()  # forget the move: the rendezvous home is wanted, and it is ejected
    assert p.preferred("task-1", 1.0)[0] == rendezvous_order("task-1", [n for n in names if n != home])[0]
    # The load cap is strict: ceil(1.25 x (1 + 1) / 4) = 1 and home holds 1, so the bound would move it.
    q = ReplicaPool(Tier("m", "m", RoutingSettings()), p.source)
    q.inflight = {home: 1}
    assert q.preferred("task-1", 0.0) == (home, False)
    q.inflight = dict.fromkeys(names, 1)  # ceil(1.25 x 5 / 4) = 2: room
    assert q.preferred("task-1", 0.0) == (home, True)


def test_forget_gone_drops_only_idle_replicas_that_left() -> None:
    pool = _pool("PrefixAffinity", n=2)
    for name in ("r0", "r1", "gone-idle", "gone-busy"):
        pool.detector(name)
    pool.inflight.update({"r0": 0, "r1": 2, "gone-idle": 0, "gone-busy": 1})
    pool.forget_gone()
    assert set(pool.detectors) == {"r0", "r1", "gone-busy"}  # a call still in flight keeps its state
    assert set(pool.inflight) == {"r0", "r1", "gone-busy"}


def test_last_replica_is_a_bounded_lru() -> None:
    last = LastReplica(size=2)
    assert last.swap("t1", "r0") is None and last.swap("t2", "r1") is None
    assert (last.get("t1"), last.get("t2")) == ("r0", "r1")  # full, nothing dropped yet
    assert last.swap("t1", "r2") == "r0"  # t1 is now the most recent
    last.swap("t3", "r3")  # over the bound: the least recent, t2, goes
    assert (last.get("t1"), last.get("t2"), last.get("t3")) == ("r2", None, "r3")


def test_pool_quantiles_track_the_hedge_percentile() -> None:
    pool = ReplicaPool(Tier("m", "m", RoutingSettings(hedge_after_percentile=95)), StaticSource(["http://a:1/v1"]))
    assert pool.quantile("plan").p == 0.95 and pool.quantile("plan") is pool.quantile("plan")
