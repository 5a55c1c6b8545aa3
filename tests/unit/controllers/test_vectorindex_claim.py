"""A VectorIndex's volume source is mounted into the ingestion Job, whose image the spec's author
chooses: only once the claim's owner consented (the label agentfleet.io/consent=true), as every
volume the operator mounts (issue 57, finding 12). Whole passes; Milvus and the API faked."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from agentfleet_milvus import CollectionManager

from agentfleet.controllers import vectorindex as ctl
from agentfleet.reconcile.events import EventRecorder, post_with_kube

NS = "team-a"


class FakeKube:
    def __init__(self, claim: dict[str, Any] | None) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        if claim is not None:
            self.objects[("PersistentVolumeClaim", "corpus")] = claim
        self.applied: list[str] = []
        self.events: list[tuple[str, str, str]] = []
        self.status: dict[str, Any] = {}

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return copy.deepcopy(self.objects.get((kind, name)))

    def apply(self, obj: dict[str, Any], *, force: bool = True) -> dict[str, Any]:
        self.applied.append(obj["kind"])
        self.objects[(obj["kind"], obj["metadata"]["name"])] = copy.deepcopy(obj)
        return obj

    def list(self, *_: Any, **__: Any) -> list[dict[str, Any]]:
        return []

    def delete(self, *_: Any, **__: Any) -> bool:
        return True

    def merge_patch_status(
        self, api_version: str, kind: str, name: str, namespace: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        self.status.update(copy.deepcopy(status))
        return {}

    def event(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))


@pytest.fixture(autouse=True)
def no_milvus(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Milvus is reached only once the claim may be mounted: a refused pass calls it not at all."""
    called: list[str] = []

    def connect(target: Any, spec: Any, **_: Any) -> Any:
        called.append(target.uri)
        raise ctl.SecretRefused("Milvus is not what this test is about")

    monkeypatch.setattr(CollectionManager, "connect", connect)
    return called


def vectorindex() -> dict[str, Any]:
    return {
        "apiVersion": "agentfleet.io/v1alpha1",
        "kind": "VectorIndex",
        "metadata": {"name": "docs", "namespace": NS, "uid": "u1", "generation": 1},
        "spec": {
            "milvus": {"uri": "http://milvus:19530"},
            "collection": "docs",
            "dimension": 384,
            "source": {"persistentVolumeClaim": {"claimName": "corpus", "path": "/docs"}},
        },
    }


def run(kube: FakeKube) -> float | None:
    try:
        return ctl.VectorIndexPass(kube, EventRecorder(post_with_kube(kube)), vectorindex()).run()
    except ctl.MilvusNotReady:
        return None


@pytest.mark.parametrize(
    ("claim", "reason"),
    [
        ({"metadata": {"name": "corpus", "labels": {}}}, "PersistentVolumeClaimNotConsented"),
        (None, "PersistentVolumeClaimNotFound"),
    ],
)
def test_a_source_claim_without_consent_is_refused_and_nothing_is_created(
    claim: dict[str, Any] | None, reason: str, no_milvus: list[str]
) -> None:
    kube = FakeKube(claim)
    assert run(kube) == ctl.CLAIM_RECHECK_SECONDS  # labelling a claim wakes nothing: look again
    ready = next(c for c in kube.status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == reason
    assert ready["message"].startswith("spec.source.persistentVolumeClaim.claimName: PersistentVolumeClaim corpus")
    assert kube.events == [("Warning", reason, ready["message"])]
    assert kube.applied == [] and no_milvus == []
    if claim is not None:
        assert f"kubectl label pvc -n {NS} corpus agentfleet.io/consent=true" in ready["message"]


def test_a_consented_source_claim_goes_on_to_milvus(no_milvus: list[str]) -> None:
    kube = FakeKube({"metadata": {"name": "corpus", "labels": {"agentfleet.io/consent": "true"}}})
    run(kube)
    assert no_milvus == ["http://milvus:19530"]
    assert not any(c["reason"].startswith("PersistentVolumeClaim") for c in kube.status["conditions"])
