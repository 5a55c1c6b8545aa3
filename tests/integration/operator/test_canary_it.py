"""The ModelReplicaSet canary against a real kube-apiserver (e2e/harness/apiserver.py, the CRDs of
crds/ installed): the pass's writes go through the API server's schema and patch semantics. A set
that a gated AgentFleet uses keeps its replica on the promoted model when its model changes and
adds one canary replica (its pod labelled serving=canary, the MRS-canary Service, MRS-promoted
owned by the set, status.canary and the Canary condition accepted by the CRD); when the fleet's
gate holds, the canary is drained and deleted and the replica stays; the next change's canary is
promoted by the agentfleet.io/gate annotation, which the pass removes by a merge patch (a value that
means nothing stays, said in the condition). No kubelet: the test binds the pods and writes their
status as a kubelet would."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agentfleet_contract.gate import canary_hash
from kubernetes import client, config

from agentfleet.controllers.modelreplicaset.caches import Snapshot, trim_node, trim_pod
from agentfleet.controllers.modelreplicaset.controller import ModelReplicaSetController
from agentfleet.kube import Kube
from e2e.harness import apiserver
from tests.builders import GROUP_VERSION, LLAMA_8B, MRS, Fleet, Node

NS = f"team-a-{uuid.uuid4().hex[:6]}"  # its own namespace on the run's shared API server
QWEN = "Qwen/Qwen2.5-7B-Instruct"
MISTRAL = "mistralai/Mistral-7B-Instruct-v0.3"
GATE = "agentfleet.io/gate"  # the override annotation, as on an AgentFleet
SERVING = "agentfleet.io/serving"
CRDS = Path(__file__).resolve().parents[3] / "crds"


@pytest.fixture(scope="module")
def server() -> Iterator[apiserver.ApiServer]:
    why = apiserver.missing()
    if why:
        pytest.skip(why)
    s = apiserver.run_wide()
    s.kubectl("apply", "--server-side", "--field-manager=agentfleet-it", "-f", str(CRDS))
    s.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    s.kubectl("create", "namespace", NS)
    yield s


class Cluster:
    def __init__(self, s: apiserver.ApiServer) -> None:
        self.s = s
        api = config.new_client_from_config(config_file=str(s.kubeconfig))
        self.kube = Kube(api)
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.clock = [1_800_000_000.0]
        self.ctl = ModelReplicaSetController(
            self.kube, workers=2, clock=lambda: self.clock[0], metrics=lambda ip, port: None
        )  # type: ignore[arg-type]

    def run(self) -> None:
        nodes = [trim_node(n) for n in self.kube.list("v1", "Node")]
        pods = [t for p in self.kube.list("v1", "Pod", NS) if (t := trim_pod(p))]
        self.ctl.reconcile((NS, "m"), Snapshot(nodes, pods, {}, gated=True))

    def mrs(self) -> dict[str, Any]:
        got = self.kube.get(GROUP_VERSION, "ModelReplicaSet", "m", NS)
        assert got is not None
        return got

    def pods(self) -> dict[str, dict[str, Any]]:
        return {p["metadata"]["name"]: p for p in self.kube.list("v1", "Pod", NS)}

    def labels(self) -> dict[str, str]:
        return {
            p["metadata"]["labels"]["agentfleet.io/replica"]: p["metadata"]["labels"][SERVING]
            for p in self.pods().values()
            if not p["metadata"].get("deletionTimestamp")
        }

    def start_pods(self) -> None:
        """What the scheduler and the kubelet would do: bind each pod where its affinity pins it, Ready."""
        for i, (name, p) in enumerate(sorted(self.pods().items())):
            if p["spec"].get("nodeName"):
                continue
            terms = p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            node = terms["nodeSelectorTerms"][0]["matchFields"][0]["values"][0]
            body = client.V1Binding(
                metadata=client.V1ObjectMeta(name=name),
                target=client.V1ObjectReference(kind="Node", name=node, api_version="v1"),
            )
            self.core.create_namespaced_binding(NS, body, _preload_content=False)
            status = {
                "phase": "Running",
                "podIP": f"10.0.0.{i + 10}",
                "conditions": [{"type": "Ready", "status": "True"}],
            }
            self.core.patch_namespaced_pod_status(name, NS, {"status": status})

    def fleet_gate(self, phase: str) -> None:
        h = canary_hash(self.mrs()["spec"])
        gate = {"phase": phase, "canaries": [{"modelReplicaSet": "m", "hash": h}]}
        self.custom.patch_namespaced_custom_object_status(
            "agentfleet.io", "v1alpha1", NS, "agentfleets", "support", {"status": {"gate": gate}}
        )


def test_a_canary_replica_held_by_the_gate_then_one_promoted_by_the_annotation(server: apiserver.ApiServer) -> None:
    c = Cluster(server)
    server.apply({"apiVersion": "v1", "kind": "Node", **Node("n1").block("b1").obj()})
    server.kubectl(
        "patch", "node", "n1", "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": Node("n1").obj()["status"]}),
    )  # fmt: skip
    # The API server's admission taints a new node not-ready; a kubelet would lift it once Ready.
    server.kubectl("patch", "node", "n1", "--type=merge", "-p", json.dumps({"spec": Node("n1").obj()["spec"]}))
    server.apply(MRS("m").ns(NS).replicas(1).lifecycle(30, 10, 40).obj())
    server.apply(Fleet("support").ns(NS).model("m").gate().obj())
    for _ in range(2):
        c.run()
    c.start_pods()
    c.run()
    (old,) = c.labels()
    promoted = c.kube.get("v1", "ConfigMap", "m-promoted", NS)
    assert promoted is not None and LLAMA_8B in promoted["data"]["fields"]
    assert promoted["metadata"]["ownerReferences"][0]["kind"] == "ModelReplicaSet"
    assert c.mrs()["status"]["canary"]["phase"] == "Serving"

    qwen = json.dumps({"spec": {"model": {"name": QWEN}}})
    server.kubectl("patch", "modelreplicaset", "m", "-n", NS, "--type=merge", "-p", qwen)
    c.run()
    got = c.labels()
    (canary,) = set(got) - {old}
    assert got == {old: "true", canary: "canary"}
    canary_pod = next(p for p in c.pods().values() if p["metadata"]["labels"]["agentfleet.io/replica"] == canary)
    assert QWEN in canary_pod["spec"]["containers"][0]["args"]
    svc = c.kube.get("v1", "Service", "m-canary", NS)
    assert svc is not None and svc["spec"]["selector"][SERVING] == "canary"
    replicas = c.kube.get("v1", "Service", "m-replicas", NS)
    assert replicas is not None and replicas["spec"]["selector"][SERVING] == "true"
    st = c.mrs()["status"]
    assert st["canary"]["phase"] == "Running" and st["canary"]["replica"]["name"] == canary
    assert next(x for x in st["conditions"] if x["type"] == "Canary")["status"] == "Unknown"
    c.start_pods()
    c.run()
    assert c.mrs()["status"]["canary"]["ready"] is True

    c.fleet_gate("Held")
    c.run()
    assert c.labels() == {old: "true", canary: "false"}
    st = c.mrs()["status"]
    assert st["canary"]["phase"] == "Held" and st["canary"]["fleets"] == [{"name": "support", "result": "Held"}]
    assert next(x for x in st["conditions"] if x["type"] == "Canary")["status"] == "False"
    assert c.kube.get("v1", "Service", "m-canary", NS) is None
    c.clock[0] += 31  # the drain timeout: in-flight requests unknown (no metrics)
    c.run()
    assert c.labels() == {old: "true"}
    (pod,) = [p for p in c.pods().values() if not p["metadata"].get("deletionTimestamp")]
    assert LLAMA_8B in pod["spec"]["containers"][0]["args"]

    # The next change: its canary decided by the override annotation, not the fleet's gate.
    mistral = json.dumps({"spec": {"model": {"name": MISTRAL}}})
    server.kubectl("patch", "modelreplicaset", "m", "-n", NS, "--type=merge", "-p", mistral)
    c.run()
    (canary,) = set(c.labels()) - {old}
    server.kubectl("annotate", "modelreplicaset", "m", "-n", NS, f"{GATE}=yes")
    c.run()
    got = c.mrs()
    cond = next(x for x in got["status"]["conditions"] if x["type"] == "Canary")
    assert (cond["status"], cond["reason"]) == ("False", "InvalidOverride") and GATE in cond["message"]
    assert got["metadata"]["annotations"][GATE] == "yes" and got["status"]["canary"]["phase"] == "Running"
    server.kubectl("annotate", "--overwrite", "modelreplicaset", "m", "-n", NS, f"{GATE}=promote")
    c.run()
    got = c.mrs()
    assert GATE not in (got["metadata"].get("annotations") or {})
    assert (got["status"]["canary"]["phase"], got["status"]["canary"]["overridden"]) == ("Promoted", "promote")
    cond = next(x for x in got["status"]["conditions"] if x["type"] == "Canary")
    assert (cond["status"], cond["reason"]) == ("True", "Overridden")
    promoted = c.kube.get("v1", "ConfigMap", "m-promoted", NS)
    assert promoted is not None and MISTRAL in promoted["data"]["fields"]
    assert c.labels()[canary] == "true"  # the set rolls on, the canary its first new replica
