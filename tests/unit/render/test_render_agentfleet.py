"""The AgentFleet renderer: names, wiring, pod hardening, Redis, budgets (pure, no cluster)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from agentfleet_contract.agentfleet import AgentFleet
from agentfleet_contract.runtime_config import ModelRoutingConfig, ModelTarget, RuntimeConfig, runtime_config

from agentfleet.render import agentfleet as r
from agentfleet.render import budgets

ROOT = Path(__file__).resolve().parents[3]
META = {
    "name": "support",
    "namespace": "team-a",
    "uid": "u-1",
    "generation": 3,
    "labels": {"app.kubernetes.io/instance": "argo-app", "argocd.argoproj.io/instance": "x"},
}
SPEC: dict[str, Any] = {
    "modelRef": {"name": "llama-8b"},
    "routineModelRef": {"name": "smol"},
    "routineSteps": ["Summaries"],
    "vectorIndexRef": {"name": "docs"},
    "workers": {"replicas": 3, "concurrency": 32, "cpu": "2", "memory": "2Gi"},
    "tools": [
        {"name": "search", "type": "Retrieval"},
        {
            "name": "ticket",
            "type": "HTTP",
            "http": {"url": "http://t.svc/x", "headersSecretRef": {"name": "ticket-auth", "key": "headers.json"}},
        },
    ],
    "systemPrompt": {"inline": "Be brief."},
    "redis": {"url": "redis://redis.data:6379/0", "passwordSecretRef": {"name": "redis-auth", "key": "pw"}},
}
PRIMARY = ModelTarget("llama-8b", "llama-8b", 8000, {"policy": "PrefixAffinity"}, 32768)
ROUTINE = ModelTarget("smol", "smollm2", 8001)


def fleet(**over: Any) -> AgentFleet:
    spec = copy.deepcopy(SPEC)
    spec.update(over)
    return AgentFleet.model_validate({"metadata": META, "spec": spec})


def doc_for(af: AgentFleet) -> dict[str, Any]:
    return runtime_config(
        af,
        primary=PRIMARY,
        routine=ROUTINE,
        redis_url="redis://redis.data:6379/0",
        system_prompt="Be brief.",
        pod=r.POD_LAYOUT,
    )


def by_kind(objs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in objs}


def test_runtime_children_have_the_contract_names_and_our_labels_only() -> None:
    af = fleet()
    objs = by_kind(r.render_runtime(af, doc_for(af), replicas=3))
    assert set(objs) == {
        ("ServiceAccount", "support"),
        ("Role", "support-endpointslices"),
        ("RoleBinding", "support-endpointslices"),
        ("ConfigMap", "support-runtime"),
        ("NetworkPolicy", "support-worker-egress"),
        ("Deployment", "support-worker"),
        ("Deployment", "support-api"),
        ("Service", "support-api"),
        ("PodDisruptionBudget", "support-worker"),
    }
    for o in objs.values():
        labels = o["metadata"]["labels"]
        # A GitOps tool's tracking labels on the fleet never reach its children.
        assert "app.kubernetes.io/instance" not in labels and not any(
            k.startswith("argocd.argoproj.io") for k in labels
        )
        assert labels[r.FLEET_LABEL] == "support" and o["metadata"]["namespace"] == "team-a"
        assert o["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "agentfleet.io/v1alpha1",
                "kind": "AgentFleet",
                "name": "support",
                "uid": "u-1",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    role = objs[("Role", "support-endpointslices")]
    assert role["rules"] == [
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]}
    ]


def test_config_map_holds_a_loadable_runtime_document_wired_to_the_references() -> None:
    af = fleet()
    cm = by_kind(r.render_runtime(af, doc_for(af), replicas=3))[("ConfigMap", "support-runtime")]
    doc = yaml.safe_load(cm["data"]["runtime.yaml"])
    cfg = RuntimeConfig.model_validate(doc)  # what the pods will load
    assert cfg.fleet == "support" and cfg.listen_host == "0.0.0.0"
    assert cfg.model.base_url == "http://llama-8b.team-a.svc:8000/v1" and cfg.model.name == "llama-8b"
    assert doc["modelRouting"]["primary"] == {
        "modelReplicaSet": "llama-8b",
        "model": "llama-8b",
        "routing": {"policy": "PrefixAffinity"},
    }
    assert doc["modelRouting"]["routine"]["model"] == "smollm2" and doc["modelRouting"]["routineSteps"] == ["Summaries"]
    assert doc["modelRouting"]["namespace"] == "team-a"
    assert cfg.api.tokens_file == r.TOKENS_FILE and cfg.tool_headers_dir == r.TOOL_HEADERS_DIR
    assert cfg.worker.concurrency == 32 and cfg.worker.shutdown_grace_seconds == r.SHUTDOWN_GRACE_SECONDS
    assert "redisPassword" not in doc and "pw" not in cm["data"]["runtime.yaml"]  # secrets stay in Secrets


def test_stream_model_calls_reaches_the_routing_client_config_and_only_when_asked() -> None:
    def routing_of(af: AgentFleet) -> ModelRoutingConfig:
        cm = by_kind(r.render_runtime(af, doc_for(af), replicas=3))[("ConfigMap", "support-runtime")]
        cfg = RuntimeConfig.model_validate(yaml.safe_load(cm["data"]["runtime.yaml"]))
        return ModelRoutingConfig.model_validate(cfg.model_routing)  # what build_routing_client reads

    assert AgentFleet.model_validate({"metadata": META, "spec": SPEC}).spec.stream_model_calls is False
    assert routing_of(fleet()).stream is False
    assert "stream" not in doc_for(fleet())["modelRouting"]  # the default adds nothing to existing ConfigMaps
    assert routing_of(fleet(streamModelCalls=True)).stream is True
    # A process outside a pod has no routing client (plain, non-streaming calls): nothing to carry.
    outside = runtime_config(fleet(streamModelCalls=True), primary=PRIMARY, redis_url="redis://redis.data:6379/0")
    assert "modelRouting" not in outside


def test_pods_are_hardened_and_run_the_runtime_entrypoints() -> None:
    af = fleet()
    objs = by_kind(r.render_runtime(af, doc_for(af), replicas=3))
    worker, api = objs[("Deployment", "support-worker")], objs[("Deployment", "support-api")]
    assert worker["spec"]["replicas"] == 3 and api["spec"]["replicas"] == 1
    for dep, sub in ((worker, "worker"), (api, "api")):
        pod = dep["spec"]["template"]
        c = pod["spec"]["containers"][0]
        assert c["command"] == ["python", "-m", "agentfleet_runtime"] and c["args"] == [
            sub,
            "--config",
            "/etc/agentfleet/runtime.yaml",
        ]
        sc = c["securityContext"]
        assert (
            sc["readOnlyRootFilesystem"]
            and not sc["allowPrivilegeEscalation"]
            and sc["capabilities"] == {"drop": ["ALL"]}
        )
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"} and sc["runAsNonRoot"] and sc["runAsUser"] == 65532
        assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
        assert any(v["name"] == "tmp" and "emptyDir" in v for v in pod["spec"]["volumes"])
        assert pod["metadata"]["labels"] == {**dep["spec"]["selector"]["matchLabels"], **pod["metadata"]["labels"]}
        env = {e["name"]: e for e in c["env"]}
        assert env["AGENTFLEET_REDIS_PASSWORD"]["valueFrom"] == {"secretKeyRef": {"name": "redis-auth", "key": "pw"}}
    api_c = api["spec"]["template"]["spec"]["containers"][0]
    assert api_c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert api_c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    # A slow start (imports under a CPU limit on a busy node) is not a dead process: liveness waits for
    # the startup probe, which allows STARTUP_PROBE_SECONDS, longer than liveness alone would.
    for dep_ in (api, worker):
        c = dep_["spec"]["template"]["spec"]["containers"][0]
        start, live = c["startupProbe"], c["livenessProbe"]
        assert start["httpGet"] == live["httpGet"]
        assert start["periodSeconds"] * start["failureThreshold"] >= r.STARTUP_PROBE_SECONDS
        assert r.STARTUP_PROBE_SECONDS > live["periodSeconds"] * live["failureThreshold"]
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= r.SHUTDOWN_GRACE_SECONDS + 10
    assert worker["spec"]["template"]["spec"]["serviceAccountName"] == "support"
    tokens = next(v for v in api["spec"]["template"]["spec"]["volumes"] if v["name"] == "api-tokens")
    # No spec.api.authSecretRef: the generated token's hash, from the runtime ConfigMap.
    assert tokens["configMap"] == {"name": "support-runtime", "items": [{"key": "api-tokens", "path": "tokens"}]}
    headers = next(v for v in worker["spec"]["template"]["spec"]["volumes"] if v["name"] == "tool-headers")
    assert headers["projected"]["sources"] == [
        {"secret": {"name": "ticket-auth", "items": [{"key": "headers.json", "path": "ticket"}]}}
    ]


def test_workers_alone_carry_the_model_key_and_the_labels_the_replicas_admit() -> None:
    af = fleet()
    objs = by_kind(r.render_runtime(af, doc_for(af), replicas=3))
    worker, api = (objs[("Deployment", f"support-{c}")]["spec"]["template"] for c in ("worker", "api"))
    wenv = {e["name"]: e for e in worker["spec"]["containers"][0]["env"]}
    # The primary ModelReplicaSet's generated key (no spec.engine.apiKeySecretRef there).
    assert wenv["AGENTFLEET_MODEL_API_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "llama-8b-vllm-api-key", "key": "apiKey"}
    }
    assert "AGENTFLEET_MODEL_API_KEY" not in {e["name"] for e in api["spec"]["containers"][0]["env"]}
    assert worker["metadata"]["labels"]["agentfleet.io/model"] == "llama-8b"
    assert worker["metadata"]["labels"]["agentfleet.io/routine-model"] == "smol"
    assert "agentfleet.io/model" not in api["metadata"]["labels"]
    named = type(af.spec.redis.password_secret_ref).model_validate({"name": "vllm-key", "key": "k"})
    worker = by_kind(r.render_runtime(af, doc_for(af), replicas=3, model_key_secret_ref=named))[
        ("Deployment", "support-worker")
    ]
    wenv = {e["name"]: e for e in worker["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert wenv["AGENTFLEET_MODEL_API_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "vllm-key", "key": "k"}}


def test_workers_get_each_tiers_own_model_key() -> None:
    # The routine ModelReplicaSet's key, generated or named, beside the primary's: each tier's
    # replicas require their own. A fleet without a routine tier gets no second key.
    af = fleet()
    wenv = {e["name"]: e for e in worker_env(r.render_runtime(af, doc_for(af), replicas=3))}
    assert wenv["AGENTFLEET_ROUTINE_MODEL_API_KEY"]["valueFrom"] == {
        "secretKeyRef": {"name": "smol-vllm-api-key", "key": "apiKey"}
    }
    named = type(af.spec.redis.password_secret_ref).model_validate({"name": "smol-key", "key": "k"})
    objs = r.render_runtime(af, doc_for(af), replicas=3, routine_key_secret_ref=named)
    wenv = {e["name"]: e for e in worker_env(objs)}
    assert wenv["AGENTFLEET_ROUTINE_MODEL_API_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "smol-key", "key": "k"}}
    assert wenv["AGENTFLEET_MODEL_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "llama-8b-vllm-api-key"
    alone = fleet(routineModelRef=None, routineSteps=[])
    objs = r.render_runtime(alone, doc_for(alone), replicas=3)
    assert "AGENTFLEET_ROUTINE_MODEL_API_KEY" not in {e["name"] for e in worker_env(objs)}


def worker_env(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return by_kind(objs)[("Deployment", "support-worker")]["spec"]["template"]["spec"]["containers"][0]["env"]


def test_workers_egress_denies_metadata_and_the_api_server_unless_the_fleet_allows_it() -> None:
    egress = r.Egress(api_server=("172.18.0.2", "2001:db8::1"))
    policies = {}
    for allow in (True, False):
        af = fleet(workers={**SPEC["workers"], "allowAPIServer": allow})
        objs = by_kind(r.render_runtime(af, doc_for(af), replicas=3, egress=egress))
        policies[allow] = objs[("NetworkPolicy", "support-worker-egress")]["spec"]
        worker = objs[("Deployment", "support-worker")]["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in worker["env"]}
        # HTTP tools refuse the API server whatever the pod's policy lets the routing watch reach.
        assert env["AGENTFLEET_EGRESS_DENY"] == "169.254.0.0/16,fd00:ec2::254/128,172.18.0.2,2001:db8::1"
    for allow, spec in policies.items():
        assert spec["podSelector"] == {"matchLabels": r.selector("support", "worker")} and spec["policyTypes"] == [
            "Egress"
        ]
        v4, v6 = (rule["ipBlock"] for rule in spec["egress"][0]["to"])
        assert v4["cidr"] == "0.0.0.0/0" and v6["cidr"] == "::/0"
        api4, api6 = ({"172.18.0.2/32"}, {"2001:db8::1/128"}) if not allow else (set(), set())
        assert set(v4["except"]) == {"169.254.0.0/16", *api4}
        assert set(v6["except"]) == {"fd00:ec2::254/128", *api6}
        assert spec["egress"][1] == {"to": [{"namespaceSelector": {}}]}
    af = fleet()
    assert ("NetworkPolicy", "support-worker-egress") not in by_kind(
        r.render_runtime(af, doc_for(af), replicas=3, egress=None)
    )
    with pytest.raises(r.RenderError, match="workerEgress: 'nope'"):
        r.Egress(denied=("nope",))


def test_workers_kept_off_the_api_server_route_through_the_services_and_hold_no_token() -> None:
    # allowAPIServer false denies the API server's addresses to the workers, so their routing
    # cannot watch EndpointSlices: on be7b847 they kept trying and found no replica at all. Now
    # each tier's one endpoint is its set's ClusterIP Service and the pods mount no token.
    routing, pods = {}, {}
    for allow in (True, False):
        af = fleet(workers={**SPEC["workers"], "allowAPIServer": allow})
        doc = doc_for(af)
        routing[allow] = ModelRoutingConfig.model_validate(doc["modelRouting"])
        objs = by_kind(r.render_runtime(af, doc, replicas=3))
        pods[allow] = objs[("Deployment", "support-worker")]["spec"]["template"]["spec"]
    assert routing[True].primary.endpoints == [] and routing[True].routine.endpoints == []
    assert routing[False].primary.endpoints == ["http://llama-8b.team-a.svc:8000/v1"]
    assert routing[False].routine.endpoints == ["http://smol.team-a.svc:8001/v1"]
    assert "automountServiceAccountToken" not in pods[True] and pods[False]["automountServiceAccountToken"] is False


def test_a_config_change_rolls_the_pods_and_nothing_else_does() -> None:
    af = fleet()
    a = by_kind(r.render_runtime(af, doc_for(af), replicas=3))
    b = by_kind(r.render_runtime(af, doc_for(af), replicas=5))  # a scale is no config change
    changed = fleet(budgets={"maxSteps": 5})
    c = by_kind(r.render_runtime(changed, doc_for(changed), replicas=3))

    def h(objs: dict[tuple[str, str], dict[str, Any]]) -> str:
        return objs[("Deployment", "support-worker")]["spec"]["template"]["metadata"]["annotations"][
            r.CONFIG_HASH_ANNOTATION
        ]

    assert h(a) == h(b) != h(c)


def test_managed_redis_is_a_password_protected_aof_statefulset_reachable_only_from_the_fleet() -> None:
    af = fleet(redis={"deploy": {"storageSize": "4Gi"}})
    sts, svc, policy = r.render_redis(af)
    c = sts["spec"]["template"]["spec"]["containers"][0]
    assert ["--appendonly", "yes"] == c["args"][:2] and "$(REDIS_PASSWORD)" in c["args"]
    # Full means refusing writes (503 at the API), never evicting a task's keys.
    flags = dict(zip(c["args"][::2], c["args"][1::2], strict=True))
    assert flags["--maxmemory-policy"] == "noeviction" and int(flags["--maxmemory"]) == int(0.75 * 2**30)
    assert c["resources"]["limits"]["memory"] == "1Gi"
    assert c["env"] == [
        {"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "support-redis", "key": "password"}}}
    ]
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "4Gi"
    assert svc["metadata"]["name"] == "support-redis" and svc["spec"]["ports"][0]["port"] == 6379
    peers = policy["spec"]["ingress"][0]["from"]
    assert {"podSelector": {"matchLabels": {r.FLEET_LABEL: "support"}}} in peers
    # and the operator's pods (it reads the figures for the status), nothing else
    assert {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "agentfleet-system"}},
        "podSelector": {
            "matchLabels": {"app.kubernetes.io/name": "agentfleet", "app.kubernetes.io/component": "operator"}
        },
    } in peers
    assert len(peers) == 2 and policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["podSelector"]["matchLabels"] == {
        r.FLEET_LABEL: "support",
        "app.kubernetes.io/component": "redis",
    }
    assert r.redis_password_ref(af) == {"name": "support-redis", "key": "password"}
    assert r.managed_redis_url("support", "team-a") == "redis://support-redis.team-a.svc:6379/0"
    secret = r.render_secret(af, "support-redis", "password", "s3cret", "redis")
    assert secret["stringData"] == {"password": "s3cret"}
    with pytest.raises(r.RenderError):
        r.render_redis(fleet())


@pytest.mark.parametrize(
    ("workers", "status", "want"),
    [
        ({"replicas": 3}, {"desiredWorkers": 9}, 3),  # autoscaling off: spec wins, status ignored
        ({"autoscaling": True, "minReplicas": 2, "maxReplicas": 6}, {"desiredWorkers": 4}, 4),
        ({"autoscaling": True, "minReplicas": 2, "maxReplicas": 6}, {"desiredWorkers": 40}, 6),
        ({"autoscaling": True, "minReplicas": 2, "maxReplicas": 6}, {"desiredWorkers": 0}, 2),
        (
            {"autoscaling": True, "replicas": 3, "minReplicas": 2, "maxReplicas": 6},
            {},
            3,
        ),  # before the autoscaler's first word
    ],
)
def test_worker_replicas(workers: dict[str, Any], status: dict[str, Any], want: int) -> None:
    assert r.desired_workers(fleet(workers=workers).spec, status) == want


def test_model_calls_reach_the_runtime_config_and_the_budget_check() -> None:
    # A 1.5B on CPU asked for 1,024 tokens a call rambles for minutes: spec.modelCalls is how a fleet
    # says otherwise, for its own pods and for every copy of its runtime config.
    default = RuntimeConfig.model_validate(doc_for(fleet())).model
    assert (default.max_output_tokens, default.timeout_seconds) == (1024, 120.0)
    small = fleet(modelCalls={"maxOutputTokens": 320, "timeoutSeconds": 180})
    model = RuntimeConfig.model_validate(doc_for(small)).model
    assert (model.max_output_tokens, model.timeout_seconds) == (320, 180.0)
    # The first call's reply counts with the spec's limit: 3,000 tokens fit 320, not 4,000.
    assert (
        budgets.budget_problems(fleet(budgets={"maxTokens": 3000}, modelCalls={"maxOutputTokens": 320}).spec, "x") == []
    )
    (p,) = budgets.budget_problems(fleet(budgets={"maxTokens": 3000}, modelCalls={"maxOutputTokens": 4000}).spec, "x")
    assert p.reason == "BudgetTooSmall" and "spec.modelCalls.maxOutputTokens" in p.message
    with pytest.raises(ValueError, match="maxOutputTokens|max_output_tokens"):
        fleet(modelCalls={"maxOutputTokens": 0})


def test_budgets_no_task_can_meet_are_named_with_the_field_and_the_fix() -> None:
    ok = fleet()
    assert budgets.budget_problems(ok.spec, "Be brief.", 32768) == []
    prompt = "x" * 20_000  # ~5000 tokens
    tight = fleet(budgets={"maxTokens": 4000})
    (p,) = budgets.budget_problems(tight.spec, prompt)
    assert (
        p.reason == "BudgetTooSmall"
        and "spec.budgets.maxTokens 4000" in p.message
        and "raise spec.budgets.maxTokens to at least" in p.message
    )
    (p,) = budgets.budget_problems(ok.spec, prompt, 4096)
    assert p.reason == "PromptExceedsContext" and "4096" in p.message
    costly = fleet(budgets={"maxCost": "0.0001"}, pricing={"inputPerMillionTokens": "10"})
    (p,) = budgets.budget_problems(costly.spec, prompt)
    assert p.reason == "BudgetTooSmall" and "spec.budgets.maxCost" in p.message
    # Tool schemas count: the same prompt with a large tool fails where it alone would not.
    params = {
        "type": "object",
        "properties": {f"p{i}": {"type": "string", "description": "d" * 100} for i in range(150)},
    }
    big_tool = {"name": "big", "type": "HTTP", "http": {"url": "http://x/y"}, "parameters": params}
    assert budgets.budget_problems(fleet(budgets={"maxTokens": 4000}).spec, "short") == []
    assert (
        budgets.budget_problems(fleet(budgets={"maxTokens": 4000}, tools=[big_tool]).spec, "short")[0].reason
        == "BudgetTooSmall"
    )


def test_readiness_of_applied_objects_and_cost_format() -> None:
    dep = {
        "metadata": {"generation": 2},
        "spec": {"replicas": 2},
        "status": {
            "observedGeneration": 2,
            "replicas": 2,
            "updatedReplicas": 2,
            "readyReplicas": 2,
            "availableReplicas": 2,
        },
    }
    assert r.deployment_available(dep)[0]
    assert not r.deployment_available({**dep, "status": {**dep["status"], "observedGeneration": 1}})[0]
    assert not r.deployment_available({**dep, "status": {**dep["status"], "availableReplicas": 1}})[0]
    assert not r.deployment_available(None)[0]
    assert r.statefulset_ready({"spec": {"replicas": 1}, "status": {"readyReplicas": 1}})[0]
    assert not r.statefulset_ready({"spec": {"replicas": 1}, "status": {}})[0]
    assert (
        r.format_cost(0.0123) == "0.0123"
        and r.format_cost(0) == "0"
        and r.format_cost(1.5) == "1.5"
        and r.format_cost(0.00000012) == "0"
    )


def test_a_sentinel_redis_is_one_url_and_acknowledges_submissions_once_replicated() -> None:
    from agentfleet_contract.redis_sentinel import parse_sentinel_url, sentinel_url

    url = sentinel_url(["s0.data:26379", "s1.data:26379"], "main")
    target = parse_sentinel_url(url)
    assert (
        target is not None and target.addresses == (("s0.data", 26379), ("s1.data", 26379)) and target.master == "main"
    )
    assert parse_sentinel_url("redis://x:6379/0") is None
    with pytest.raises(ValueError, match="host:port"):
        parse_sentinel_url("redis+sentinel://nope/main/0")
    af = fleet(
        redis={"sentinel": {"addresses": ["s0.data:26379"], "masterName": "main", "waitTimeoutMilliseconds": 250}}
    )
    doc = runtime_config(af, primary=PRIMARY, redis_url=url)
    assert doc["redisAckReplicas"] == 1 and doc["redisAckTimeoutMs"] == 250
    assert "redisAckReplicas" not in doc_for(fleet())
    with pytest.raises(ValueError, match="exactly one of url"):
        fleet(redis={"url": "redis://x:6379/0", "sentinel": {"addresses": ["s0:26379"], "masterName": "m"}})
    with pytest.raises(ValueError, match="host:port"):
        fleet(redis={"sentinel": {"addresses": ["s0"], "masterName": "m"}})


def test_the_mcp_example_renders_its_servers_into_the_config_and_mounts_only_their_headers() -> None:
    docs = yaml.safe_load_all((ROOT / "examples" / "agentfleet-mcp.yaml").read_text())
    ex = next(d for d in docs if d["kind"] == "AgentFleet")
    af = AgentFleet.model_validate({**ex, "metadata": {**META, "name": "ops"}})
    objs = by_kind(r.render_runtime(af, doc_for(af), replicas=2))
    cfg = RuntimeConfig.model_validate(yaml.safe_load(objs[("ConfigMap", "ops-runtime")]["data"]["runtime.yaml"]))
    clock, tickets = cfg.tools
    assert clock.mcp.command == ["mcp-server-time", "--local-timezone", "UTC"] and clock.mcp.url is None
    assert tickets.mcp.allow_tools == ["search_tickets", "create_ticket"]
    assert tickets.mcp.read_only_tools == ["search_tickets"]
    assert tickets.call_timeout() == 20 and cfg.tool_headers_dir == r.TOOL_HEADERS_DIR
    assert "Bearer" not in objs[("ConfigMap", "ops-runtime")]["data"]["runtime.yaml"]
    worker = objs[("Deployment", "ops-worker")]["spec"]["template"]["spec"]
    headers = next(v for v in worker["volumes"] if v["name"] == "tool-headers")
    ticket_headers = {"name": "tickets-mcp-auth", "items": [{"key": "headers.json", "path": "tickets"}]}
    assert headers["projected"]["sources"] == [{"secret": ticket_headers}]


def test_tracing_renders_the_collector_and_mounts_its_headers_secret_in_workers_only() -> None:
    assert "tracing" not in doc_for(fleet())  # off by default: nothing added to existing ConfigMaps
    ref = {"name": "otlp-auth", "key": "headers.json"}
    af = fleet(tracing={"endpoint": "http://jaeger.obs:4318", "samplingPercent": 25, "headersSecretRef": ref})
    objs = by_kind(r.render_runtime(af, doc_for(af), replicas=3))
    cfg = RuntimeConfig.model_validate(yaml.safe_load(objs[("ConfigMap", "support-runtime")]["data"]["runtime.yaml"]))
    assert cfg.tracing is not None and cfg.tracing.endpoint == "http://jaeger.obs:4318"
    assert cfg.tracing.sampling_ratio == 0.25
    assert cfg.tracing.headers_file == r.TRACING_HEADERS_DIR + "/headers"
    worker, api = objs[("Deployment", "support-worker")], objs[("Deployment", "support-api")]
    vols = {v["name"]: v for v in worker["spec"]["template"]["spec"]["volumes"]}
    items = [{"key": "headers.json", "path": "headers"}]
    assert vols["tracing-headers"]["secret"] == {"secretName": "otlp-auth", "items": items}
    assert "tracing-headers" not in {v["name"] for v in api["spec"]["template"]["spec"]["volumes"]}


@pytest.mark.parametrize(
    ("endpoint", "says"),
    [("jaeger:4318", "spec.tracing.endpoint must be the http"), ("http://u:p@jaeger:4318", "headersSecretRef")],
)
def test_a_tracing_endpoint_that_is_no_url_or_carries_credentials_is_refused(endpoint: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        fleet(tracing={"endpoint": endpoint})


def test_the_managed_redis_fsync_policy_is_the_one_its_field_describes() -> None:
    """spec.redis.deploy says what appendfsync loses (issue 57, finding 12): the rendered policy and
    the description users read change together."""
    from agentfleet_contract.agentfleet import Redis

    (sts, *_) = r.render_redis(fleet(redis={"deploy": {"storageSize": "4Gi"}}))
    args = sts["spec"]["template"]["spec"]["containers"][0]["args"]
    fsync = args[args.index("--appendfsync") + 1]
    text = Redis.model_fields["deploy"].description or ""
    assert f"appendfsync {fsync}" in text and "loses" in text and "last second" in text, text


def test_the_a2a_card_names_the_api_service_the_operator_renders() -> None:
    # spec.a2a without a url: the card advertises the fleet's own API Service, so its name and
    # port (render) and the URL the runtime config carries (runtime_config) must agree.
    af = fleet(a2a={})
    objs = by_kind(r.render_runtime(af, doc_for(af), replicas=3))
    cfg = RuntimeConfig.model_validate(yaml.safe_load(objs[("ConfigMap", "support-runtime")]["data"]["runtime.yaml"]))
    service = objs[("Service", "support-api")]
    port = service["spec"]["ports"][0]["port"]
    assert cfg.a2a is not None and cfg.a2a.url == f"http://support-api.team-a.svc:{port}"
    assert "a2a" not in yaml.safe_load(
        by_kind(r.render_runtime(fleet(), doc_for(fleet()), replicas=3))[("ConfigMap", "support-runtime")]["data"][
            "runtime.yaml"
        ]
    )  # unset: no A2A, and existing ConfigMaps are unchanged


CA = {"name": "team-b-ca", "key": "ca.crt"}


def test_each_tools_ca_is_mounted_in_the_workers_only_as_its_name_dot_pem() -> None:
    # spec.tools[].<kind>.caSecretRef (issue 78): one projected volume of the CA keys, each as
    # <tool name>.pem under TOOL_CA_DIR, read-only, in the worker pods; the task API pods make no
    # tool calls and get none. The runtime config names the directory.
    tools = [
        {"name": "tickets", "type": "HTTP", "http": {"url": "https://t.svc/x", "caSecretRef": CA}},
        {"name": "ops", "type": "MCP", "mcp": {"url": "https://ops.svc/mcp", "caSecretRef": {"name": "o", "key": "k"}}},
        {"name": "ask_docs", "type": "A2A", "a2a": {"cardUrl": "https://b.svc/card.json", "caSecretRef": CA}},
        {"name": "plain", "type": "HTTP", "http": {"url": "https://public.example/x"}},
    ]
    af = fleet(tools=tools)
    doc = doc_for(af)
    assert doc["toolCaDir"] == r.TOOL_CA_DIR
    assert RuntimeConfig.model_validate(doc).tool_ca_dir == r.TOOL_CA_DIR
    objs = by_kind(r.render_runtime(af, doc, replicas=2))
    worker, api = (objs[("Deployment", f"support-{c}")]["spec"]["template"]["spec"] for c in ("worker", "api"))
    volume = next(v for v in worker["volumes"] if v["name"] == "tool-ca")
    assert volume["projected"]["sources"] == [
        {"secret": {"name": "team-b-ca", "items": [{"key": "ca.crt", "path": "tickets.pem"}]}},
        {"secret": {"name": "o", "items": [{"key": "k", "path": "ops.pem"}]}},
        {"secret": {"name": "team-b-ca", "items": [{"key": "ca.crt", "path": "ask_docs.pem"}]}},
    ]
    mount = next(m for m in worker["containers"][0]["volumeMounts"] if m["name"] == "tool-ca")
    assert mount == {"name": "tool-ca", "mountPath": r.TOOL_CA_DIR, "readOnly": True}
    assert "tool-ca" not in {v["name"] for v in api["volumes"]}
    assert "tool-ca" not in {m["name"] for m in api["containers"][0]["volumeMounts"]}
    # A fleet whose tools name no CA gets neither the volume nor the setting.
    plain = fleet()
    assert "toolCaDir" not in doc_for(plain)
    objs = by_kind(r.render_runtime(plain, doc_for(plain), replicas=2))
    assert "tool-ca" not in {
        v["name"] for v in objs[("Deployment", "support-worker")]["spec"]["template"]["spec"]["volumes"]
    }
