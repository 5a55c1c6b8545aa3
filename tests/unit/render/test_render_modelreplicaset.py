"""Rendered children of a ModelReplicaSet: golden files plus the contract the controller relies on.

Regenerate the golden files after an intended change with:
    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/render -q
and review the diff.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest
import yaml
from agentfleet_contract import ModelReplicaSet

from agentfleet.placement import Assignment, inventory_from_k8s, pinned_node
from agentfleet.render import (
    RenderError,
    multi_node_backend,
    render_all,
    render_pod,
    render_services,
    selector_string,
    spec_hash,
    vllm_args,
)
from agentfleet.render.modelreplicaset import cache_job_name, cache_model, render_cache_job
from tests.builders import Node

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = Path(__file__).parent / "golden"
UID = "6f1c2a9e-0000-4000-8000-000000000001"


def mrs_from(doc: dict, namespace: str = "serving") -> ModelReplicaSet:
    doc = {**doc, "metadata": {**doc["metadata"], "namespace": namespace, "uid": UID}}
    return ModelReplicaSet.model_validate(doc)


def example(name: str) -> dict:
    return yaml.safe_load((ROOT / "examples" / name).read_text())


def single_node() -> ModelReplicaSet:
    return mrs_from(
        {
            "apiVersion": "agentfleet.io/v1alpha1",
            "kind": "ModelReplicaSet",
            "metadata": {"name": "qwen-7b"},
            "spec": {
                "model": {
                    "name": "Qwen/Qwen2.5-7B-Instruct",
                    "servedName": "qwen-7b",
                    "revision": "main",
                    "hfTokenSecretRef": {"name": "hf-token", "key": "token"},
                },
                "engine": {
                    "tensorParallelSize": 2,
                    "maxModelLen": 32768,
                    "maxNumSeqs": 128,
                    "kvCacheDtype": "fp8",
                    "extraArgs": ["--enable-chunked-prefill", "--max-num-batched-tokens=8192"],
                    "env": [
                        {"name": "VLLM_NO_USAGE_STATS", "value": "0"},
                        {"name": "VLLM_LOGGING_LEVEL", "value": "INFO"},
                    ],
                    "shmSize": "8Gi",
                    "modelCache": {"claimName": "hf-cache"},
                },
                "gpu": {"product": "NVIDIA-H100-80GB-HBM3"},
                "placement": {
                    "spreadAcross": "Node",
                    "spreadMode": "Required",
                    "nodeSelector": {"agentfleet.io/node-pool": "h100-b1"},
                    "tolerations": [
                        {
                            "key": "dedicated",
                            "operator": "Equal",
                            "value": "inference",
                            "effect": "NoSchedule",
                            "tolerationSeconds": 300,
                        }
                    ],
                    "priorityClassName": "inference-high",
                },
            },
        }
    )


def gang(image: str | None = None, model: str | None = None, backend: str | None = None) -> ModelReplicaSet:
    doc = example("modelreplicaset-multinode.yaml")
    if image:
        doc["spec"]["engine"]["image"] = image
    if backend:
        doc["spec"]["engine"]["multiNodeBackend"] = backend
    if model:
        doc["spec"]["model"]["name"] = model
    return mrs_from(doc)


SINGLE_PLACEMENTS = [
    Assignment("serving/qwen-7b-7d9f4-0", "serving/qwen-7b", ("h100-b1-0",), 2, block="block-1", zone="sim-zone-a"),
    Assignment("serving/qwen-7b-7d9f4-1", "serving/qwen-7b", ("h100-b1-1",), 2, block="block-1", zone="sim-zone-a"),
]
GANG_PLACEMENT = Assignment(
    "serving/llama-405b-5c2b1-0",
    "serving/llama-405b",
    ("h100-b2-0", "h100-b2-1"),
    8,
    block="block-2",
    zone="sim-zone-a",
)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (launch scripts) as literal blocks, so golden diffs read like the scripts."""


_Dumper.add_representer(
    str, lambda d, s: d.represent_scalar("tag:yaml.org,2002:str", s, style="|" if "\n" in s else None)
)


def check_golden(name: str, objs: list[dict]) -> None:
    text = yaml.dump_all(objs, Dumper=_Dumper, sort_keys=False, width=120)
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with UPDATE_GOLDEN=1 to create it"
    assert text == path.read_text(), (
        f"{name} differs from the golden file; if intended, regenerate with UPDATE_GOLDEN=1"
    )


def test_golden_single_node_replicas() -> None:
    check_golden("single-node.yaml", render_all(single_node(), SINGLE_PLACEMENTS, draining={"qwen-7b-7d9f4-1"}))


def test_golden_gang_ray() -> None:
    check_golden("gang-ray.yaml", render_all(gang(), [GANG_PLACEMENT]))


def test_golden_gang_multiprocessing_from_pvc() -> None:
    m = gang(
        image="vllm/vllm-openai:v0.18.0",
        backend="Multiprocessing",
        model="pvc://models/meta-llama/Llama-3.1-405B-Instruct-FP8",
    )
    check_golden("gang-mp.yaml", render_all(m, [GANG_PLACEMENT]))


# --- the contract ----------------------------------------------------------------------------


def by_kind(objs: list[dict], kind: str) -> list[dict]:
    return [o for o in objs if o["kind"] == kind]


def test_every_child_is_owned_and_labelled() -> None:
    objs = render_all(gang(), [GANG_PLACEMENT])
    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [
        ("Service", "llama-405b"),
        ("Service", "llama-405b-replicas"),
        ("Service", "llama-405b-gang"),
        ("PodDisruptionBudget", "llama-405b"),
        ("NetworkPolicy", "llama-405b"),
        ("Pod", "llama-405b-5c2b1-0-0"),
        ("Pod", "llama-405b-5c2b1-0-1"),
    ]
    for o in objs:
        m = o["metadata"]
        assert m["namespace"] == "serving"
        assert m["ownerReferences"] == [
            {
                "apiVersion": "agentfleet.io/v1alpha1",
                "kind": "ModelReplicaSet",
                "name": "llama-405b",
                "uid": UID,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert m["labels"]["agentfleet.io/modelreplicaset"] == "llama-405b"
        assert m["labels"]["app.kubernetes.io/managed-by"] == "agentfleet"


def test_pods_request_their_share_and_are_pinned_to_the_plan() -> None:
    leader, worker = by_kind(render_all(gang(), [GANG_PLACEMENT]), "Pod")
    for pod, node in ((leader, "h100-b2-0"), (worker, "h100-b2-1")):
        c = pod["spec"]["containers"][0]
        assert c["resources"]["requests"]["nvidia.com/gpu"] == c["resources"]["limits"]["nvidia.com/gpu"] == "8"
        assert pinned_node(pod) == node
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["spec"]["tolerations"]
        assert pod["spec"]["restartPolicy"] == "Never"
        assert pod["spec"]["enableServiceLinks"] is False
    assert leader["metadata"]["labels"]["agentfleet.io/role"] == "leader"
    assert worker["metadata"]["labels"]["agentfleet.io/role"] == "worker"
    assert "agentfleet.io/serving" not in worker["metadata"]["labels"]
    assert "readinessProbe" not in worker["spec"]["containers"][0]
    # A pinned pod that is not bound yet still counts on its node for the next plan.
    inv = inventory_from_k8s([Node("h100-b2-1").obj()], [worker])
    assert inv[0].used == 8 and inv[0].held == {"serving/llama-405b-5c2b1-0": 8}


def test_single_node_pod() -> None:
    objs = render_all(single_node(), SINGLE_PLACEMENTS, draining={"qwen-7b-7d9f4-1"})
    serving, draining = by_kind(objs, "Pod")
    assert serving["metadata"]["name"] == "qwen-7b-7d9f4-0"
    assert serving["metadata"]["labels"]["agentfleet.io/serving"] == "true"
    assert draining["metadata"]["labels"]["agentfleet.io/serving"] == "false"
    spec = serving["spec"]
    assert spec["restartPolicy"] == "Always" and spec["priorityClassName"] == "inference-high"
    assert spec["nodeSelector"] == {"agentfleet.io/node-pool": "h100-b1"}
    c = spec["containers"][0]
    assert c["command"] == ["vllm", "serve"]
    assert c["resources"] == {
        "requests": {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "2"},
        "limits": {"memory": "72Gi", "nvidia.com/gpu": "2"},
    }
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/health", "port": "http"}
    # 1800 s startup timeout / 10 s period.
    assert c["startupProbe"]["failureThreshold"] == 180
    env = {e["name"]: e for e in c["env"]}
    assert env["HF_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "hf-token", "key": "token"}}
    assert env["VLLM_NO_USAGE_STATS"]["value"] == "0"  # the spec's env wins
    assert [e["name"] for e in c["env"]].count("VLLM_NO_USAGE_STATS") == 1
    vols = {v["name"]: v for v in spec["volumes"]}
    assert vols["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "8Gi"}
    assert vols["model-cache"]["persistentVolumeClaim"] == {"claimName": "hf-cache"}
    assert serving["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "8000",
        "prometheus.io/path": "/metrics",
    }
    (tsc,) = spec["topologySpreadConstraints"]
    assert (tsc["topologyKey"], tsc["whenUnsatisfiable"], tsc["nodeAffinityPolicy"]) == (
        "kubernetes.io/hostname",
        "DoNotSchedule",
        "Honor",
    )
    assert {
        "key": "dedicated",
        "operator": "Equal",
        "value": "inference",
        "effect": "NoSchedule",
        "tolerationSeconds": 300,
    } in spec["tolerations"]


def test_vllm_arguments_from_the_spec() -> None:
    args = vllm_args(single_node().spec)
    joined = " ".join(args)
    assert args[0] == "Qwen/Qwen2.5-7B-Instruct"
    for flag in (
        "--served-model-name qwen-7b",
        "--host 0.0.0.0",
        "--port 8000",
        "--tensor-parallel-size 2",
        "--pipeline-parallel-size 1",
        "--max-model-len 32768",
        "--max-num-seqs 128",
        "--gpu-memory-utilization 0.9",
        "--enable-prefix-caching",
        "--kv-cache-dtype fp8",
        "--dtype auto",
        "--revision main",
    ):
        assert flag in joined
    assert args[-2:] == ["--enable-chunked-prefill", "--max-num-batched-tokens=8192"]
    assert "--distributed-executor-backend" not in args
    s3 = gang(model="s3://models/llama-405b-fp8").spec
    assert vllm_args(s3)[:1] == ["s3://models/llama-405b-fp8"] and "--load-format runai_streamer" in " ".join(
        vllm_args(s3)
    )


def test_ray_gang_launch() -> None:
    leader, worker = by_kind(render_all(gang(), [GANG_PLACEMENT]), "Pod")
    lscript = leader["spec"]["containers"][0]["command"][2]
    assert "ray start --head --port=6379" in lscript
    last = shlex.split(lscript.splitlines()[-1])
    assert last[:3] == ["exec", "vllm", "serve"]
    assert last[last.index("--distributed-executor-backend") + 1] == "ray"
    assert (
        last[last.index("--tensor-parallel-size") + 1] == "8"
        and last[last.index("--pipeline-parallel-size") + 1] == "2"
    )
    # The leader waits for all 16 GPUs, at most the startup timeout.
    assert " 16 3600" in lscript
    wscript = worker["spec"]["containers"][0]["command"][2]
    assert (
        "exec ray start --address=llama-405b-5c2b1-0-0.llama-405b-gang.serving.svc:6379" in wscript
        and "--block" in wscript
    )
    assert leader["spec"]["hostname"] == "llama-405b-5c2b1-0-0" and leader["spec"]["subdomain"] == "llama-405b-gang"
    for pod in (leader, worker):
        env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
        assert env["VLLM_HOST_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}


def test_multiprocessing_gang_launch() -> None:
    m = gang(image="vllm/vllm-openai:v0.18.0", backend="Multiprocessing")
    assert multi_node_backend(m.spec) == "mp"
    leader, worker = by_kind(render_all(m, [GANG_PLACEMENT]), "Pod")
    la, wa = leader["spec"]["containers"][0]["args"], worker["spec"]["containers"][0]["args"]
    assert (
        " ".join(la).count(
            "--nnodes 2 --node-rank 0 --master-addr llama-405b-5c2b1-0-0.llama-405b-gang.serving.svc "
            "--master-port 29501"
        )
        == 1
    )
    assert "--headless" not in la and "--headless" in wa and "--node-rank 1" in " ".join(wa)


def test_backend_choice() -> None:
    # The spec decides, never the image tag: tags are not versions ("latest", digests).
    assert multi_node_backend(gang().spec) == "ray"
    assert multi_node_backend(gang(image="vllm/vllm-openai:v0.18.0").spec) == "ray"
    assert multi_node_backend(gang(backend="Multiprocessing").spec) == "mp"
    args = vllm_args(gang(backend="Multiprocessing").spec, nnodes=2, node_rank=0, master_addr="x")
    assert args.count("--nnodes") == 1


def test_services_select_ready_serving_pods() -> None:
    svc, headless = render_services(single_node())
    sel = {"agentfleet.io/modelreplicaset": "qwen-7b", "agentfleet.io/serving": "true"}
    assert svc["spec"]["type"] == "ClusterIP" and svc["spec"]["selector"] == sel
    assert svc["spec"]["ports"] == [
        {"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP", "appProtocol": "http"}
    ]
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["selector"] == sel
    assert headless["spec"]["publishNotReadyAddresses"] is False
    assert len(render_services(single_node(), gang=True)) == 3


def test_pdb() -> None:
    (pdb,) = by_kind(render_all(single_node(), SINGLE_PLACEMENTS), "PodDisruptionBudget")
    assert pdb["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": {"agentfleet.io/modelreplicaset": "qwen-7b"}},
        "unhealthyPodEvictionPolicy": "AlwaysAllow",
    }


def test_selector_and_spec_hash() -> None:
    assert selector_string("qwen-7b") == "agentfleet.io/modelreplicaset=qwen-7b,agentfleet.io/role notin (worker)"
    a, b = single_node(), single_node()
    assert spec_hash(a.spec) == spec_hash(b.spec)
    b.spec.replicas = 7
    b.spec.autoscaling.max_replicas = 9
    assert spec_hash(a.spec) == spec_hash(b.spec)  # scaling never rolls pods
    b.spec.engine.max_num_seqs = 64
    assert spec_hash(a.spec) != spec_hash(b.spec)


def test_names_that_kubernetes_would_refuse() -> None:
    long = single_node()
    long.metadata["name"] = "m" * 60
    with pytest.raises(RenderError, match="Service name"):
        render_services(long)
    with pytest.raises(RenderError, match="pod name"):
        render_pod(single_node(), Assignment("serving/" + "r" * 62, "serving/qwen-7b", ("a", "b"), 8), 0)
    no_uid = single_node()
    del no_uid.metadata["uid"]
    with pytest.raises(RenderError, match="uid"):
        render_services(no_uid)


# --- serving pods are closed (issue 39) ---------------------------------------------------------


@pytest.mark.parametrize("mrs", [single_node(), gang(), gang(backend="Multiprocessing")], ids=["single", "ray", "mp"])
def test_serving_pods_run_restricted_without_an_api_token_and_require_an_api_key(mrs: ModelReplicaSet) -> None:
    placements = SINGLE_PLACEMENTS if mrs.metadata["name"] == "qwen-7b" else [GANG_PLACEMENT]
    for pod in by_kind(render_all(mrs, placements), "Pod"):
        spec = pod["spec"]
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"] == {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "fsGroup": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        (c,) = spec["containers"]
        assert c["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        env = {e["name"]: e for e in c["env"]}
        name = mrs.metadata["name"]
        assert env["VLLM_API_KEY"]["valueFrom"] == {"secretKeyRef": {"name": f"{name}-vllm-api-key", "key": "apiKey"}}
        # The key never appears on the command line (any reader of the pod sees that).
        assert "--api-key" not in " ".join(c.get("command", []) + c.get("args", []))
        # What vLLM writes goes to volumes: the root filesystem is read-only.
        mounts = {m["mountPath"] for m in c["volumeMounts"]}
        assert {"/tmp", "/dev/shm", "/models-cache"} <= mounts
        assert env["HOME"]["value"] == "/tmp" and env["VLLM_CACHE_ROOT"]["value"].startswith("/models-cache/")


def test_a_named_api_key_secret_and_uid_are_used() -> None:
    mrs = single_node()
    mrs.spec.engine.api_key_secret_ref = type(mrs.spec.model.hf_token_secret_ref).model_validate(
        {"name": "vllm-key", "key": "k"}
    )
    mrs.spec.engine.run_as_user = 2000
    pod = by_kind(render_all(mrs, SINGLE_PLACEMENTS), "Pod")[0]
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["VLLM_API_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "vllm-key", "key": "k"}}
    assert pod["spec"]["securityContext"]["runAsUser"] == 2000


def test_only_the_fleets_workers_the_operator_and_prometheus_reach_the_replicas() -> None:
    (np,) = by_kind(render_all(gang(), [GANG_PLACEMENT]), "NetworkPolicy")
    spec = np["spec"]
    assert spec["podSelector"] == {"matchLabels": {"agentfleet.io/modelreplicaset": "llama-405b"}}
    assert spec["policyTypes"] == ["Ingress"]
    http, gang_rule = spec["ingress"]
    assert http["ports"] == [{"protocol": "TCP", "port": 8000}]
    assert http["from"] == [
        {"podSelector": {"matchLabels": {"agentfleet.io/model": "llama-405b"}}},
        {"podSelector": {"matchLabels": {"agentfleet.io/routine-model": "llama-405b"}}},
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "agentfleet-system"}},
            "podSelector": {
                "matchLabels": {"app.kubernetes.io/name": "agentfleet", "app.kubernetes.io/component": "operator"}
            },
        },
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        },
    ]
    # A gang's members reach each other on every port (rendezvous, NCCL); nobody else does.
    assert gang_rule == {"from": [{"podSelector": {"matchLabels": {"agentfleet.io/modelreplicaset": "llama-405b"}}}]}


def test_the_generated_api_key_secret_carries_the_consent_label() -> None:
    from agentfleet.render.modelreplicaset import render_api_key_secret

    s = render_api_key_secret(single_node(), "v")
    assert s["metadata"]["name"] == "qwen-7b-vllm-api-key" and s["stringData"] == {"apiKey": "v"}
    assert s["metadata"]["labels"]["agentfleet.io/consent"] == "true"
    assert s["metadata"]["ownerReferences"][0]["kind"] == "ModelReplicaSet"


# --- the model cache's fill Job ----------------------------------------------------------------


def with_cache(m: ModelReplicaSet, **cache: object) -> ModelReplicaSet:
    doc = m.model_dump(by_alias=True, exclude_none=True, mode="json")
    doc["spec"]["engine"]["modelCache"] = {"claimName": "weights", **cache}
    return ModelReplicaSet.model_validate(doc)


def test_the_fill_job_writes_where_the_replicas_read() -> None:
    m = with_cache(single_node())
    job = render_cache_job(m)
    assert job is not None and job["kind"] == "Job" and len(job["metadata"]["name"]) <= 57
    pod = job["spec"]["template"]["spec"]
    fill = pod["containers"][0]
    replica = render_pod(
        m, Assignment(key="serving/qwen-7b-x-0", owner="serving/qwen-7b", nodes=("n1",), gpus_per_node=2), 0
    )
    server = replica["spec"]["containers"][0]
    env = {e["name"]: e for e in fill["env"]}
    # The replicas' own HF_HOME on the same claim: vLLM finds the snapshot and downloads nothing.
    assert env["HF_HOME"] == next(e for e in server["env"] if e["name"] == "HF_HOME")
    cache_mount = next(v for v in fill["volumeMounts"] if v["name"] == "model-cache")
    assert cache_mount == next(v for v in server["volumeMounts"] if v["name"] == "model-cache")
    assert {"name": "model-cache", "persistentVolumeClaim": {"claimName": "weights"}} in pod["volumes"]
    assert (env["AGENTFLEET_MODEL"]["value"], env["AGENTFLEET_REVISION"]["value"]) == (
        "Qwen/Qwen2.5-7B-Instruct",
        "main",
    )
    assert env["HF_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "hf-token", "key": "token"}}
    assert fill["image"] == server["image"] and fill["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsUser"] == replica["spec"]["securityContext"]["runAsUser"]
    assert pod["automountServiceAccountToken"] is False and pod["restartPolicy"] == "Never"
    assert "snapshot_download" in fill["command"][-1]
    # Its pod is no replica: nothing that selects the set's pods (scale, PDB, listing) may count it.
    assert "agentfleet.io/modelreplicaset" not in job["spec"]["template"]["metadata"]["labels"]
    assert job["spec"]["template"]["metadata"]["labels"]["agentfleet.io/model-cache"] == "qwen-7b"


def test_no_fill_without_a_claim_for_paths_and_object_stores_or_when_turned_off() -> None:
    doc = single_node().model_dump(by_alias=True, exclude_none=True, mode="json")
    doc["spec"]["engine"].pop("modelCache", None)
    assert render_cache_job(ModelReplicaSet.model_validate(doc)) is None
    assert render_cache_job(with_cache(single_node(), fill=False)) is None
    for source in ("s3://bucket/llama", "/models/llama", "pvc://weights/llama"):
        doc = with_cache(single_node()).model_dump(by_alias=True, exclude_none=True, mode="json")
        doc["spec"]["model"]["name"] = source
        assert render_cache_job(ModelReplicaSet.model_validate(doc)) is None, source


def test_the_fill_switch_rolls_no_pod() -> None:
    assert spec_hash(with_cache(single_node(), fill=False).spec) == spec_hash(with_cache(single_node()).spec)


def test_one_fill_job_per_model_revision_and_set() -> None:
    m = with_cache(single_node())
    names = {cache_job_name(n, f"Qwen/Qwen2.5-7B-Instruct@{r}") for n in ("qwen-7b", "other") for r in ("main", "v2")}
    assert len(names) == 4
    assert render_cache_job(m)["metadata"]["name"] == cache_job_name("qwen-7b", cache_model(m.spec))
    assert len(cache_job_name("x" * 54, "org/" + "m" * 500 + "@main")) <= 57
