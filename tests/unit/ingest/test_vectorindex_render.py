"""Renderers of a VectorIndex's children: golden files plus the invariants behind them.

Regenerate the golden files after an intended change with AGENTFLEET_UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from agentfleet_contract.vectorindex import VectorIndex

from agentfleet.render.vectorindex import (
    RenderError,
    ingestion_job_name,
    milvus_ready,
    milvus_uri,
    query_nodes,
    render_ingestion,
    render_ingestion_job,
    render_milvus,
    source_revision,
    twice,
)
from agentfleet_runtime.ingest.cli import EXIT_PERMANENT, build_parser

GOLDEN = Path(__file__).parent / "golden"
ROOT = Path(__file__).resolve().parents[3]
IMAGE = "ghcr.io/agentfleet/agentfleet:0.1.0"
URI = "http://milvus.db:19530"


def vi(spec: dict[str, Any], name: str = "kb") -> VectorIndex:
    return VectorIndex.model_validate(
        {"metadata": {"name": name, "namespace": "team-a", "uid": "0f1e2d3c-0000-4000-8000-000000000001"}, "spec": spec}
    )


CASES: dict[str, dict[str, Any]] = {
    "configmap": {
        "milvus": {"uri": URI, "credentials": {"secretName": "milvus-auth"}, "database": "agents"},
        "collection": "handbook",
        "source": {"configMap": {"name": "handbook-docs"}, "revision": "v1"},
    },
    "pvc": {
        "milvus": {"uri": URI},
        "collection": "wiki",
        "source": {
            "persistentVolumeClaim": {"claimName": "wiki-export", "path": "/exports/2026/"},
            "revision": "2026-11",
        },
        "chunking": {"maxTokens": 128, "overlapTokens": 16},
        "ingestion": {"parallelism": 4, "image": "registry.local/ingest:7", "backoffLimit": 6},
    },
}


def _check_golden(name: str, objects: list[dict[str, Any]]) -> None:
    path = GOLDEN / f"vectorindex-{name}.yaml"
    text = yaml.safe_dump_all(objects, sort_keys=True)
    if os.environ.get("AGENTFLEET_UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}: run with AGENTFLEET_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{path.name} differs from the rendering; check the change, then regenerate"


@pytest.mark.parametrize("case", sorted(CASES))
def test_ingestion_objects_match_golden(case: str) -> None:
    v = vi(CASES[case])
    _check_golden(case, render_ingestion(v, image=IMAGE, milvus_uri=URI, revision=source_revision(v.spec)))


def test_managed_milvus_example_matches_golden() -> None:
    doc = yaml.safe_load((ROOT / "examples" / "vectorindex-managed-milvus.yaml").read_text())
    doc["metadata"].update(namespace="team-a", uid="0f1e2d3c-0000-4000-8000-000000000002")
    v = VectorIndex.model_validate(doc)
    endpoint = "http://kb-milvus-milvus.team-a:19530"
    objects = [
        render_milvus(v, expected_rows=2_000_000),
        *render_ingestion(v, image=IMAGE, milvus_uri=endpoint, revision=source_revision(v.spec)),
    ]
    _check_golden("managed-cluster", objects)


def _job(spec: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    v = vi(spec or CASES["configmap"])
    return render_ingestion_job(
        v, image=IMAGE, milvus_uri=URI, revision=kw.pop("revision", source_revision(v.spec)), **kw
    )


def test_job_is_an_indexed_job_with_one_completion_per_worker() -> None:
    job = _job(CASES["pvc"])
    s = job["spec"]
    assert (s["completionMode"], s["completions"], s["parallelism"], s["backoffLimit"]) == ("Indexed", 4, 4, 6)
    rules = s["podFailurePolicy"]["rules"]
    assert rules[0]["onExitCodes"]["values"] == [EXIT_PERMANENT] and rules[0]["action"] == "FailJob"
    pod = s["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    c = pod["containers"][0]
    assert c["image"] == "registry.local/ingest:7"  # spec.ingestion.image wins over the operator's
    assert c["command"] == ["python", "-m", "agentfleet_runtime.ingest"]
    assert {"name": "source", "mountPath": "/mnt/source", "readOnly": True, "subPath": "exports/2026"} in c[
        "volumeMounts"
    ]


def test_pod_is_locked_down() -> None:
    pod = _job()["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    sc = pod["containers"][0]["securityContext"]
    assert (
        sc["readOnlyRootFilesystem"] is True
        and sc["allowPrivilegeEscalation"] is False
        and sc["capabilities"] == {"drop": ["ALL"]}
    )
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    # The read-only root needs a writable /tmp for the model cache.
    assert {"name": "tmp", "mountPath": "/tmp"} in pod["containers"][0]["volumeMounts"]


def test_children_are_owned_by_the_vectorindex() -> None:
    for obj in render_ingestion(
        vi({**CASES["configmap"], "source": {"urls": ["https://x/a.md"]}}), image=IMAGE, milvus_uri=URI, revision="r"
    ):
        (ref,) = obj["metadata"]["ownerReferences"]
        assert ref == {
            "apiVersion": "agentfleet.io/v1alpha1",
            "kind": "VectorIndex",
            "name": "kb",
            "uid": "0f1e2d3c-0000-4000-8000-000000000001",
            "controller": True,
            "blockOwnerDeletion": True,
        }
        assert obj["metadata"]["namespace"] == "team-a"


def test_credentials_come_from_the_secret_never_inline() -> None:
    env = {e["name"]: e for e in _job()["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MILVUS_USER"]["valueFrom"] == {"secretKeyRef": {"name": "milvus-auth", "key": "username"}}
    assert env["MILVUS_PASSWORD"]["valueFrom"] == {"secretKeyRef": {"name": "milvus-auth", "key": "password"}}
    assert env["MILVUS_URI"]["value"] == URI and env["INGEST_WORKERS"]["value"] == "2"


def test_a_new_revision_makes_a_new_job_and_the_same_inputs_the_same_job() -> None:
    a, b = _job(revision="v1"), _job(revision="v1")
    assert a["metadata"]["name"] == b["metadata"]["name"]
    c = _job(revision="v2")
    assert c["metadata"]["name"] != a["metadata"]["name"]
    chunking = _job({**CASES["configmap"], "chunking": {"maxTokens": 256}}, revision="v1")
    assert chunking["metadata"]["name"] != a["metadata"]["name"]  # other chunks: re-ingest
    batch = _job({**CASES["configmap"], "embedding": {"batchSize": 8}, "ingestion": {"backoffLimit": 9}}, revision="v1")
    assert batch["metadata"]["name"] == a["metadata"]["name"]  # same rows: same Job
    assert a["metadata"]["annotations"]["agentfleet.io/source-revision"] == "v1"


def test_derived_revision_follows_the_source_and_what_the_controller_observed() -> None:
    spec = vi({**CASES["configmap"], "source": {"configMap": {"name": "docs"}}}).spec
    assert source_revision(spec, "rv1") == source_revision(spec, "rv1") != source_revision(spec, "rv2")
    assert source_revision(spec).startswith("auto-")


def test_job_names_stay_short_enough_for_indexed_pod_hostnames() -> None:
    name = ingestion_job_name("a" * 250, "0123456789")
    assert len(name) <= 52 and name.endswith("-ingest-0123456789")
    job = render_ingestion_job(vi(CASES["configmap"], name="x" * 200), image=IMAGE, milvus_uri=URI, revision="r")
    assert len(job["metadata"]["name"]) <= 52


def test_rendered_args_are_what_the_worker_parses() -> None:
    for case in ("configmap", "pvc"):
        c = _job(CASES[case])["spec"]["template"]["spec"]["containers"][0]
        args = build_parser().parse_args(c["args"])
        assert args.source_dir == "/mnt/source" and args.collection == CASES[case]["collection"]
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert args.workers == int(env["INGEST_WORKERS"]) == CASES[case].get("ingestion", {}).get("parallelism", 2)
        assert (args.max_tokens, args.dimension) == (CASES[case].get("chunking", {}).get("maxTokens", 128), 384)
    urls = render_ingestion(
        vi({**CASES["configmap"], "source": {"urls": ["https://x/a", "https://x/b"]}}),
        image=IMAGE,
        milvus_uri=URI,
        revision="r",
    )
    cm, job = urls
    args = build_parser().parse_args(job["spec"]["template"]["spec"]["containers"][0]["args"])
    assert args.urls_file == "/mnt/urls/urls.txt" and cm["data"]["urls.txt"] == "https://x/a\nhttps://x/b\n"
    assert cm["metadata"]["name"] == job["metadata"]["name"] + "-urls"


def test_pvc_paths_may_not_escape_the_volume() -> None:
    with pytest.raises(RenderError, match="may not contain"):
        _job({**CASES["pvc"], "source": {"persistentVolumeClaim": {"claimName": "c", "path": "../etc"}}})
    root = _job({**CASES["pvc"], "source": {"persistentVolumeClaim": {"claimName": "c", "path": "/"}}})
    mounts = root["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    assert all("subPath" not in m for m in mounts)


def test_missing_source_or_uid_is_a_render_error() -> None:
    with pytest.raises(RenderError):
        _job({"milvus": {"uri": URI}, "collection": "c"})
    v = VectorIndex.model_validate({"metadata": {"name": "kb"}, "spec": CASES["configmap"]})
    with pytest.raises(RenderError, match="uid"):
        render_ingestion_job(v, image=IMAGE, milvus_uri=URI, revision="r")


def _managed(mode: str, replicas: int, **managed: Any) -> VectorIndex:
    return vi(
        {
            "milvus": {"managed": {"mode": mode, **managed}},
            "collection": "c",
            "inMemoryReplicas": replicas,
            "deletionPolicy": "Retain",
        }
    )


def test_query_nodes_fit_every_replica() -> None:
    v = _managed("Cluster", 3, queryNodeMemory="8Gi")
    assert query_nodes(v.spec) == 3  # one node per replica at least
    assert query_nodes(v.spec, expected_rows=100_000) == 3
    # 10M rows x (384 x 4 x 1.3 + 1536) bytes ~ 35 GB per replica; 8Gi x 0.6 usable -> 7 nodes each.
    assert query_nodes(v.spec, expected_rows=10_000_000) == 21
    m = render_milvus(v, expected_rows=10_000_000)
    qn = m["spec"]["components"]["queryNode"]
    assert qn == {"replicas": 21, "resources": {"requests": {"memory": "8Gi"}, "limits": {"memory": "8Gi"}}}
    assert m["spec"]["dependencies"]["storage"]["inCluster"]["deletionPolicy"] == "Retain"
    assert m["spec"]["dependencies"]["storage"]["inCluster"]["pvcDeletion"] is False


def test_standalone_milvus_sets_only_our_fields() -> None:
    m = render_milvus(_managed("Standalone", 1, image="milvusdb/milvus:v2.6.4", storageSize="20Gi"))
    assert m["apiVersion"] == "milvus.io/v1beta1" and m["kind"] == "Milvus" and m["metadata"]["name"] == "kb-milvus"
    assert m["spec"]["mode"] == "standalone"
    assert m["spec"]["components"] == {
        "image": "milvusdb/milvus:v2.6.4",
        "standalone": {"resources": {"requests": {"memory": "8Gi"}, "limits": {"memory": "8Gi"}}},
    }
    assert m["spec"]["dependencies"]["storage"]["inCluster"]["values"] == {"persistence": {"size": "20Gi"}}
    with pytest.raises(RenderError):
        render_milvus(vi(CASES["configmap"]))


def test_milvus_readiness_and_endpoint() -> None:
    assert milvus_ready(None) == (False, "the Milvus object does not exist yet")
    pending = {
        "status": {
            "conditions": [
                {"type": "MilvusReady", "status": "False", "reason": "DependencyNotReady", "message": "etcd"}
            ]
        }
    }
    assert milvus_ready(pending) == (False, "DependencyNotReady: etcd") and milvus_uri(pending) is None
    ready = {
        "status": {
            "endpoint": "kb-milvus-milvus.team-a:19530",
            "conditions": [{"type": "MilvusReady", "status": "True", "message": "ok"}],
        }
    }
    assert milvus_ready(ready) == (True, "ok")
    assert milvus_uri(ready) == "http://kb-milvus-milvus.team-a:19530"
    assert milvus_uri({"status": {**ready["status"], "endpoint": "svc.ns"}}) == "http://svc.ns:19530"


def test_chunking_defaults_agree_across_api_worker_and_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentfleet_contract.vectorindex import Chunking

    from agentfleet_runtime.ingest.pipeline import IngestOptions

    # A worker started by hand (no operator-rendered args) must chunk like a default VectorIndex.
    monkeypatch.delenv("INGEST_MAX_TOKENS", raising=False)
    monkeypatch.delenv("INGEST_OVERLAP_TOKENS", raising=False)
    args = build_parser().parse_args([])
    api = Chunking()
    assert (
        (api.max_tokens, api.overlap_tokens)
        == (args.max_tokens, args.overlap_tokens)
        == (IngestOptions().max_tokens, IngestOptions().overlap_tokens)
    )


def test_worker_resources_come_from_the_spec_and_keep_the_job() -> None:
    # A node with less than a whole free CPU never scheduled the worker: the request was fixed at 1.
    default = _job(revision="v1")
    (container,) = default["spec"]["template"]["spec"]["containers"]
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "1Gi"},
        "limits": {"cpu": "2", "memory": "2Gi"},
    }
    small = _job({**CASES["configmap"], "ingestion": {"cpu": "250m", "memory": "768Mi"}}, revision="v1")
    (container,) = small["spec"]["template"]["spec"]["containers"]
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "768Mi"},
        "limits": {"cpu": "500m", "memory": "1536Mi"},
    }
    assert small["metadata"]["name"] == default["metadata"]["name"]  # the same rows: the same Job


@pytest.mark.parametrize(
    ("quantity", "doubled"),
    [("1", "2"), ("0.5", "1"), ("0.25", "0.5"), ("100m", "200m"), ("1.5Gi", "3Gi"), ("100", "200")],
)
def test_a_limit_is_twice_the_request_in_its_own_unit(quantity: str, doubled: str) -> None:
    assert twice(quantity) == doubled
