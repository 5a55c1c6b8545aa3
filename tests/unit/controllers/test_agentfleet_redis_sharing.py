"""Fleets sharing one external Redis (issue 76, row 76.6d): the pure decision (sharing.py), what
decide and write make of it (RedisShared, the SharedRedis Warning, status.redis) and how the
controller keeps the other fleets' recorded identities. The probe against a real Redis, and the
operator as a process, are tests/integration/operator/test_redis_sharing_it.py."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from agentfleet_contract.agentfleet import AgentFleetStatus, RedisIdentity, RedisReach

from agentfleet.controllers.agentfleet import sharing, status
from agentfleet.controllers.agentfleet.controller import AgentFleetController
from agentfleet.controllers.agentfleet.records import Acted, Plan, ProbeResult
from tests.builders import Fleet
from tests.unit.controllers.test_agentfleet_decide import NS, UP, observe, plan_of, ready_model, verdicts

ME = (NS, "support")
A = sharing.server_id("run-id-a")
B = sharing.server_id("run-id-b")


def ident(server: str = A, db: int = 0, reach: RedisReach = "Server") -> RedisIdentity:
    return RedisIdentity(server_id=server, db=db, reach=reach)


def judged(mine: RedisIdentity | None, others: dict[tuple[str, str], RedisIdentity], *, managed: bool = False) -> Any:
    return sharing.judge(ME, mine, others, managed=managed)


def test_same_server_same_db_unrestricted_users_share_trust_and_are_warned() -> None:
    verdict, posts = judged(ident(), {(NS, "billing"): ident()})
    assert (verdict.type, verdict.ok, verdict.reason) == ("RedisShared", True, "SharedRedis")
    assert [(p.type, p.reason) for p in posts] == [("Warning", "SharedRedis")] and posts[0].message == verdict.message
    msg = verdict.message
    assert "fleet billing of this namespace" in msg and "share trust" in msg
    assert "spec.redis.deploy" in msg and "af:team-a/support:*" in msg  # the fix, with this fleet's prefix
    assert "can read and write this fleet's keys" in msg and "this fleet's Redis user can read and write theirs" in msg


def test_another_namespaces_fleet_is_never_named() -> None:
    verdict, posts = judged(ident(), {("team-b", "billing"): ident(), ("team-c", "secret-project"): ident()})
    assert verdict.ok is True and posts
    assert "a fleet in another namespace" in verdict.message
    for leaked in ("team-b", "team-c", "billing", "secret-project", "2 fleets"):
        assert leaked not in verdict.message, leaked
    # The same namespace's is named beside it.
    verdict, _ = judged(ident(), {("team-b", "billing"): ident(), (NS, "ops"): ident(), (NS, "docs"): ident()})
    assert "fleets docs, ops of this namespace and a fleet in another namespace" in verdict.message
    assert "team-b" not in verdict.message and "billing" not in verdict.message


def test_another_server_is_not_shared() -> None:
    verdict, posts = judged(ident(A), {(NS, "billing"): ident(B), ("team-b", "x"): ident(B)})
    assert (verdict.ok, verdict.reason, posts) == (False, "NotShared", ())


def test_another_db_of_the_same_server_is_shared_while_select_is_allowed() -> None:
    """A database number separates names, not access: an unrestricted user SELECTs any database."""
    verdict, _ = judged(ident(db=0), {(NS, "billing"): ident(db=3)})
    assert verdict.ok is True
    assert "this fleet's Redis user can read and write theirs" in verdict.message  # both ways
    assert "their Redis users can read and write this fleet's keys" in verdict.message


def test_another_db_is_not_shared_when_neither_user_may_select() -> None:
    verdict, posts = judged(ident(db=0, reach="Database"), {(NS, "billing"): ident(db=3, reach="Database")})
    assert (verdict.ok, verdict.reason, posts) == (False, "NotShared", ())
    # ... but the same database is.
    verdict, _ = judged(ident(db=3, reach="Database"), {(NS, "billing"): ident(db=3, reach="Database")})
    assert verdict.ok is True


def test_users_confined_to_their_own_keys_do_not_share_trust() -> None:
    verdict, posts = judged(ident(reach="OwnKeys"), {(NS, "billing"): ident(reach="OwnKeys")})
    assert (verdict.ok, verdict.reason, posts) == (False, "NotShared", ())


def test_one_unconfined_user_exposes_the_confined_fleet_and_both_are_told_which_way() -> None:
    # billing's user reaches every key: this fleet, confined, is exposed to it.
    verdict, _ = judged(ident(reach="OwnKeys"), {(NS, "billing"): ident(reach="Server")})
    assert verdict.ok is True
    assert "can read and write this fleet's keys" in verdict.message and "theirs" not in verdict.message
    # Seen from billing: its own user reaches this one's keys.
    verdict, _ = sharing.judge((NS, "billing"), ident(reach="Server"), {ME: ident(reach="OwnKeys")}, managed=False)
    assert verdict.ok is True
    assert "this fleet's Redis user can read and write theirs" in verdict.message
    assert "can read and write this fleet's keys" not in verdict.message


def test_a_managed_redis_never_shares_and_an_unidentified_one_is_unknown() -> None:
    verdict, posts = judged(ident(), {(NS, "billing"): ident()}, managed=True)
    assert (verdict.ok, verdict.reason, posts) == (False, "ManagedRedis", ())
    verdict, posts = judged(None, {(NS, "billing"): ident()})
    assert (verdict.ok, verdict.reason, posts) == ("Unknown", "NotIdentified", ())


def test_a_fleet_is_not_its_own_neighbour() -> None:
    verdict, _ = judged(ident(), {ME: ident()})
    assert verdict.ok is False


@pytest.mark.parametrize(
    ("rules", "confined"),
    [
        (["~af:team-a/support:*"], True),
        (["%R~af:team-a/support:*", "%W~af:team-a/support:t:*"], True),
        ([], True),  # no key at all
        (["~*"], False),
        (["~af:*"], False),
        (["~af:team-a/*"], False),
        (["~af:team-a/support*"], False),  # support-2's keys too
        (["~af:team-a/support:*", "~af:team-b/billing:*"], False),
        (["~af:team-a/support:*", "%R~*"], False),  # read access to everything is enough
    ],
)
def test_acl_key_patterns_confine_only_within_the_fleets_prefix(rules: list[str], confined: bool) -> None:
    assert sharing.patterns_confined(rules, sharing.own_prefix(*ME)) is confined


def test_reach_from_what_the_probe_saw() -> None:
    assert sharing.reach_of(keys_confined=True, may_select=True) == "OwnKeys"
    assert sharing.reach_of(keys_confined=False, may_select=False) == "Database"
    assert sharing.reach_of(keys_confined=False, may_select=True) == "Server"


def test_the_server_id_is_a_digest_equal_for_one_server() -> None:
    run_id = "9f2c3e0d4b6a8c1e2f3a4b5c6d7e8f9a0b1c2d3e"
    assert sharing.server_id(run_id) == sharing.server_id(run_id) != sharing.server_id(run_id[::-1])
    assert run_id not in sharing.server_id(run_id) and len(sharing.server_id(run_id)) == 16


# --- decide and write ------------------------------------------------------------------------------


def probed(identity: RedisIdentity | None) -> ProbeResult:
    return dataclasses.replace(UP, identity=identity)


def test_decide_warns_writes_the_condition_and_records_the_identity() -> None:
    obs = observe(
        Fleet("support").redis("redis://r:6379/0"), models={"llama-8b": ready_model()}, probed=probed(ident())
    )
    obs = dataclasses.replace(obs, neighbours={("team-b", "billing"): ident()})
    plan = plan_of(obs)
    assert verdicts(plan)["RedisShared"] == (True, "SharedRedis")
    assert [p.reason for p in plan.posts] == ["SharedRedis"]
    assert plan.runtime is not None and plan.problems == ()  # a warning: the fleet still runs
    report = status.compose(obs, plan, Acted(), "2026-11-29T00:00:00Z")
    assert report.status["redis"] == {"serverId": A, "db": 0, "reach": "Server"}
    AgentFleetStatus.model_validate(report.status)  # the CRD's schema takes it
    assert "redis" in report.own
    shared = next(c for c in report.status["conditions"] if c["type"] == "RedisShared")
    assert shared["status"] == "True" and "billing" not in shared["message"]
    ready = next(c for c in report.status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] != "SharedRedis"  # not what Ready waits on


def test_decide_alone_on_its_redis_says_not_shared_and_no_warning() -> None:
    obs = observe(
        Fleet("support").redis("redis://r:6379/0"), models={"llama-8b": ready_model()}, probed=probed(ident())
    )
    obs = dataclasses.replace(obs, neighbours={("team-b", "billing"): ident(B)})
    plan = plan_of(obs)
    assert verdicts(plan)["RedisShared"] == (False, "NotShared") and plan.posts == ()


def test_a_managed_redis_is_never_compared_nor_recorded() -> None:
    fleet = Fleet("support").spec(redis={"deploy": {}})
    obs = observe(fleet, models={"llama-8b": ready_model()}, probed=probed(ident()))
    obs = dataclasses.replace(obs, neighbours={(NS, "billing"): ident()})
    plan: Plan = plan_of(obs)
    assert verdicts(plan)["RedisShared"] == (False, "ManagedRedis") and plan.redis_identity is None
    assert "redis" not in status.compose(obs, plan, Acted(), "2026-11-29T00:00:00Z").status


def test_an_unreachable_redis_records_no_identity() -> None:
    down = ProbeResult(False, "refused", None, ident())  # what a probe that failed may not pass on
    obs = observe(Fleet("support").redis("redis://r:6379/0"), models={"llama-8b": ready_model()}, probed=down)
    obs = dataclasses.replace(obs, neighbours={(NS, "billing"): ident()})
    plan = plan_of(obs)
    assert verdicts(plan)["RedisReady"] == (False, "RedisUnreachable")
    assert "redis" not in status.compose(obs, plan, Acted(), "2026-11-29T00:00:00Z").status


# --- the controller keeps what the other fleets recorded ----------------------------------------------


class _NoKube:
    pass


def test_the_controller_keeps_recorded_identities_and_wakes_the_fleets_on_the_same_server() -> None:
    ctl = AgentFleetController(_NoKube(), events=object(), workers=1)  # type: ignore[arg-type]
    wire = {"redis": {"serverId": A, "db": 0, "reach": "Server"}}
    assert ctl.observe_status((NS, "a"), wire) == []
    assert ctl.observe_status(("team-b", "b"), wire) == [(NS, "a")]  # joined a's server: a compares now
    assert ctl.observe_status(("team-b", "b"), wire) == []  # unchanged: nobody woken
    assert ctl.observe_status(("team-c", "c"), {"redis": {"serverId": B, "db": 0, "reach": "Server"}}) == []
    assert ctl.neighbours((NS, "a")) == {("team-b", "b"): ident(), ("team-c", "c"): ident(B)}
    assert ctl.observe_status(("team-b", "b"), {}) == [(NS, "a")]  # left: a compares without it
    assert ctl.neighbours((NS, "a")) == {("team-c", "c"): ident(B)}
    # Something else written there is compared with nothing.
    assert ctl.observe_status(("team-d", "d"), {"redis": {"serverId": A, "reach": "Everything"}}) == []
    assert ("team-d", "d") not in ctl.neighbours((NS, "a"))
