"""The AgentFleet pass's decide step as a pure function: an observation (built here from the test
builders, no API, no Redis) in, a typed plan (or what it still wants read) out."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from agentfleet_contract.agentfleet import AgentFleet
from agentfleet_contract.fleet_stats import FleetStats
from agentfleet_contract.runtime_config import token_line

from agentfleet.controllers.agentfleet import status
from agentfleet.controllers.agentfleet.deciding import decide, generated_names, secret_names
from agentfleet.controllers.agentfleet.records import (
    PROBE_FAILED,
    Acted,
    NeedsProbe,
    Observed,
    Plan,
    ProbeResult,
    Subject,
)
from agentfleet.render.agentfleet import Egress
from agentfleet.render.common import Peers
from tests.builders import MRS, Fleet, Index

NS = "team-a"
UP = ProbeResult(True, "", FleetStats(queue_depth=4, in_flight=1, tasks_per_hour=60, p95_seconds=None, mean_cost=None))


def ready_model(name: str = "llama-8b", **engine: Any) -> dict[str, Any]:
    return MRS(name).engine(**engine).condition("Ready", True, "Ready", "1/1").obj()


def secret(value: str, key: str = "pw", *, consent: bool = True) -> dict[str, Any]:
    labels = {"agentfleet.io/consent": "true"} if consent else {}
    return {"metadata": {"labels": labels}, "data": {key: base64.b64encode(value.encode()).decode()}}


def observe(
    fleet: Fleet,
    *,
    models: dict[str, dict[str, Any]] | None = None,
    index: dict[str, Any] | None = None,
    secrets: dict[str, dict[str, Any]] | None = None,
    probed: ProbeResult | None = UP,
) -> Observed:
    """What observe would read: the named objects that exist; every other name decide may ask for, None."""
    obj = fleet.ns(NS).meta(generation=3, uid="u-1").obj()
    af = AgentFleet.model_validate(obj)
    found = {n: (models or {}).get(n) for n in [af.spec.model_ref.name]}
    if af.spec.routine_model_ref is not None:
        found[af.spec.routine_model_ref.name] = (models or {}).get(af.spec.routine_model_ref.name)
    read = {n: (secrets or {}).get(n) for n in secret_names(af, found, index)}
    return Observed(
        subject=Subject.of(obj),
        fleet=af,
        models=found,
        index=index,
        prompt=None,
        secrets=read,
        fresh={n: f"fresh-{n}" for n in generated_names(af) if read[n] is None},
        egress=Egress(),
        peers=Peers(),
        probed=probed,
    )


def plan_of(obs: Observed) -> Plan:
    plan = decide(obs)
    assert isinstance(plan, Plan), plan
    return plan


def verdicts(plan: Plan) -> dict[str, tuple[bool, str]]:
    return {v.type: (v.ok, v.reason) for v in plan.verdicts}


def kinds(plan: Plan) -> list[tuple[str, str]]:
    assert plan.runtime is not None
    return [(o["kind"], o["metadata"]["name"]) for o in plan.runtime.children]


def test_the_redis_probe_is_asked_for_with_the_consented_password_before_anything_is_planned() -> None:
    fleet = Fleet("support").redis("redis://r:6379/0", password=("redis-pw", "pw"))
    obs = observe(fleet, models={"llama-8b": ready_model()}, secrets={"redis-pw": secret("s3cret")}, probed=None)
    assert decide(obs) == NeedsProbe("redis://r:6379/0", "s3cret")
    # Without the consent label the password is not used, so there is nothing to probe with.
    unconsented = {"redis-pw": secret("s3cret", consent=False)}
    plan = plan_of(observe(fleet, models={"llama-8b": ready_model()}, secrets=unconsented, probed=None))
    assert verdicts(plan)["RedisReady"] == (False, "SecretNotConsented")
    assert plan.runtime is None and plan.stats is None


def test_a_fleet_that_can_run_gets_its_runtime_rendered_with_a_generated_token() -> None:
    obs = observe(Fleet("support").workers(replicas=3), models={"llama-8b": ready_model()})
    plan = plan_of(obs)
    assert plan.problems == () and plan.posts == ()
    assert verdicts(plan) == {
        "ModelReady": (True, "ModelReady"),
        "RedisReady": (True, "RedisReady"),
        "RedisShared": ("Unknown", "NotIdentified"),  # this probe said nothing of the server
    }
    assert ("ConfigMap", "support-runtime") in kinds(plan) and ("Deployment", "support-worker") in kinds(plan)
    assert plan.runtime is not None and (plan.runtime.replicas, plan.runtime.desired_workers) == (3, 3)
    # The token Secret does not exist: it is created with the value drawn in observe, and the task
    # API's ConfigMap carries that value's hash (never the value).
    assert plan.token is not None and plan.token.value == "fresh-support-api-token" and plan.token.body is not None
    cm = next(o for o in plan.runtime.children if o["kind"] == "ConfigMap")
    assert cm["data"]["api-tokens"] == token_line("default", "fresh-support-api-token") + "\n"
    assert plan.stats == UP.stats and plan.endpoint == f"http://support-api.{NS}.svc:8080"


def test_an_existing_token_secret_is_used_and_not_created_again() -> None:
    existing = {"support-api-token": secret("kept", key="tokens", consent=False)}
    plan = plan_of(observe(Fleet("support"), models={"llama-8b": ready_model()}, secrets=existing))
    assert plan.token is not None and (plan.token.value, plan.token.body) == ("kept", None)


def test_problems_are_collected_in_order_and_nothing_is_rendered() -> None:
    fleet = Fleet("support").index("docs").tool("t", "HTTP", http={"url": "http://x/y", "headersSecretRef": BAD})
    plan = plan_of(observe(fleet))  # no model, no index, no Secret
    assert [p.reason for p in plan.problems] == ["ModelNotFound", "IndexNotFound", "SecretNotFound"]
    assert [(p.type, p.reason) for p in plan.posts] == [("Warning", r) for r in [p.reason for p in plan.problems]]
    assert verdicts(plan)["ModelReady"] == (False, "ModelNotFound")
    assert verdicts(plan)["IndexReady"] == (False, "IndexNotFound")
    assert verdicts(plan)["RuntimeReady"] == (False, "NotRendered")
    assert plan.runtime is None and plan.token is None
    report = status.compose(observe(fleet), plan, Acted(), "2026-11-26T00:00:00Z")
    ready = next(c for c in report.status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ModelNotFound"
    assert ready["message"].endswith("(and 2 more: IndexNotFound, SecretNotFound)")
    assert report.again == 15.0


BAD = {"name": "h", "key": "k"}


def test_autoscaled_workers_follow_status_and_desired_workers_is_left_to_the_autoscaler() -> None:
    fleet = Fleet("support").workers(autoscaling=True, minReplicas=1, maxReplicas=5).status({"desiredWorkers": 9})
    plan = plan_of(observe(fleet, models={"llama-8b": ready_model()}))
    assert plan.runtime is not None and (plan.runtime.replicas, plan.runtime.desired_workers) == (5, None)


def test_a_colliding_pod_template_is_a_problem_and_the_token_is_still_made() -> None:
    fleet = Fleet("support").pod_template({"spec": {"volumes": [{"name": "config", "emptyDir": {}}]}})
    plan = plan_of(observe(fleet, models={"llama-8b": ready_model()}))
    assert [p.reason for p in plan.problems] == ["InvalidSpec"] and plan.runtime is None
    assert "spec.podTemplate.spec.volumes[config]" in plan.problems[0].message
    assert verdicts(plan)["RuntimeReady"] == (False, "NotRendered")
    assert plan.token is not None and plan.token.body is not None  # as before the split: made, then refused


def test_an_unreachable_redis_says_one_fixed_text_whatever_answered() -> None:
    banner = ProbeResult(False, "-ERR internal-billing-db v9.1 ready", None)
    plan = plan_of(observe(Fleet("support"), models={"llama-8b": ready_model()}, probed=banner))
    redis = next(v for v in plan.verdicts if v.type == "RedisReady")
    assert (redis.ok, redis.reason) == (False, "RedisUnreachable") and PROBE_FAILED in redis.message
    assert all("billing" not in p.message for p in plan.posts) and plan.stats is None
    assert [p.reason for p in plan.posts] == ["RedisUnreachable"]
    assert plan.runtime is not None  # the runtime still renders: Ready waits for Redis


def test_a_managed_redis_is_planned_with_its_generated_password_and_probed_with_it() -> None:
    fleet = Fleet("support").spec(redis={"deploy": {}})
    obs = observe(fleet, models={"llama-8b": ready_model()}, probed=None)
    assert decide(obs) == NeedsProbe(f"redis://support-redis.{NS}.svc:6379/0", "fresh-support-redis")
    plan = plan_of(observe(fleet, models={"llama-8b": ready_model()}))
    assert plan.redis is not None and plan.redis.password.body is not None
    assert {o["kind"] for o in plan.redis.children} == {"StatefulSet", "Service", "NetworkPolicy"}
    assert "RedisReady" not in verdicts(plan)  # the StatefulSet says, after act reads it back


def test_the_routine_tier_and_index_secrets_need_consent() -> None:
    smol = ready_model("smol", apiKeySecretRef={"name": "smol-key", "key": "pw"})
    index = Index("docs").milvus("http://m:19530", credentials={"secretName": "mc"}).obj()
    index["status"] = {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": ""}]}
    fleet = Fleet("support").routine_model("smol", ["Summaries"]).index("docs")
    creds = secret("u", key="username")
    creds["data"]["password"] = creds["data"]["username"]
    ok = {"smol-key": secret("k"), "mc": creds}
    plan = plan_of(observe(fleet, models={"llama-8b": ready_model(), "smol": smol}, index=index, secrets=ok))
    assert plan.problems == () and plan.runtime is not None
    worker = next(o for o in plan.runtime.children if o["kind"] == "Deployment" and "worker" in o["metadata"]["name"])
    env = {e["name"] for e in worker["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert {"AGENTFLEET_ROUTINE_MODEL_API_KEY", "AGENTFLEET_MILVUS_USER", "AGENTFLEET_MILVUS_PASSWORD"} <= env
    bad = {"smol-key": secret("k", consent=False), "mc": creds}
    plan = plan_of(observe(fleet, models={"llama-8b": ready_model(), "smol": smol}, index=index, secrets=bad))
    assert [p.reason for p in plan.problems] == ["SecretNotConsented"] and plan.runtime is None
    assert "ModelReplicaSet smol (spec.routineModelRef) spec.engine.apiKeySecretRef" in plan.problems[0].message


def test_an_a2a_tools_headers_secret_needs_consent_and_is_mounted_as_the_tools_headers() -> None:
    ref = {"name": "b-token", "key": "headers"}
    card = "http://docs-api.team-b.svc:8080/.well-known/agent-card.json"
    fleet = Fleet("support").tool("ask_docs", "A2A", a2a={"cardUrl": card, "headersSecretRef": ref})
    models = {"llama-8b": ready_model()}
    bad = {"b-token": secret('{"Authorization": "Bearer b"}', key="headers", consent=False)}
    plan = plan_of(observe(fleet, models=models, secrets=bad))
    assert [p.reason for p in plan.problems] == ["SecretNotConsented"] and plan.runtime is None
    assert "spec.tools[0].a2a.headersSecretRef (ask_docs)" in plan.problems[0].message
    ok = {"b-token": secret('{"Authorization": "Bearer b"}', key="headers")}
    plan = plan_of(observe(fleet, models=models, secrets=ok))
    assert plan.problems == () and plan.runtime is not None
    worker = next(o for o in plan.runtime.children if o["kind"] == "Deployment" and "worker" in o["metadata"]["name"])
    volumes = {v["name"]: v for v in worker["spec"]["template"]["spec"]["volumes"]}
    sources = volumes["tool-headers"]["projected"]["sources"]
    assert sources == [{"secret": {"name": "b-token", "items": [{"key": "headers", "path": "ask_docs"}]}}]


@pytest.mark.parametrize("probed", [UP, None])
def test_decide_reads_nothing_and_changes_nothing_it_was_given(probed: ProbeResult | None) -> None:
    obs = observe(Fleet("support").index("docs"), models={"llama-8b": ready_model()}, probed=probed)
    before = copy.deepcopy(obs)
    assert decide(obs) == decide(obs)  # the same observation, the same plan
    assert obs == before


def test_ready_says_so_once_everything_is_and_the_next_pass_is_the_stats_refresh() -> None:
    obs = observe(Fleet("support"), models={"llama-8b": ready_model()})
    plan = plan_of(obs)
    assert plan.runtime is not None
    available = {"spec": {"replicas": 2}, "metadata": {"generation": 1}}
    available["status"] = {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2}
    available["status"]["availableReplicas"] = 2
    api = copy.deepcopy(available)
    api["spec"]["replicas"] = 1
    api["status"].update(replicas=1, updatedReplicas=1, readyReplicas=1, availableReplicas=1)
    report = status.compose(obs, plan, Acted(worker=available, api=api), "2026-11-26T00:00:00Z")
    conds = {c["type"]: c for c in report.status["conditions"]}
    assert conds["Ready"]["status"] == "True" and conds["RuntimeReady"]["reason"] == "RuntimeAvailable"
    assert ("Normal", "Ready") in {(p.type, p.reason) for p in report.posts}
    assert report.status["readyWorkers"] == 2 and report.again == 30.0


def test_the_a2a_endpoint_is_reported_only_for_a_fleet_that_serves_a2a() -> None:
    # `kubectl get af`'s A2A column (.status.a2aEndpoint): spec.a2a.url when the author gives one (an
    # Ingress), else the task API's in-cluster URL; a fleet without spec.a2a shows none, and the field
    # is one this controller owns, so it is released when spec.a2a goes.
    acted = Acted()
    for spec, want in [
        ({"a2a": {}}, f"http://support-api.{NS}.svc:8080"),
        ({"a2a": {"url": "https://agents.example.com/support"}}, "https://agents.example.com/support"),
        ({}, None),
    ]:
        obs = observe(Fleet("support").spec(**spec), models={"llama-8b": ready_model()})
        plan = plan_of(obs)
        assert plan.a2a_endpoint == want
        report = status.compose(obs, plan, acted, "2026-11-29T00:00:00Z")
        assert report.status.get("a2aEndpoint") == want
        assert "a2aEndpoint" in report.own
