"""Fleets sharing one external Redis (issue 76, row 76.6d) on real Redis servers: what the probe
reads of a server and of the fleet's ACL user, and the operator as a real process against the run's
kube-apiserver warning fleets of two namespaces on one Redis without naming either to the other,
leaving a fleet alone on its Redis, and fleets on ACL users confined to their keys, unwarned.

Each test starts Redis servers of its own: what is compared is which fleets share a server, so the
run's one Redis (which other modules' fleets use) would not do."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from e2e.harness import operator as fx
from e2e.harness.cluster import namespace_prefix
from e2e.harness.installers import ensure_redis_server
from e2e.harness.objects import af_status, bad_fleet, cond, warning_events
from e2e.harness.operator import eventually
from e2e.harness.redis import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

operator = fx.operator


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Any]:
    """Redis servers of one test (``servers()`` starts one more)."""
    started: list[RedisServer] = []

    def start() -> RedisServer:
        s = RedisServer(ensure_redis_server(), tmp_path / f"redis-{len(started)}", fsync="everysec")
        s.start()
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop(kill=True)


@pytest.fixture
def other_namespace(kube, request: pytest.FixtureRequest) -> Iterator[str]:
    """A second namespace the module's operator serves."""
    with kube.fresh_namespace(f"{namespace_prefix(request.module.__name__)}{uuid.uuid4().hex[:6]}") as name:
        yield name


def admin(server: RedisServer) -> redis.Redis:
    return redis.Redis(port=server.port, decode_responses=True)


def acl_user(server: RedisServer, user: str, *rules: str) -> None:
    admin(server).execute_command("ACL", "SETUSER", user, "on", ">pw-" + user, *rules)


def confined_to(ns: str, fleet: str) -> tuple[str, ...]:
    """An ACL user for one fleet: its keys only, no administration, INFO allowed (the identity)."""
    return ("resetkeys", f"~af:{ns}/{fleet}:*", "resetchannels", "+@all", "-@admin", "-@dangerous", "+info")


def shared(st: dict[str, Any]) -> dict[str, Any]:
    return cond(st, "RedisShared")


# --- the probe, against real servers ----------------------------------------------------------------


def test_the_probe_reads_the_server_and_what_the_users_acl_reaches(servers) -> None:
    from agentfleet.controllers.agentfleet import probe_fleet_redis, sharing

    s = servers()
    run_id = admin(s).info("server")["run_id"]
    acl_user(s, "conf", *confined_to("team-a", "support"))
    acl_user(s, "loose", "resetkeys", "~af:*", "+@all", "-@admin", "-@dangerous", "+info")  # every fleet's keys
    acl_user(s, "nosel", "resetkeys", "~*", "+@all", "-@admin", "-@dangerous", "+info", "-select")

    def identity(url: str, password: str | None = None) -> Any:
        ok, error, _, who = probe_fleet_redis(url, password, "support", 1.0, "team-a")
        assert ok, error
        return who

    base = f"redis://127.0.0.1:{s.port}"
    default = identity(f"{base}/0")
    assert (default.server_id, default.db, default.reach) == (sharing.server_id(run_id), 0, "Server")
    assert run_id not in default.model_dump_json()
    # Another alias of the same server, another database: the same server.
    other = identity(f"redis://localhost:{s.port}/5")
    assert (other.server_id, other.db, other.reach) == (default.server_id, 5, "Server")
    assert identity(f"{base}/0?username=conf", "pw-conf").reach == "OwnKeys"  # by NOPERM: no ACL GETUSER
    assert identity(f"{base}/0?username=loose", "pw-loose").reach == "Server"  # af:* reaches other fleets
    assert identity(f"{base}/0?username=nosel", "pw-nosel").reach == "Database"  # db 0 only
    # A wrong password says nothing of the server.
    ok, _, _, who = probe_fleet_redis(f"{base}/0?username=conf", "wrong", "support", 1.0, "team-a")
    assert not ok and who is None
    # The probe read and wrote nothing: its probe keys do not exist.
    assert admin(s).dbsize() == 0


# --- the operator -----------------------------------------------------------------------------------


def wait_shared(kube, operator, ns: str, name: str, status: str) -> dict[str, Any]:
    return eventually(
        kube,
        operator,
        lambda: (s := af_status(kube, ns, name)) and shared(s).get("status") == status and s,
        timeout=90,
        desc=f"{ns}/{name} RedisShared {status}",
    )


def shared_warnings(kube, ns: str, name: str) -> list[dict[str, Any]]:
    return [e for e in warning_events(kube, ns, name) if e["reason"] == "SharedRedis"]


def test_fleets_of_two_namespaces_on_one_redis_are_both_warned_without_naming_each_other(
    kube, operator, namespace, other_namespace, servers
) -> None:
    s = servers()
    # Two aliases of one server (a name and an address) and two databases: neither separates them.
    kube.apply(bad_fleet("alpha", f"redis://127.0.0.1:{s.port}/0"), namespace)
    kube.apply(bad_fleet("beta", f"redis://localhost:{s.port}/2"), other_namespace)

    a = wait_shared(kube, operator, namespace, "alpha", "True")
    b = wait_shared(kube, operator, other_namespace, "beta", "True")
    for st, other_ns, other in ((a, other_namespace, "beta"), (b, namespace, "alpha")):
        c = shared(st)
        assert c["reason"] == "SharedRedis", c
        assert "a fleet in another namespace" in c["message"] and "spec.redis.deploy" in c["message"]
        assert other_ns not in c["message"] and other not in c["message"], c["message"]
    assert a["redis"]["serverId"] == b["redis"]["serverId"] and (a["redis"]["db"], b["redis"]["db"]) == (0, 2)
    assert admin(s).info("server")["run_id"] not in str(a) + str(b)  # status shows a digest only
    for ns, name, other_ns, other in (
        (namespace, "alpha", other_namespace, "beta"),
        (other_namespace, "beta", namespace, "alpha"),
    ):
        events = eventually(
            kube, operator, lambda ns=ns, name=name: shared_warnings(kube, ns, name), timeout=30, desc="SharedRedis"
        )
        assert all(other_ns not in e["message"] and other not in e["message"] for e in events), events
    assert cond(a, "Ready")["reason"] != "SharedRedis"  # a warning: Ready says what it said before


def test_a_fleet_alone_on_its_redis_gets_no_warning(kube, operator, namespace, servers) -> None:
    s = servers()
    kube.apply(bad_fleet("solo", f"redis://127.0.0.1:{s.port}/0"), namespace)
    st = wait_shared(kube, operator, namespace, "solo", "False")
    assert shared(st)["reason"] == "NotShared" and st["redis"]["reach"] == "Server"
    assert not shared_warnings(kube, namespace, "solo")


def test_fleets_on_users_confined_to_their_keys_are_not_warned_until_an_unconfined_one_joins(
    kube, operator, namespace, other_namespace, servers
) -> None:
    s = servers()
    for ns, fleet in ((namespace, "left"), (other_namespace, "right")):
        acl_user(s, f"u-{fleet}", *confined_to(ns, fleet))
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"{fleet}-redis", "labels": {"agentfleet.io/consent": "true"}},
            "stringData": {"pw": f"pw-u-{fleet}"},
        }
        kube.apply(secret, ns)
        body = bad_fleet(
            fleet,
            f"redis://127.0.0.1:{s.port}/0?username=u-{fleet}",
            redis={
                "url": f"redis://127.0.0.1:{s.port}/0?username=u-{fleet}",
                "passwordSecretRef": {"name": f"{fleet}-redis", "key": "pw"},
            },
        )
        kube.apply(body, ns)
    left = wait_shared(kube, operator, namespace, "left", "False")
    right = wait_shared(kube, operator, other_namespace, "right", "False")
    assert left["redis"]["reach"] == right["redis"]["reach"] == "OwnKeys"
    assert left["redis"]["serverId"] == right["redis"]["serverId"]
    assert shared(left)["reason"] == shared(right)["reason"] == "NotShared"

    # A fleet on the default user (every key) joins: it reaches both, both are exposed to it.
    kube.apply(bad_fleet("wide", f"redis://127.0.0.1:{s.port}/0"), namespace)
    wide = wait_shared(kube, operator, namespace, "wide", "True")
    assert "fleet left of this namespace" in shared(wide)["message"]
    assert "this fleet's Redis user can read and write theirs" in shared(wide)["message"]
    left = wait_shared(kube, operator, namespace, "left", "True")
    assert "fleet wide of this namespace" in shared(left)["message"]
    assert "their Redis users can read and write this fleet's keys" in shared(left)["message"]
    right = wait_shared(kube, operator, other_namespace, "right", "True")
    assert "a fleet in another namespace" in shared(right)["message"] and "wide" not in shared(right)["message"]
