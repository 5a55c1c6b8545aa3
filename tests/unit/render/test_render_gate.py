"""The gate's candidate (issue 58): the changed spec's workers on a private queue, never selected
by the serving workers' selector, with no task API."""

from __future__ import annotations

import yaml
from agentfleet_contract.agentfleet import AgentFleet

from agentfleet.render.agentfleet import CONFIG_HASH_ANNOTATION, config_hash, render_runtime, selector, worker_name
from agentfleet.render.gate import render_candidate

FLEET = {
    "metadata": {"name": "support", "namespace": "team-a", "uid": "u1"},
    "spec": {"modelRef": {"name": "m"}, "redis": {"url": "redis://r:6379"}, "systemPrompt": {"inline": "Never cite."}},
}
DOC = {"fleet": "support", "systemPrompt": "Never cite."}


def rendered():
    af = AgentFleet.model_validate(FLEET)
    return render_runtime(af, DOC, replicas=3, token_hashes="abc")


def test_the_candidate_runs_the_changed_spec_on_its_own_queue() -> None:
    runtime = rendered()
    cm, policy, dep = render_candidate("support", DOC, runtime)
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
    _, policy, dep = render_candidate("support", DOC, runtime)
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
    assert not any(o["kind"] == "Service" for o in render_candidate("support", DOC, runtime))
