"""The operator's Kubernetes client against a real kube-apiserver (e2e/harness/apiserver.py): an
apply the API server refuses raises Rejected with the API server's own message, which names the
field, so the reconcile can post it on the object (reconcile.shape); a valid apply goes through."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kubernetes import config

from agentfleet.kube import Kube
from agentfleet.rejected import Rejected
from e2e.harness import apiserver

NS = f"team-a-{uuid.uuid4().hex[:6]}"  # its own namespace on the run's shared API server


@pytest.fixture(scope="module")
def kube_client() -> Iterator[Kube]:
    why = apiserver.missing()
    if why:
        pytest.skip(why)
    server = apiserver.run_wide()
    server.kubectl("create", "namespace", NS)
    yield Kube(config.new_client_from_config(config_file=str(server.kubeconfig)))


def policy(cidr: str) -> dict:
    egress = [{"to": [{"ipBlock": {"cidr": cidr}}]}]
    spec = {"podSelector": {}, "policyTypes": ["Egress"], "egress": egress}
    meta = {"name": "gate", "namespace": NS}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta, "spec": spec}


def test_an_object_the_api_server_refuses_raises_rejected_naming_the_field(kube_client: Kube) -> None:
    with pytest.raises(Rejected) as got:
        kube_client.apply(policy("10.200.0.1"))  # what the gate's egress policy rendered before its fix
    e = got.value
    assert (e.kind, e.name, e.status) == ("NetworkPolicy", "gate", 422)
    assert "spec.egress[0].to[0].ipBlock.cidr" in e.message and "must be a valid CIDR" in e.message
    assert str(e).startswith("the API server refused NetworkPolicy/gate (422): ")


def test_a_valid_object_is_applied(kube_client: Kube) -> None:
    applied = kube_client.apply(policy("10.200.0.1/32"))
    assert applied["spec"]["egress"][0]["to"][0]["ipBlock"]["cidr"] == "10.200.0.1/32"
