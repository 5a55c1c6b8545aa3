"""spec.podTemplate: the schema's refusals, the pure merge (additions only, refusals by field) and
where it meets the renderers and the controllers."""

from __future__ import annotations

from typing import Any

import pytest
from agentfleet_contract import ModelReplicaSet
from agentfleet_contract.agentfleet import AgentFleet
from pydantic import ValidationError

from agentfleet.controllers.modelreplicaset.overlay import pod_template_refusal
from agentfleet.placement import Assignment
from agentfleet.render import agentfleet as fleet_render
from agentfleet.render.modelreplicaset import render_pod, spec_hash
from agentfleet.render.overlay import OverlayError, merge_pod_template
from tests.builders import MRS, Fleet

ONE_NODE = Assignment("ns/llama-0", "ns/llama", ("h100-0",), 1)
OWNED = ("vllm",)
VOLUME = {"name": "certs", "secret": {"secretName": "corp-ca"}}
SIDECAR = {"name": "proxy", "image": "envoy:1.31", "ports": [{"name": "admin", "containerPort": 9901}]}


def mrs(template: dict[str, Any] | None = None) -> ModelReplicaSet:
    b = MRS("llama").ns("ns").meta(uid="u-1")
    if template is not None:
        b.pod_template(template)
    return ModelReplicaSet.model_validate(b.obj())


def plain_pod() -> dict[str, Any]:
    return render_pod(mrs(), ONE_NODE, 0)


def merged(template: dict[str, Any]) -> dict[str, Any]:
    return merge_pod_template(plain_pod(), template, OWNED)


def test_additions_land_and_what_the_operator_set_stays() -> None:
    before = plain_pod()
    pod = merged(
        {
            "metadata": {"labels": {"team": "search"}, "annotations": {"mesh.io/inject": "false"}},
            "spec": {
                "volumes": [VOLUME],
                "containers": [
                    {
                        "name": "vllm",
                        "env": [{"name": "SSL_CERT_DIR", "value": "/certs"}],
                        "volumeMounts": [{"name": "certs", "mountPath": "/certs", "readOnly": True}],
                    },
                    SIDECAR,
                ],
                "tolerations": [{"key": "spot", "operator": "Exists"}],
            },
        }
    )
    vllm, proxy = pod["spec"]["containers"]
    assert pod["metadata"]["labels"] == {**before["metadata"]["labels"], "team": "search"}
    assert pod["metadata"]["annotations"]["mesh.io/inject"] == "false"
    assert {"name": "SSL_CERT_DIR", "value": "/certs"} in vllm["env"] and vllm["env"][:-1] == before["spec"][
        "containers"
    ][0]["env"]
    assert vllm["volumeMounts"][-1]["mountPath"] == "/certs" and VOLUME in pod["spec"]["volumes"]
    for key in ("command", "args", "ports", "startupProbe", "readinessProbe", "securityContext", "resources"):
        assert vllm.get(key) == before["spec"]["containers"][0].get(key), key
    # The sidecar runs as hardened as the operator's container: it could not ask otherwise.
    assert proxy["image"] == "envoy:1.31" and proxy["securityContext"] == vllm["securityContext"]
    assert pod["spec"]["securityContext"] == before["spec"]["securityContext"]
    assert pod["spec"]["affinity"] == before["spec"]["affinity"]
    assert {"key": "spot", "operator": "Exists"} in pod["spec"]["tolerations"]
    assert plain_pod() == before  # the input is not modified


@pytest.mark.parametrize(
    ("template", "field"),
    [
        (
            {"spec": {"containers": [{"name": "vllm", "env": [{"name": "HF_HOME", "value": "/x"}]}]}},
            "containers[vllm].env[HF_HOME]",
        ),
        ({"spec": {"containers": [{"name": "vllm", "image": "evil:1"}]}}, "containers[vllm].image"),
        ({"spec": {"volumes": [{"name": "tmp", "emptyDir": {}}]}}, "spec.volumes[tmp]"),
        (
            {
                "spec": {
                    "volumes": [VOLUME],
                    "containers": [{"name": "vllm", "volumeMounts": [{"name": "certs", "mountPath": "/tmp"}]}],
                }
            },
            "containers[vllm].volumeMounts[/tmp]",
        ),
        (
            {"spec": {"containers": [{"name": "vllm", "volumeMounts": [{"name": "nope", "mountPath": "/n"}]}]}},
            "volumeMounts[/n]",
        ),
        ({"spec": {"containers": [{**SIDECAR, "ports": [{"containerPort": 8000}]}]}}, "containers[proxy].ports[8000]"),
        ({"spec": {"containers": [{"name": "proxy"}]}}, "containers[proxy].image"),
        ({"metadata": {"labels": {"agentfleet.io/replica": "other"}}}, "metadata.labels[agentfleet.io/replica]"),
        ({"metadata": {"labels": {"app.kubernetes.io/name": "other"}}}, "metadata.labels[app.kubernetes.io/name]"),
        (
            {
                "spec": {
                    "affinity": {
                        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}
                    }
                }
            },
            "nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution",
        ),
        ({"spec": {"affinity": {"other": {}}}}, "spec.affinity.other"),
    ],
)
def test_the_merge_refuses_what_would_override_the_operator_naming_the_field(
    template: dict[str, Any], field: str
) -> None:
    with pytest.raises(OverlayError) as e:
        merged(template)
    assert e.value.field.startswith("spec.podTemplate.") and field in e.value.field, e.value


def test_the_operators_labels_are_refused_only_when_changed() -> None:
    labels = plain_pod()["metadata"]["labels"]
    same = {k: v for k, v in labels.items() if not k.startswith("agentfleet.io/")}
    assert merged({"metadata": {"labels": same}})["metadata"]["labels"] == labels


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ({"metadata": {"labels": {"agentfleet.io/x": "1"}}}, "keys under agentfleet.io/ are the operator's"),
        ({"spec": {"containers": [{"name": "vllm", "command": ["sh"]}]}}, "take only env and volumeMounts"),
        ({"spec": {"containers": [{"name": "proxy"}]}}, "a sidecar needs an image"),
        ({"spec": {"nodeSelector": {"pool": "a"}}}, "use spec.placement instead"),
        ({"spec": {"containers": [{"name": "vllm", "securityContext": {"privileged": True}}]}}, "securityContext"),
        ({"spec": {"hostNetwork": True}}, "hostNetwork"),
    ],
)
def test_the_schema_refuses_what_it_can_say(template: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        mrs(template)


def test_the_crd_carries_the_rules_as_cel() -> None:
    import yaml

    from agentfleet.crdgen import render_all

    def rules(node: Any) -> list[str]:
        if isinstance(node, dict):
            return [r["rule"] for r in node.get("x-kubernetes-validations", [])] + [
                x for v in node.values() for x in rules(v)
            ]
        return [x for v in node for x in rules(v)] if isinstance(node, list) else []

    text = "\n".join(r for crd in render_all().values() for r in rules(yaml.safe_load(crd)))
    assert "self.labels.all(k, !k.startsWith('agentfleet.io/'))" in text
    assert "c.name in ['vllm']" in text and "c.name in ['worker', 'api']" in text


def test_the_overlay_rolls_replicas_only_where_it_is_set() -> None:
    plain = mrs()
    assert "podTemplate" not in plain.spec.wire()
    with_overlay = mrs({"metadata": {"annotations": {"a": "b"}}})
    assert spec_hash(with_overlay.spec) != spec_hash(plain.spec)
    assert render_pod(with_overlay, ONE_NODE, 0)["metadata"]["annotations"]["a"] == "b"


def test_the_controller_refuses_a_colliding_overlay_before_placing_anything() -> None:
    assert pod_template_refusal(mrs()) is None
    assert pod_template_refusal(mrs({"spec": {"volumes": [VOLUME]}})) is None
    reason, why = pod_template_refusal(mrs({"spec": {"volumes": [{"name": "dshm", "emptyDir": {}}]}}))
    assert reason == "InvalidSpec" and why.startswith("spec.podTemplate.spec.volumes[dshm]:")


def test_an_agentfleet_overlay_reaches_both_deployments_and_each_container_by_name() -> None:
    af = AgentFleet.model_validate(
        Fleet("support")
        .ns("team-a")
        .meta(uid="u-1")
        .pod_template(
            {
                "metadata": {"annotations": {"mesh.io/inject": "false"}},
                "spec": {
                    "volumes": [VOLUME],
                    "containers": [
                        {"name": "worker", "volumeMounts": [{"name": "certs", "mountPath": "/certs"}]},
                        {"name": "log-shipper", "image": "vector:0.40"},
                    ],
                    "nodeSelector": {"pool": "agents"},
                },
            }
        )
        .obj()
    )
    doc = {"fleet": "support"}
    deployments = {
        o["metadata"]["name"]: o["spec"]["template"]
        for o in fleet_render.render_runtime(af, doc, replicas=1)
        if o["kind"] == "Deployment"
    }
    worker, api = deployments["support-worker"], deployments["support-api"]
    for t in (worker, api):
        assert t["metadata"]["annotations"]["mesh.io/inject"] == "false" and t["spec"]["nodeSelector"] == {
            "pool": "agents"
        }
        assert [c["name"] for c in t["spec"]["containers"]][-1] == "log-shipper"
    assert worker["spec"]["containers"][0]["volumeMounts"][-1]["mountPath"] == "/certs"
    assert all(m["mountPath"] != "/certs" for m in api["spec"]["containers"][0]["volumeMounts"])
