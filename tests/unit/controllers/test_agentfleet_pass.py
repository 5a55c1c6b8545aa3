"""One AgentFleet reconcile pass against an in-memory API (conditions, status, what it applies).

The cluster is replaced by a dict of objects; what the API server would do with an apply is not
modelled (the e2e test covers that). What is checked is the controller's own logic: which
conditions say what, what it applies and when, that generated secrets are made once."""

from __future__ import annotations

import base64
import copy
import inspect
from typing import Any

import pytest
import yaml
from agentfleet_contract.agentfleet import AgentFleet
from agentfleet_contract.fleet_stats import FleetStats
from agentfleet_contract.runtime_config import token_line
from kubernetes.dynamic.exceptions import ConflictError

from agentfleet.controllers import agentfleet as ctl
from agentfleet.reconcile.events import EventRecorder, post_with_kube
from tests.builders import MRS

NS = "team-a"


class FakeKube:
    def __init__(self, objects: dict[tuple[str, str], dict[str, Any]]) -> None:
        self.objects = objects
        self.applied: list[dict[str, Any]] = []
        self.status_writes: list[tuple[dict[str, Any], str]] = []
        self.events: list[tuple[str, str, str]] = []
        self.created: list[tuple[str, str]] = []

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return copy.deepcopy(self.objects.get((kind, name)))

    def apply(self, obj: dict[str, Any], *, force: bool = True) -> dict[str, Any]:
        self.applied.append(obj)
        key = (obj["kind"], obj["metadata"]["name"])
        self.objects[key] = {**copy.deepcopy(obj), "status": (self.objects.get(key) or {}).get("status", {})}
        return obj

    def apply_status(self, obj: dict[str, Any], *, manager: str) -> dict[str, Any]:
        self.status_writes.append((obj, manager))
        return obj

    def event(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        key = (body["kind"], body["metadata"]["name"])
        assert key[0] == "Secret"
        if key in self.objects:
            raise ConflictError(type("E", (), {"status": 409, "reason": "AlreadyExists", "body": "", "headers": {}})())
        data = {k: base64.b64encode(v.encode()).decode() for k, v in body["stringData"].items()}
        self.objects[key] = {**body, "data": data}
        self.created.append(key)
        return body


def fleet(**spec: Any) -> dict[str, Any]:
    body = {"modelRef": {"name": "llama"}, "redis": {"url": "redis://r:6379/0"}, **spec}
    return {
        "apiVersion": "agentfleet.io/v1alpha1",
        "kind": "AgentFleet",
        "metadata": {"name": "support", "namespace": NS, "uid": "u1", "generation": 1},
        "spec": body,
    }


def mrs(ready: bool = True) -> dict[str, Any]:
    reason, message = ("Ready", "2/2") if ready else ("Placing", "0/2 placed")
    return (
        MRS("llama")
        .model("meta-llama/Llama-3.1-8B-Instruct", served="llama")
        .gpu("H100")
        .condition("Ready", ready, reason, message)
        .obj()
    )


def available(kube: FakeKube, *names: str) -> None:
    for n in names:
        dep = kube.objects[("Deployment", n)]
        want = dep["spec"]["replicas"]
        dep["metadata"]["generation"] = 1
        dep["status"] = {
            "observedGeneration": 1,
            "replicas": want,
            "updatedReplicas": want,
            "readyReplicas": want,
            "availableReplicas": want,
        }


def up(*_: Any) -> tuple[bool, str, FleetStats]:
    return (
        True,
        "",
        FleetStats(
            queue_depth=4, in_flight=2, tasks_per_hour=120, p95_seconds=12.5, mean_cost=0.0123, awaiting_approval=3
        ),
    )


def test_the_probe_reads_the_fleets_keys_in_its_namespace() -> None:
    """Workers write af:<namespace>/<fleet>:...; a probe without the namespace reads other keys and
    reports an empty queue whatever is waiting (the e2e example's queueDepth stayed 0)."""
    seen: list[tuple[Any, ...]] = []

    def probe(*args: Any) -> tuple[bool, str, FleetStats]:
        seen.append(args)
        return up()

    kube = FakeKube({("ModelReplicaSet", "llama"): mrs(ready=False)})
    st, _ = run(kube, fleet(), probe=probe)
    assert st["queueDepth"] == 4
    assert seen and all(a[2] == "support" and a[-1] == NS for a in seen), seen
    # The real probe takes the same arguments in that order.
    assert list(inspect.signature(ctl.probe_redis).parameters) == ["url", "password", "fleet", "timeout", "namespace"]


def down(*_: Any) -> tuple[bool, str, None]:
    return False, "Connection refused", None


def recorder(kube: FakeKube) -> EventRecorder:
    return EventRecorder(post_with_kube(kube))


def run(
    kube: FakeKube, obj: dict[str, Any], probe: Any = up, events: EventRecorder | None = None
) -> tuple[dict[str, Any], float | None]:
    p = ctl.AgentFleetPass(kube, events or recorder(kube), copy.deepcopy(obj), probe=probe)
    again = p.run()
    return (kube.status_writes[-1][0]["status"] if kube.status_writes else {}), again


def conds(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status.get("conditions") or []}


def test_a_missing_model_is_named_and_nothing_is_rendered() -> None:
    kube = FakeKube({})
    events = recorder(kube)
    st, _ = run(kube, fleet(), events=events)
    c = conds(st)
    assert c["Ready"]["status"] == "False" and c["Ready"]["reason"] == "ModelNotFound"
    assert "spec.modelRef.name" in c["Ready"]["message"] and "llama" in c["Ready"]["message"]
    assert c["ModelReady"]["reason"] == "ModelNotFound" and c["RuntimeReady"]["reason"] == "NotRendered"
    assert "IndexReady" not in c  # no vectorIndexRef: no such condition
    assert not kube.applied
    assert [e[1] for e in kube.events if e[0] == "Warning"] == ["ModelNotFound"]
    run(kube, fleet(), events=events)
    assert [e[1] for e in kube.events if e[0] == "Warning"] == ["ModelNotFound"]  # once, not per pass
    assert all(m == "agentfleet-operator" for _, m in kube.status_writes)


def test_waiting_for_the_model_renders_the_runtime_and_reports_the_stats() -> None:
    kube = FakeKube({("ModelReplicaSet", "llama"): mrs(ready=False)})
    st, again = run(kube, fleet())
    c = conds(st)
    assert c["ModelReady"]["reason"] == "ModelNotReady" and "0/2 placed" in c["ModelReady"]["message"]
    assert c["Ready"]["reason"] == "WaitingForModel" and c["RedisReady"]["status"] == "True"
    assert {("Deployment", "support-worker"), ("Deployment", "support-api"), ("ConfigMap", "support-runtime")} <= {
        (o["kind"], o["metadata"]["name"]) for o in kube.applied
    }
    assert ("Secret", "support-api-token") in kube.created
    assert (st["queueDepth"], st["inFlightTasks"], st["tasksPerHour"], st["taskP95Seconds"], st["costPerTask"]) == (
        4,
        2,
        120,
        12.5,
        "0.0123",
    )
    assert st["awaitingApproval"] == 3  # the Approvals column
    assert st["desiredWorkers"] == 2 and st["observedGeneration"] == 1 and again is not None


def test_the_task_api_gets_the_generated_tokens_hash_and_never_the_token() -> None:
    # The generated Secret keeps the token for the fleet's users; the task API's pods mount only
    # its tokens-file line (tenant default, sha256) from the runtime ConfigMap. On be7b847 they
    # mounted the Secret, so the API's own files held a working token.
    kube = FakeKube({("ModelReplicaSet", "llama"): mrs()})
    run(kube, fleet())
    token = base64.b64decode(kube.objects[("Secret", "support-api-token")]["data"]["tokens"]).decode()
    assert len(token) >= 43  # 256 bits, urlsafe base64
    data = kube.objects[("ConfigMap", "support-runtime")]["data"]
    assert data["api-tokens"] == token_line("default", token) + "\n"
    assert all(token not in v for v in data.values())
    api = kube.objects[("Deployment", "support-api")]["spec"]["template"]["spec"]
    assert "support-api-token" not in yaml.safe_dump(api)
    tokens = next(v for v in api["volumes"] if v["name"] == "api-tokens")
    assert tokens["configMap"]["items"] == [{"key": "api-tokens", "path": "tokens"}]
    # A rotated token (the Secret deleted and made anew) changes the line, not the pods.
    template = copy.deepcopy(api)
    del kube.objects[("Secret", "support-api-token")]
    run(kube, fleet())
    rotated = base64.b64decode(kube.objects[("Secret", "support-api-token")]["data"]["tokens"]).decode()
    assert rotated != token
    assert kube.objects[("ConfigMap", "support-runtime")]["data"]["api-tokens"] == token_line("default", rotated) + "\n"
    assert kube.objects[("Deployment", "support-api")]["spec"]["template"]["spec"] == template


def test_ready_when_everything_is_and_transition_times_move_only_on_flips() -> None:
    kube = FakeKube({("ModelReplicaSet", "llama"): mrs()})
    obj = fleet()
    st, _ = run(kube, obj)
    assert (
        conds(st)["RuntimeReady"]["reason"] == "RuntimeProgressing"
        and conds(st)["Ready"]["reason"] == "WaitingForRuntime"
    )
    available(kube, "support-worker", "support-api")
    obj["status"] = st
    st2, again = run(kube, obj)
    c = conds(st2)
    assert all(c[t]["status"] == "True" for t in ("Ready", "ModelReady", "RedisReady", "RuntimeReady")), c
    assert again == ctl.STATS_RESYNC_SECONDS
    assert ("Normal", "Ready", "the fleet takes and runs tasks") in kube.events
    # Nothing changed: no write at all (so no watch event brings the pass back).
    obj["status"] = st2
    writes = len(kube.status_writes)
    run(kube, obj)
    assert len(kube.status_writes) == writes
    # A message change keeps the time; a flip moves it.
    c["ModelReady"]["lastTransitionTime"] = "2020-01-01T00:00:00Z"
    c["Ready"]["lastTransitionTime"] = "2020-01-01T00:00:00Z"
    obj["status"] = {**st2, "conditions": list(c.values())}
    kube.objects[("ModelReplicaSet", "llama")] = mrs(ready=False)
    st3, _ = run(kube, obj, probe=up)
    c3 = conds(st3)
    assert c3["ModelReady"]["status"] == "False" and c3["ModelReady"]["lastTransitionTime"] != "2020-01-01T00:00:00Z"
    assert c3["RedisReady"]["lastTransitionTime"] == c["RedisReady"]["lastTransitionTime"]


def test_unreachable_external_redis_names_the_url_and_leaves_stats_unset() -> None:
    kube = FakeKube({("ModelReplicaSet", "llama"): mrs()})
    st, _ = run(kube, fleet(), probe=down)
    c = conds(st)
    assert c["RedisReady"]["reason"] == "RedisUnreachable" and "redis://r:6379/0" in c["RedisReady"]["message"]
    # What failed, or what the remote end said, is never echoed (status would answer "is this port
    # open" for anyone who may create a fleet): one message for every failure.
    assert "Connection refused" not in c["RedisReady"]["message"] and ctl.PROBE_FAILED in c["RedisReady"]["message"]
    assert c["Ready"]["status"] == "False"
    assert not {"queueDepth", "tasksPerHour", "taskP95Seconds", "costPerTask"} & set(st)


def test_managed_redis_password_is_generated_once() -> None:
    kube = FakeKube({("ModelReplicaSet", "llama"): mrs()})
    obj = fleet(redis={"deploy": {}})
    st, _ = run(kube, obj, probe=down)
    secret = kube.objects[("Secret", "support-redis")]
    first = secret["data"]["password"]
    assert conds(st)["RedisReady"]["reason"] == "RedisStarting"  # the StatefulSet is not ready; no ping decides it
    assert {("StatefulSet", "support-redis"), ("Service", "support-redis"), ("NetworkPolicy", "support-redis")} <= {
        (o["kind"], o["metadata"]["name"]) for o in kube.applied
    }
    kube.objects[("StatefulSet", "support-redis")]["status"] = {"readyReplicas": 1}
    st, _ = run(kube, obj, probe=down)
    assert kube.objects[("Secret", "support-redis")]["data"]["password"] == first
    assert kube.created.count(("Secret", "support-redis")) == 1
    assert conds(st)["RedisReady"]["status"] == "True"
    cm = kube.objects[("ConfigMap", "support-runtime")]["data"]["runtime.yaml"]
    assert base64.b64decode(first).decode() not in cm and "redis://support-redis.team-a.svc:6379/0" in cm


def test_autoscaled_workers_follow_status_and_the_controller_leaves_desired_workers_alone() -> None:
    kube = FakeKube({("ModelReplicaSet", "llama"): mrs()})
    obj = fleet(workers={"autoscaling": True, "minReplicas": 1, "maxReplicas": 5})
    obj["status"] = {"desiredWorkers": 9}
    st, _ = run(kube, obj)
    assert kube.objects[("Deployment", "support-worker")]["spec"]["replicas"] == 5
    assert "desiredWorkers" not in st  # the autoscaler's field


@pytest.mark.parametrize(
    ("spec", "reason", "needle"),
    [
        ({"vectorIndexRef": {"name": "docs"}}, "IndexNotFound", "spec.vectorIndexRef.name"),
        (
            {"systemPrompt": {"configMapRef": {"name": "prompts", "key": "support"}}},
            "SystemPromptNotFound",
            "spec.systemPrompt.configMapRef",
        ),
        (
            {"systemPrompt": {"inline": "y" * 40_000}, "budgets": {"maxTokens": 5000}},
            "BudgetTooSmall",
            "spec.budgets.maxTokens 5000",
        ),
        (
            {"redis": {"url": "redis://r:6379/0", "passwordSecretRef": {"name": "nope", "key": "pw"}}},
            "SecretNotFound",
            "spec.redis.passwordSecretRef",
        ),
        ({"api": {"authSecretRef": {"name": "tokens", "key": "t"}}}, "SecretNotFound", "spec.api.authSecretRef"),
        (
            {"modelAdapter": "sql"},
            "AdapterNotFound",
            "spec.modelAdapter sql is not among spec.adapters of ModelReplicaSet llama (none)",
        ),
        (
            {
                "tools": [
                    {
                        "name": "t",
                        "type": "HTTP",
                        "http": {"url": "http://x/y", "headersSecretRef": {"name": "h", "key": "k"}},
                    }
                ]
            },
            "SecretNotFound",
            "spec.tools[0].http.headersSecretRef (t)",
        ),
    ],
)
def test_problems_the_schema_cannot_see_are_named_in_ready(spec: dict[str, Any], reason: str, needle: str) -> None:
    kube = FakeKube({("ModelReplicaSet", "llama"): mrs()})
    st, _ = run(kube, fleet(**spec))
    ready = conds(st)["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", reason) and needle in ready["message"]
    assert ("Warning", reason) in {(e[0], e[1]) for e in kube.events}
    assert not any(o["kind"] == "Deployment" for o in kube.applied)


def secret(name: str, key: str, value: str = "v", *, consent: bool) -> dict[str, Any]:
    labels = {"agentfleet.io/consent": "true"} if consent else {"app": "billing"}
    return {
        "kind": "Secret",
        "metadata": {"name": name, "labels": labels},
        "data": {key: base64.b64encode(value.encode()).decode()},
    }


BILLING_DB = {"name": "billing-db", "key": "pw"}
UNCONSENTED = [
    (
        {"redis": {"url": "redis://r:6379/0", "passwordSecretRef": {"name": "billing-db", "key": "pw"}}},
        "spec.redis.passwordSecretRef",
        ("billing-db", "pw"),
    ),
    ({"api": {"authSecretRef": {"name": "billing-db", "key": "pw"}}}, "spec.api.authSecretRef", ("billing-db", "pw")),
    (
        {
            "tools": [
                {
                    "name": "t",
                    "type": "HTTP",
                    "http": {"url": "http://x/y", "headersSecretRef": {"name": "billing-db", "key": "pw"}},
                }
            ]
        },
        "spec.tools[0].http.headersSecretRef (t)",
        ("billing-db", "pw"),
    ),
    (
        {"tools": [{"name": "m", "type": "MCP", "mcp": {"url": "http://x/mcp", "headersSecretRef": BILLING_DB}}]},
        "spec.tools[0].mcp.headersSecretRef (m)",
        ("billing-db", "pw"),
    ),
    (
        {"tracing": {"endpoint": "http://jaeger:4318", "headersSecretRef": {"name": "billing-db", "key": "pw"}}},
        "spec.tracing.headersSecretRef",
        ("billing-db", "pw"),
    ),
    (
        {"tools": [{"name": "t", "type": "HTTP", "http": {"url": "https://x/y", "caSecretRef": BILLING_DB}}]},
        "spec.tools[0].http.caSecretRef (t)",
        ("billing-db", "pw"),
    ),
    (
        {"tools": [{"name": "m", "type": "MCP", "mcp": {"url": "https://x/mcp", "caSecretRef": BILLING_DB}}]},
        "spec.tools[0].mcp.caSecretRef (m)",
        ("billing-db", "pw"),
    ),
    (
        {"tools": [{"name": "a", "type": "A2A", "a2a": {"cardUrl": "https://x/card.json", "caSecretRef": BILLING_DB}}]},
        "spec.tools[0].a2a.caSecretRef (a)",
        ("billing-db", "pw"),
    ),
]


@pytest.mark.parametrize(
    ("spec", "field", "ref"),
    UNCONSENTED,
    ids=["redis", "api", "tool-headers", "mcp-headers", "tracing-headers", "http-ca", "mcp-ca", "a2a-ca"],
)
def test_a_secret_without_the_consent_label_is_neither_sent_nor_mounted(
    spec: dict[str, Any], field: str, ref: tuple[str, str]
) -> None:
    kube = FakeKube({("ModelReplicaSet", "llama"): mrs(), ("Secret", ref[0]): secret(*ref, consent=False)})
    st, _ = run(kube, fleet(**spec))
    ready = conds(st)["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "SecretNotConsented")
    assert (
        field in ready["message"]
        and "kubectl label secret -n team-a billing-db agentfleet.io/consent=true" in ready["message"]
    )
    assert ("Warning", "SecretNotConsented") in {(e[0], e[1]) for e in kube.events}
    assert not any(o["kind"] == "Deployment" for o in kube.applied)
    # With the label the same fleet renders (the Secret is mounted or sent).
    kube = FakeKube({("ModelReplicaSet", "llama"): mrs(), ("Secret", ref[0]): secret(*ref, consent=True)})
    st, _ = run(kube, fleet(**spec))
    assert "SecretNotConsented" not in {c["reason"] for c in conds(st).values()}
    assert any(o["kind"] == "Deployment" for o in kube.applied)


def test_each_tiers_model_key_reaches_the_workers_and_a_named_one_needs_consent() -> None:
    # The routine ModelReplicaSet requires its own key from a Secret it names: the workers get it
    # beside the primary's (on be7b847 they got the primary's alone, and a Warning said so), and
    # only if that Secret carries the consent label, as every Secret a fleet's pods get.
    smol = (
        MRS("smol")
        .model("HuggingFaceTB/SmolLM2-135M-Instruct", served="smol")
        .gpu("H100")
        .engine(apiKeySecretRef=BILLING_DB)
        .condition("Ready", True, "Ready", "1/1")
        .obj()
    )
    objects = {("ModelReplicaSet", "llama"): mrs(), ("ModelReplicaSet", "smol"): smol}
    kube = FakeKube({**objects, ("Secret", "billing-db"): secret("billing-db", "pw", consent=False)})
    st, _ = run(kube, fleet(routineModelRef={"name": "smol"}))
    ready = conds(st)["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "SecretNotConsented")
    assert "ModelReplicaSet smol (spec.routineModelRef) spec.engine.apiKeySecretRef" in ready["message"]
    assert not any(o["kind"] == "Deployment" for o in kube.applied)
    kube = FakeKube({**objects, ("Secret", "billing-db"): secret("billing-db", "pw", consent=True)})
    st, _ = run(kube, fleet(routineModelRef={"name": "smol"}))
    worker = kube.objects[("Deployment", "support-worker")]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("valueFrom") for e in worker["env"]}
    assert env["AGENTFLEET_MODEL_API_KEY"] == {"secretKeyRef": {"name": "llama-vllm-api-key", "key": "apiKey"}}
    assert env["AGENTFLEET_ROUTINE_MODEL_API_KEY"] == {"secretKeyRef": BILLING_DB}
    assert not [e for e in kube.events if e[0] == "Warning"]


def test_a_vector_index_secret_the_workers_get_needs_consent_too() -> None:
    vi = {
        "kind": "VectorIndex",
        "metadata": {"name": "docs"},
        "spec": {"milvus": {"uri": "http://m:19530", "credentials": {"secretName": "milvus-creds"}}},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": ""}]},
    }
    creds = secret("milvus-creds", "username", consent=False)
    creds["data"]["password"] = creds["data"]["username"]
    kube = FakeKube(
        {("ModelReplicaSet", "llama"): mrs(), ("VectorIndex", "docs"): vi, ("Secret", "milvus-creds"): creds}
    )
    st, _ = run(kube, fleet(vectorIndexRef={"name": "docs"}))
    assert (
        conds(st)["Ready"]["reason"] == "SecretNotConsented"
        and "spec.milvus.credentials" in conds(st)["Ready"]["message"]
    )


def test_references_name_what_a_fleet_depends_on() -> None:
    spec = fleet(
        routineModelRef={"name": "smol"},
        vectorIndexRef={"name": "docs"},
        systemPrompt={"configMapRef": {"name": "p", "key": "k"}},
    )["spec"]
    assert ctl.references(spec) == {
        ("ModelReplicaSet", "llama"),
        ("ModelReplicaSet", "smol"),
        ("VectorIndex", "docs"),
        ("ConfigMap", "p"),
    }
    spec = fleet(api={"authSecretRef": {"name": "tok", "key": "t"}})["spec"]
    assert ("Secret", "tok") in ctl.references(spec)


def test_references_name_every_secret_the_pods_mount_so_labelling_one_wakes_the_fleet() -> None:
    # Issue 78: references listed only HTTP tools' headersSecretRef; a Secret named by an MCP or A2A
    # tool, by spec.tracing or by a caSecretRef, labelled after the fleet, waited for a resync.
    def ref(name: str) -> dict[str, str]:
        return {"name": name, "key": "k"}

    spec = fleet(
        api={"authSecretRef": ref("tok"), "tls": {"secretName": "api-cert"}},
        tracing={"endpoint": "http://jaeger:4318", "headersSecretRef": ref("trace-h")},
        tools=[
            {
                "name": "h",
                "type": "HTTP",
                "http": {"url": "https://x/y", "headersSecretRef": ref("http-h"), "caSecretRef": ref("http-ca")},
            },
            {
                "name": "m",
                "type": "MCP",
                "mcp": {"url": "https://x/mcp", "headersSecretRef": ref("mcp-h"), "caSecretRef": ref("mcp-ca")},
            },
            {
                "name": "a",
                "type": "A2A",
                "a2a": {"cardUrl": "https://x/c.json", "headersSecretRef": ref("a2a-h"), "caSecretRef": ref("a2a-ca")},
            },
        ],
    )
    secrets = {name for kind, name in ctl.references(spec["spec"]) if kind == "Secret"}
    want = {"tok", "api-cert", "trace-h", "http-h", "http-ca", "mcp-h", "mcp-ca", "a2a-h", "a2a-ca"}
    assert secrets == want, want ^ secrets
    # The same list decide checks consent on, and the Redis password besides (sent, not mounted).
    from agentfleet.controllers.agentfleet.deciding import mounted_refs

    af = AgentFleet.model_validate(spec)
    assert {r.name for _, r in mounted_refs(af.spec)} == want
    assert ("Secret", "billing-db") in ctl.references(
        fleet(redis={"url": "redis://r:6379/0", "passwordSecretRef": BILLING_DB})["spec"]
    )


def test_the_autoscaler_applies_only_its_own_part_of_an_agentfleet_status() -> None:
    from agentfleet.controllers.autoscaler import af_status_apply

    mine = {
        "type": "Ready",
        "status": "True",
        "reason": "Ready",
        "message": "",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    held = {
        "type": "ScalingLimited",
        "status": "False",
        "reason": "WithinBounds",
        "message": "",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    obj = fleet()
    obj["status"] = {"queueDepth": 4, "desiredWorkers": 2, "conditions": [mine, held]}
    new = {
        "type": "MetricsAvailable",
        "status": "False",
        "reason": "PrometheusUnavailable",
        "message": "x",
        "lastTransitionTime": "2026-01-02T00:00:00Z",
    }
    body = af_status_apply(obj, {"desiredWorkers": 3, "conditions": [new]})
    assert body["kind"] == "AgentFleet" and body["metadata"] == {"name": "support", "namespace": NS}
    # Its field and condition types only (carried ones included): the controller's stay its own.
    assert body["status"] == {"desiredWorkers": 3, "conditions": [new, held]}


def test_a_redis_that_does_not_answer_cannot_hold_up_a_pass() -> None:
    import time

    def hangs(*_: Any) -> Any:
        time.sleep(ctl.REDIS_TIMEOUT_SECONDS * 3 + 2)

    kube = FakeKube({("ModelReplicaSet", "llama"): mrs()})
    start = time.monotonic()
    st, _ = run(kube, fleet(), probe=hangs)
    assert time.monotonic() - start < ctl.REDIS_TIMEOUT_SECONDS * 3 + 2
    redis_ready = conds(st)["RedisReady"]
    assert redis_ready["reason"] == "RedisUnreachable" and ctl.PROBE_FAILED in redis_ready["message"]


def test_an_autoscaled_fleet_at_rest_is_not_rewritten() -> None:
    kube = FakeKube({("ModelReplicaSet", "llama"): mrs()})
    obj = fleet(workers={"autoscaling": True, "minReplicas": 1, "maxReplicas": 5})
    obj["status"] = {"desiredWorkers": 3}
    st, _ = run(kube, obj)
    available(kube, "support-worker", "support-api")
    obj["status"] = {**st, "desiredWorkers": 3}
    st, _ = run(kube, obj)
    obj["status"] = {**st, "desiredWorkers": 3}
    writes = len(kube.status_writes)
    run(kube, obj)
    assert len(kube.status_writes) == writes


def test_a_fleet_that_names_an_adapter_calls_it_with_adapter_affinity() -> None:
    with_adapter = MRS("llama").model("meta-llama/Llama-3.1-8B-Instruct", served="llama").gpu("H100")
    with_adapter = (
        with_adapter.spec(adapters=[{"name": "sql", "source": "/models-cache/sql"}])
        .condition("Ready", True, "Ready", "2/2")
        .obj()
    )
    kube = FakeKube({("ModelReplicaSet", "llama"): with_adapter})
    run(kube, fleet(modelAdapter="sql"))
    cm = next(o for o in kube.applied if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "support-runtime")
    doc = yaml.safe_load(next(iter(cm["data"].values())))
    assert doc["model"]["name"] == "sql"
    assert (doc["modelRouting"]["primary"]["model"], doc["modelRouting"]["primary"]["adapter"]) == ("sql", True)


def test_a_pod_template_colliding_with_the_operators_is_refused_by_field_and_nothing_is_applied() -> None:
    kube = FakeKube({("ModelReplicaSet", "llama"): mrs()})
    events = recorder(kube)
    bad = {"spec": {"volumes": [{"name": "config", "emptyDir": {}}]}}  # the runtime ConfigMap's volume
    st, again = run(kube, fleet(podTemplate=bad), events=events)
    ready = conds(st)["Ready"]
    assert conds(st)["RuntimeReady"]["reason"] == "NotRendered"
    assert ready["status"] == "False" and ready["reason"] == "InvalidSpec"
    assert "spec.podTemplate.spec.volumes[config]:" in ready["message"] and again is not None
    assert not [o for o in kube.applied if o["kind"] == "Deployment"]
    assert [e[1] for e in kube.events if e[0] == "Warning"] == ["InvalidSpec"]
    good = {"spec": {"volumes": [{"name": "corp-ca", "emptyDir": {}}]}}
    run(kube, fleet(podTemplate=good))
    worker = kube.objects[("Deployment", "support-worker")]["spec"]["template"]["spec"]
    assert {"name": "corp-ca", "emptyDir": {}} in worker["volumes"]
