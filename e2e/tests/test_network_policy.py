"""The operator's NetworkPolicies enforced on the real node, for real pods (issue 57, finding 7).

The chart's operator (a pod on the real node) renders, for a ModelReplicaSet with an InferencePool
and an AgentFleet with its own Redis, the replicas' ingress policy, the Redis's ingress policy and
the workers' egress policy. kube-router's policy controller (e2e/harness/netpol.py) enforces them in
the node's network namespace, as a policy-enforcing CNI would on a user's node. Clients are real pods
of the node (the fleet's workers and the operator themselves, and probe pods with chosen namespaces
and labels), and every verdict is a real TCP connection that gets an answer (``GET /metrics`` from
the replica, ``PING`` from Redis through its Service) or does not.

- Before the enforcer runs, every client reaches every target: the node's network itself lets them
  through, so what is blocked later is blocked by the policies.
- Enforced: the fleet's workers reach the replica and Redis and complete tasks; the operator (its
  own namespace), Prometheus and the gateway (the chart's namespaces and labels) reach the replica;
  pods of another namespace carrying the operator's, Prometheus's or the workers' labels, and an
  unlabelled pod of the fleet's namespace, reach neither; a worker does not reach the metadata
  address (169.254.169.254, served on the node for the test).
- The same enforcer with the operator's policies removed (the operator stopped, its policies
  deleted): the forged pods get in again.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentfleet.placement import MODELREPLICASET_LABEL
from agentfleet.render.agentfleet import COMPONENT_LABEL, FLEET_LABEL
from agentfleet.render.common import OPERATOR_POD_LABELS, PROMETHEUS_POD_LABELS
from agentfleet_runtime.core.types import Status
from e2e.harness import netpol, realnode
from e2e.harness.neighbours import install_thirdparty_crds
from e2e.harness.procs import Proc
from e2e.harness.realnode import ON_REAL_NODE, pods, ready
from e2e.tests.test_realnode import (  # noqa: F401 - node and images are fixtures
    GPUS,
    dump,
    fleet_api,
    images,
    new_namespace,
    node,
    submit,
    wait_done,
)

MODEL_LABEL = "agentfleet.io/model"  # a worker's: the replicas' policy admits it in their namespace
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

FLEET = "support"
MODEL = "sim"
RELEASE = "afnp"
REPLICA_PORT = 8000
REDIS_PORT = 6379
METADATA = "169.254.169.254"  # cloud metadata's address, which the workers' egress policy denies
GATEWAY_LABELS = {"gateway": "inference"}
PICKER = {"serviceName": "sim-epp", "port": 9002, "failureMode": "FailOpen"}
HTTP_HELLO = "GET /metrics HTTP/1.0\r\nHost: probe\r\n\r\n"

# Run in a client pod (kubectl exec): for each [name, host, port, hello], whether a TCP connection
# opened and the server answered the hello within 3 s.
PROBE = """
import json, socket, sys
out = {}
for name, host, port, hello in json.loads(sys.argv[1]):
    try:
        with socket.create_connection((host, port), timeout=3) as s:
            s.settimeout(3)
            s.sendall(hello.encode())
            out[name] = bool(s.recv(64))
    except OSError:
        out[name] = False
print(json.dumps(out))
"""


def probe_pod(name: str, labels: dict[str, str], image: str) -> dict[str, Any]:
    """A pod that only waits, in the project image (its python runs PROBE), with chosen labels."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "containers": [
                {
                    "name": "probe",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["python", "-c", "import time; time.sleep(1e9)"],
                    "resources": {"requests": {"cpu": "1m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
                }
            ],
            "terminationGracePeriodSeconds": 0,
            **ON_REAL_NODE,
        },
    }


def only_its_operator(name: str, ns: str, username: str) -> list[dict[str, Any]]:
    """A ValidatingAdmissionPolicy and its binding: in NS only USERNAME creates or updates
    NetworkPolicies. On a shared cluster an operator watching every namespace (the local one
    e2e.harness.operator starts for other modules) rewrote the fleet's policies with its own peers
    (agentfleet-system, monitoring) every few seconds; with one operator per cluster, as a user
    runs it, this denies nothing."""
    meta = {"name": name, "labels": {"agentfleet.io/e2e": "true"}}
    rules = [{"apiGroups": ["networking.k8s.io"], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE"],
              "resources": ["networkpolicies"]}]  # fmt: skip
    check = {"expression": f"request.userInfo.username == '{username}'", "message": "not this test's operator"}
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": meta,
            "spec": {"failurePolicy": "Fail", "matchConstraints": {"resourceRules": rules}, "validations": [check]},
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": meta,
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}},
            },
        },
    ]


def fleet_manifests(images: dict[str, str]) -> list[dict[str, Any]]:  # noqa: F811 - images is a fixture
    mrs = realnode.simulator_model(MODEL, images["engine"], cpu="10m", inferencePool={"endpointPicker": PICKER})
    fleet = {
        "apiVersion": "agentfleet.io/v1alpha1",
        "kind": "AgentFleet",
        "metadata": {"name": FLEET},
        "spec": {
            "modelRef": {"name": MODEL},
            "image": images["project"],
            "workers": {"replicas": 1, "concurrency": 4, "cpu": "10m", "memory": "256Mi"},
            "budgets": {"maxSteps": 4, "timeoutSeconds": 120},
            "redis": {"deploy": {"image": images["redis"], "memory": "128Mi", "storageSize": "1Gi"}},
        },
    }
    return [mrs, fleet]


@pytest.fixture(scope="module")
def setup(cluster, node, images, helm) -> Iterator[dict[str, Any]]:  # noqa: F811 - fixtures
    """The chart's operator (Prometheus's and the gateway's namespaces set), a fleet and its model on
    the real node, probe pods, and the metadata address served inside the node."""
    install_thirdparty_crds(cluster)  # the InferencePool kind
    nss = {k: new_namespace(cluster, f"af-np-{k}") for k in ("op", "fleet", "prom", "gw", "evil")}
    ns = nss["fleet"]
    sets = [
        f"operator.watchNamespaces={{{ns}}}",
        # The real node is shared by the tier's modules: ask for little of its 2 CPUs.
        "operator.replicas=1",
        "operator.resources.requests.cpu=10m",
        f"networkPolicy.prometheus.namespace={nss['prom']}",
        f"networkPolicy.gateway.namespace={nss['gw']}",
        *(f"networkPolicy.gateway.podLabels.{k}={v}" for k, v in GATEWAY_LABELS.items()),
    ]
    netns = node["netns"]
    tmp = Path(tempfile.mkdtemp(prefix="af-np-meta-"))
    (tmp / "metrics").write_text("instance credentials\n")
    metadata: Proc | None = None
    try:
        realnode.helm_install(cluster, helm, RELEASE, nss["op"], images["project"], sets)
        deployment = cluster.json("-n", nss["op"], "get", "deployments")["items"][0]
        account = f"system:serviceaccount:{nss['op']}:{deployment['spec']['template']['spec']['serviceAccountName']}"
        for m in only_its_operator(ns, ns, account):
            cluster.apply(m)
        realnode.gpu_node(cluster, node, GPUS)
        realnode.local_volume(cluster, node, f"{ns}-redis")
        for m in fleet_manifests(images):
            cluster.apply(m, ns)
        probes = {
            "prometheus": (nss["prom"], dict(PROMETHEUS_POD_LABELS)),
            "gateway": (nss["gw"], dict(GATEWAY_LABELS)),
            "forged-operator": (nss["evil"], dict(OPERATOR_POD_LABELS)),
            "forged-prometheus": (nss["evil"], dict(PROMETHEUS_POD_LABELS)),
            "forged-worker": (
                nss["evil"],
                {FLEET_LABEL: FLEET, COMPONENT_LABEL: "worker", "agentfleet.io/model": MODEL},
            ),
            "unlabelled": (ns, {}),
        }
        for name, (pns, labels) in probes.items():
            cluster.apply(probe_pod(name, labels, images["project"]), pns)
        # A cloud metadata endpoint as the node sees one: an address of the node, served there.
        netpol.in_node(netns, "ip", "addr", "add", f"{METADATA}/32", "dev", "lo")
        metadata = Proc(
            ["nsenter", f"--net={netns}", sys.executable, "-m", "http.server", "80", "--bind", METADATA,
             "--directory", str(tmp)],
            log=tmp / "metadata.log", python_path=False,
        )  # fmt: skip
        yield {"ns": ns, "nss": nss, "probes": probes}
    finally:
        if metadata is not None:
            metadata.end()
        netpol.in_node(netns, "ip", "addr", "del", f"{METADATA}/32", "dev", "lo", check=False)
        # The fleet's namespace first, while the operator still clears its objects' finalizers.
        cluster.run("delete", "namespace", ns, "--ignore-not-found", "--timeout=120s", check=False, timeout=150)
        realnode.helm_uninstall(cluster, helm, RELEASE, nss["op"])
        for kind in ("validatingadmissionpolicybinding", "validatingadmissionpolicy"):
            cluster.run("delete", kind, ns, "--ignore-not-found", check=False)
        for k, n in nss.items():
            if k != "fleet":
                cluster.run("delete", "namespace", n, "--wait=false", "--ignore-not-found", check=False)


def one_pod(cluster, ns: str, selector: str) -> dict[str, Any] | None:
    ps = [p for p in pods(cluster, ns, selector) if ready(p)]
    return ps[0] if ps else None


def clients(cluster, setup: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Every client pod, by role: (namespace, pod name); the operator only while one runs."""
    ns, op_ns = setup["ns"], setup["nss"]["op"]
    worker = one_pod(cluster, ns, f"{FLEET_LABEL}={FLEET},{COMPONENT_LABEL}=worker")
    assert worker, "a ready worker"
    out = {"worker": (ns, worker["metadata"]["name"])}
    if operator := one_pod(cluster, op_ns, ",".join(f"{k}={v}" for k, v in OPERATOR_POD_LABELS.items())):
        out["operator"] = (op_ns, operator["metadata"]["name"])
    out.update({name: (pns, name) for name, (pns, _) in setup["probes"].items()})
    return out


def targets(cluster, ns: str) -> list[list[Any]]:
    replica = one_pod(cluster, ns, f"{MODELREPLICASET_LABEL}={MODEL}")
    assert replica, "a ready replica"
    redis_ip = cluster.json("-n", ns, "get", "service", f"{FLEET}-redis")["spec"]["clusterIP"]
    return [
        ["replica", replica["status"]["podIP"], REPLICA_PORT, HTTP_HELLO],
        ["redis", redis_ip, REDIS_PORT, "PING\r\n"],
        ["metadata", METADATA, 80, HTTP_HELLO],
    ]


def reach(cluster, setup: dict[str, Any]) -> dict[str, dict[str, bool]]:
    """Who reaches what, each by real connections from inside its pod."""
    tgt = json.dumps(targets(cluster, setup["ns"]))
    out = {}
    for role, (pns, pod) in clients(cluster, setup).items():
        r = cluster.run("-n", pns, "exec", pod, "--", "python", "-c", PROBE, tgt, timeout=60)
        out[role] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


# What the policies admit (True) and block (False), enforced.
ENFORCED = {
    "worker": {"replica": True, "redis": True, "metadata": False},
    "operator": {"replica": True, "redis": True, "metadata": True},
    "prometheus": {"replica": True, "redis": False, "metadata": True},
    "gateway": {"replica": True, "redis": False, "metadata": True},
    "forged-operator": {"replica": False, "redis": False, "metadata": True},
    "forged-prometheus": {"replica": False, "redis": False, "metadata": True},
    "forged-worker": {"replica": False, "redis": False, "metadata": True},
    "unlabelled": {"replica": False, "redis": False, "metadata": True},
}
EVERYONE = {role: dict.fromkeys(t, True) for role, t in ENFORCED.items()}


def settle(cluster, setup: dict[str, Any], want: dict[str, dict[str, bool]], timeout: float) -> dict:
    """The reach matrix once it equals WANT, or the last one seen when TIMEOUT passed."""
    deadline = time.monotonic() + timeout
    got = reach(cluster, setup)
    while got != want and time.monotonic() < deadline:
        time.sleep(3)
        got = reach(cluster, setup)
    return got


def table(got: dict[str, dict[str, bool]]) -> str:
    return "\n".join(
        f"  {role:18} " + "  ".join(f"{t}={'reaches' if ok else 'blocked'}" for t, ok in row.items())
        for role, row in got.items()
    )


def ours(cluster, ns: str, op_ns: str) -> bool:
    """Whether every policy of NS names this module's operator's namespace as the operator's: an
    operator watching every namespace (a local one another module runs) rewrites them with its own."""
    named = {
        peer["namespaceSelector"]["matchLabels"].get("kubernetes.io/metadata.name")
        for p in cluster.json("-n", ns, "get", "networkpolicies")["items"]
        for rule in p["spec"].get("ingress", [])
        for peer in rule.get("from", [])
        if peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component") == "operator"
    }
    return named == {op_ns}


def steady_ours(cluster, ns: str, op_ns: str) -> bool:
    for _ in range(10):
        if not ours(cluster, ns, op_ns):
            return False
        time.sleep(2)
    return True


def fleet_ready(cluster, ns: str) -> bool:
    return bool(
        one_pod(cluster, ns, f"{FLEET_LABEL}={FLEET},{COMPONENT_LABEL}=worker")
        and one_pod(cluster, ns, f"{FLEET_LABEL}={FLEET},{COMPONENT_LABEL}=api")
        and one_pod(cluster, ns, f"{MODELREPLICASET_LABEL}={MODEL}")
    )


def test_the_operators_policies_block_forged_and_unlabelled_pods_and_admit_the_fleet(
    cluster,
    node,  # noqa: F811 - a fixture
    setup,
) -> None:
    ns = setup["ns"]
    try:
        cluster.wait_for(lambda: fleet_ready(cluster, ns), timeout=1200, interval=3, desc="the fleet and replica ready")
        for name, (pns, _) in setup["probes"].items():
            cluster.run("-n", pns, "wait", "--for=condition=Ready", f"pod/{name}", "--timeout=300s", timeout=320)
        policies = cluster.json("-n", ns, "get", "networkpolicies")["items"]
        assert {p["metadata"]["name"] for p in policies} >= {MODEL, f"{FLEET}-redis", f"{FLEET}-worker-egress"}
    except Exception:
        dump(cluster, ns)
        raise

    op_ns = setup["nss"]["op"]
    # An operator watching every namespace (a module beside this one on a shared cluster runs one)
    # rewrites the policies with its own peers: wait until they are this operator's for 20 s.
    steady = cluster.wait_for(lambda: steady_ours(cluster, ns, op_ns), timeout=900, interval=5, desc="our policies")
    assert steady

    # Without the enforcer the node's network lets everyone through.
    before = settle(cluster, setup, EVERYONE, timeout=60)
    print("without an enforcer:\n" + table(before))
    assert before == EVERYONE, table(before)

    t0 = time.monotonic()
    with netpol.enforcer(cluster, node) as kube_router:
        got = settle(cluster, setup, ENFORCED, timeout=90)
        print(f"enforced ({time.monotonic() - t0:.0f}s after kube-router's start):\n" + table(got))
        assert got == ENFORCED, f"{table(got)}\npolicies ours: {ours(cluster, ns, op_ns)}\n{kube_router.tail(10)}"

        # The fleet works under its policies: workers -> replica and Redis, the API -> Redis.
        api, token = fleet_api(cluster, node, {"ns": ns, "name": FLEET})
        ids = [submit(api, token, f"say hello {i}") for i in range(2)]
        done = wait_done(cluster, api, token, ids, timeout=240)
        assert all(v["status"] == Status.DONE.value for v in done), done

        # The same enforcer without the operator's policies: the forged pods get in again.
        cluster.run("-n", setup["nss"]["op"], "scale", "deployment", "--all", "--replicas=0")
        try:
            # The operator's pod must be gone before the delete: one still shutting down saw the
            # deletion and re-created the worker's egress policy (a CI run's metadata=blocked).
            # (A terminating pod can still be Ready and still reconcile: wait for no pod at all.)
            op_pods = ",".join(f"{k}={v}" for k, v in OPERATOR_POD_LABELS.items())
            cluster.wait_for(lambda: not pods(cluster, op_ns, op_pods), timeout=120, desc="the operator's pods gone")
            cluster.run("-n", ns, "delete", "networkpolicies", "--all")
            want = {role: row for role, row in EVERYONE.items() if role != "operator"}
            unpoliced = settle(cluster, setup, want, timeout=90)
            print("enforced, the operator's policies deleted:\n" + table(unpoliced))
            left = [p["metadata"]["name"] for p in cluster.json("-n", ns, "get", "networkpolicies")["items"]]
            assert unpoliced == want, f"{table(unpoliced)}\npolicies left: {left}\n{kube_router.tail(10)}"
        finally:
            cluster.run("-n", setup["nss"]["op"], "scale", "deployment", "--all", "--replicas=1")
