"""The gate's candidate (issue 58): the changed spec's workers on a private queue, never selected
by the serving workers' selector, with no task API."""

from __future__ import annotations

import yaml
from agentfleet_contract.agentfleet import AgentFleet

from agentfleet.render.agentfleet import CONFIG_HASH_ANNOTATION, config_hash, render_runtime, selector, worker_name
from agentfleet.render.gate import BASELINE, CANDIDATE, GateNames, render_candidate

FLEET = {
    "metadata": {"name": "support", "namespace": "team-a", "uid": "u1"},
    "spec": {"modelRef": {"name": "m"}, "redis": {"url": "redis://r:6379"}, "systemPrompt": {"inline": "Never cite."}},
}
DOC = {"fleet": "support", "systemPrompt": "Never cite."}
NAMES = GateNames.of("support", "team-a")


def rendered():
    af = AgentFleet.model_validate(FLEET)
    return render_runtime(af, DOC, replicas=3, token_hashes="abc")


def test_the_candidate_runs_the_changed_spec_on_its_own_queue() -> None:
    runtime = rendered()
    cm, policy, dep = render_candidate(NAMES, DOC, runtime)
    assert [o["kind"] for o in (cm, policy, dep)] == ["ConfigMap", "NetworkPolicy", "Deployment"]
    doc = yaml.safe_load(cm["data"]["runtime.yaml"])
    assert doc == {**DOC, "fleet": "support~candidate"} and "api-tokens" not in cm["data"]
    assert cm["metadata"]["name"] == "support-runtime-candidate" and dep["metadata"]["name"] == "support-candidate"
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "support-runtime-candidate"
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    assert annotations[CONFIG_HASH_ANNOTATION] == config_hash(cm["data"]["runtime.yaml"])
    assert dep["spec"]["replicas"] == 1


def test_no_serving_selector_counts_the_candidate_and_its_egress_is_the_workers() -> None:
    runtime = rendered()
    worker = next(o for o in runtime if o["kind"] == "Deployment" and o["metadata"]["name"] == worker_name("support"))
    _, policy, dep = render_candidate(NAMES, DOC, runtime)
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    serving = selector("support", "worker")
    assert not all(pod_labels.get(k) == v for k, v in serving.items())
    assert all(pod_labels.get(k) == v for k, v in dep["spec"]["selector"]["matchLabels"].items())
    assert all(pod_labels.get(k) == v for k, v in policy["spec"]["podSelector"]["matchLabels"].items())
    served = next(o for o in runtime if o["kind"] == "NetworkPolicy")
    assert policy["spec"]["egress"] == served["spec"]["egress"]
    # the serving objects are untouched (the candidate is a copy)
    assert worker["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"
    cand = dep["spec"]["template"]["spec"]["containers"][0]
    assert cand["image"] == worker["spec"]["template"]["spec"]["containers"][0]["image"]
    assert not any(o["kind"] == "Service" for o in render_candidate(NAMES, DOC, runtime))


def test_every_key_a_private_versions_pod_mounts_is_in_the_configmap_it_names() -> None:
    """The kubelet refuses to start a pod whose configMap volume names a key the ConfigMap lacks
    (the real node's gate run at fc6099c: the candidate's and the baseline's pods sat in
    ContainerCreating, "configmap references non-existent config key: api-tokens", and the gate
    waited out its timeout). The private ConfigMap holds only the runtime document; the tokens'
    hashes, which the workers' /metrics reads, stay the serving ConfigMap's."""
    runtime = rendered()
    for role in (CANDIDATE, BASELINE):
        objects = runtime + render_candidate(NAMES, DOC, runtime, role=role)
        data = {o["metadata"]["name"]: o["data"] for o in objects if o["kind"] == "ConfigMap"}
        dep = next(
            o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == NAMES.private(role).workers
        )
        for volume in dep["spec"]["template"]["spec"]["volumes"]:
            if (ref := volume.get("configMap")) is not None:
                missing = [i["key"] for i in ref.get("items", []) if i["key"] not in data[ref["name"]]]
                assert missing == [], f"{role}: volume {volume['name']} names {missing} of ConfigMap {ref['name']}"


# --- the evaluation Job ---------------------------------------------------------------------------


def gate_objects(**spec: object) -> dict[str, dict]:
    from agentfleet_contract.agentfleet import RolloutEvaluation

    from agentfleet.render.agentfleet import Egress
    from agentfleet.render.gate import render_gate

    body = {**FLEET, "spec": {**FLEET["spec"], **spec}}
    af = AgentFleet.model_validate(body)
    ev = RolloutEvaluation.model_validate(
        (spec.get("rollout") or {}).get("evaluation") or {"taskSet": {"shipped": "postgres-manual"}, "sample": 12}
    )
    egress = Egress(api_server=("10.0.0.1/32",))
    objs = render_gate(af, NAMES, ev, "0123456789abcdef", image="agentfleet:1", egress=egress)
    return {o["kind"]: o for o in objs}


def test_the_job_runs_the_gate_program_non_root_with_both_versions_configs() -> None:
    job = gate_objects(redis={"url": "redis://r:6379", "passwordSecretRef": {"name": "rpw", "key": "pw"}})["Job"]
    assert job["metadata"]["name"] == "support-gate-0123456789"
    pod = job["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"] == "agentfleet:1" and c["command"] == ["python", "-m", "agentfleet_runtime"]
    args = c["args"]
    assert args[0] == "gate" and args[args.index("--results-configmap") + 1] == "support-gate-0123456789"
    assert args[args.index("--task-set") + 1] == "/usr/share/agentfleet/eval/postgres-manual-tasks.yaml"
    assert args[args.index("--sample") + 1] == "12" and args[args.index("--fleet") + 1] == "support"
    assert args[args.index("--current-config") + 1] == "/etc/agentfleet/current/runtime.yaml"
    assert args[args.index("--candidate-config") + 1] == "/etc/agentfleet/candidate/runtime.yaml"
    assert args[args.index("--side-effects") + 1] == "Skip"  # the default: no side effect while judged
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["current"]["configMap"]["name"] == "support-runtime-baseline"  # its private workers' document
    assert volumes["candidate"]["configMap"]["name"] == "support-runtime-candidate"
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] and sc["runAsNonRoot"] and not sc["allowPrivilegeEscalation"]
    assert pod["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] > 0
    assert pod["serviceAccountName"] == "support-gate"
    # The only Secrets it gets: the Redis password, as the workers get it, and the gate's key that
    # signs its results (issue 76), from the Secret named like its results ConfigMap.
    secrets = [e["valueFrom"]["secretKeyRef"] for e in c["env"] if "secretKeyRef" in e.get("valueFrom", {})]
    assert secrets == [{"name": "rpw", "key": "pw"}, {"name": "support-gate-0123456789", "key": "key"}]
    assert not any("secret" in v for v in pod["volumes"])
    assert [e["name"] for e in c["env"]][-1] == "AGENTFLEET_GATE_KEY"


def test_a_task_set_from_a_configmap_is_mounted_by_its_key() -> None:
    ev = {"taskSet": {"configMapRef": {"name": "my-tasks", "key": "tasks.yaml"}}}
    job = gate_objects(rollout={"evaluation": ev})["Job"]
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--task-set") + 1] == "/etc/agentfleet/tasks/tasks.yaml"
    volumes = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert volumes["tasks"]["configMap"] == {"name": "my-tasks", "items": [{"key": "tasks.yaml", "path": "tasks.yaml"}]}


def test_the_jobs_role_reaches_exactly_its_results_configmap_and_its_egress_is_limited() -> None:
    objs = gate_objects()
    (rule,) = objs["Role"]["rules"]
    assert rule == {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": ["support-gate-0123456789"],
        "verbs": ["get", "patch"],
    }
    assert objs["RoleBinding"]["subjects"][0]["name"] == objs["ServiceAccount"]["metadata"]["name"] == "support-gate"
    policy = objs["NetworkPolicy"]["spec"]
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "gate"
    assert policy["policyTypes"] == ["Egress", "Ingress"] and "ingress" not in policy
    dns, redis, api = policy["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert [p["port"] for p in redis["ports"]] == [6379]
    assert api == {"to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}]}
    # A managed Redis is reached by its pods' labels only.
    managed = gate_objects(redis={"deploy": {}})["NetworkPolicy"]["spec"]["egress"][1]
    assert managed["to"] == [
        {
            "podSelector": {
                "matchLabels": {"agentfleet.io/agentfleet": "support", "app.kubernetes.io/component": "redis"}
            }
        }
    ]


def test_a_bare_api_server_address_becomes_a_cidr_the_api_accepts() -> None:
    # The chart's API server addresses may be bare; NetworkPolicy's ipBlock refused "10.200.0.1"
    # with a 422 on the real node, and the gate never started.
    from agentfleet.render.agentfleet import Egress
    from agentfleet.render.gate import render_gate_egress

    af = AgentFleet.model_validate(FLEET)
    policy = render_gate_egress(af, NAMES, Egress(api_server=("10.200.0.1", "fd00::1", "10.0.0.0/24")))
    api = policy["spec"]["egress"][2]
    assert [t["ipBlock"]["cidr"] for t in api["to"]] == ["10.200.0.1/32", "fd00::1/128", "10.0.0.0/24"]
