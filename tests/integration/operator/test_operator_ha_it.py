"""Two operators with leader election (--leader-elect) on the run's private kube-apiserver (a Lease and
the pods the operator creates are all it needs; the GPU nodes are registered by the test): only the
Lease holder reconciles; kill -9 of the leader in the middle of a scale-up hands over to the other, which
finishes the scale-up without a duplicate pod. Prints the takeover time (kill to the new holder's
Lease write) and the time to the finished scale-up."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import pytest

from e2e.harness import operator as fx
from e2e.harness.operator import OperatorProcess, eventually
from tests.builders import MRS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

MRS_LABEL = "agentfleet.io/modelreplicaset"
REPLICA_LABEL = "agentfleet.io/replica"
LEASE = "af-ha"
DURATION = 6  # seconds: the longest a silent leader keeps the Lease


def lease(kube, ns: str) -> dict:
    out = kube.run("-n", ns, "get", "lease", LEASE, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def holder(kube, ns: str) -> str:
    return (lease(kube, ns).get("spec") or {}).get("holderIdentity") or ""


def identity(op: OperatorProcess) -> str:
    import socket

    assert op.proc is not None
    return f"{socket.gethostname()}/{op.proc.pid}"


def health(op: OperatorProcess) -> str:
    cmd = op.proc.args if op.proc else []  # type: ignore[union-attr]
    url = next(a for a in cmd if a.startswith("http://"))
    with urllib.request.urlopen(url, timeout=2) as r:
        return r.read().decode()


class PodsEverSeen:
    """Every pod name of one ModelReplicaSet seen by a 0.2 s poll while the block runs: a duplicate
    created and deleted again still counts."""

    def __init__(self, kube, ns: str, mrs: str) -> None:
        self.kube, self.ns, self.mrs = kube, ns, mrs
        self.names: dict[str, str] = {}  # pod -> replica
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(0.2):
            for p in self.kube.json("-n", self.ns, "get", "pods", "-l", f"{MRS_LABEL}={self.mrs}")["items"]:
                self.names[p["metadata"]["name"]] = p["metadata"]["labels"].get(REPLICA_LABEL, "")

    def __enter__(self) -> PodsEverSeen:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.fixture
def pair(crds, namespace):
    # Slow writes (1/s) so that the kill lands in the middle of the scale-up, even when kubectl's
    # polls are slow on a busy machine.
    args = (
        "--leader-elect",
        f"--lease-namespace={namespace}",
        f"--lease-name={LEASE}",
        f"--lease-duration={DURATION}",
        f"--namespace={namespace}",
        "--resync-seconds=20",
        "--api-qps=1",
        "--api-burst=1",
    )
    a, b = OperatorProcess(crds, args=args, name="ha-a"), OperatorProcess(crds, args=args, name="ha-b")
    a.start()
    crds.wait_for(lambda: holder(crds, namespace) == identity(a), timeout=30, desc="a holds the Lease")
    b.start()  # follows; answers /healthz itself
    yield a, b
    for op in (a, b):
        op.stop()


def test_only_the_leader_reconciles_and_a_killed_leader_is_replaced_mid_scale_up(
    pair, gpu_pool, namespace, kube
) -> None:
    a, b = pair
    ns = namespace
    gpu_pool.add("h100", count=2, gpus=8)
    m = (
        MRS("ha")
        .model("meta-llama/Llama-3.1-8B-Instruct", served="ha")
        .tp(1)
        .pp(1)
        .gpu(fx.H100)
        .replicas(1)
        .placement(**gpu_pool.selector)
    )
    kube.apply(
        m.spec(lifecycle={"drainTimeoutSeconds": 3, "restartBackoffSeconds": 2, "maxRestartBackoffSeconds": 8}).obj(),
        ns,
    )

    def pods() -> list[dict]:
        return [
            p
            for p in kube.json("-n", ns, "get", "pods", "-l", f"{MRS_LABEL}=ha")["items"]
            if not p["metadata"].get("deletionTimestamp")
        ]

    eventually(kube, a, lambda: len(pods()) == 1, timeout=60, desc="1 replica pod")
    # Only the leader runs kopf: the follower never took the Lease and reports itself a follower.
    assert holder(kube, ns) == identity(a)
    assert json.loads(health(b)) == {"leader": False}
    assert "now holds Lease" in a.log_path.read_text() and "now holds Lease" not in b.log_path.read_text()
    assert "following" in b.log_path.read_text()

    target = 8
    with PodsEverSeen(kube, ns, "ha") as seen:
        kube.run("-n", ns, "patch", "mrs", "ha", "--type=merge", "-p", json.dumps({"spec": {"replicas": target}}))
        eventually(kube, a, lambda: 2 <= len(pods()) < target - 1, timeout=60, interval=0.1, desc="scale-up under way")
        at_kill = len(pods())
        a.kill()
        t_kill = time.monotonic()
        kube.wait_for(
            lambda: holder(kube, ns) == identity(b), timeout=DURATION * 4, interval=0.1, desc="b takes the Lease"
        )
        takeover = time.monotonic() - t_kill
        eventually(
            kube, b, lambda: len(pods()) == target, timeout=120, desc=f"{target} replica pods after the takeover"
        )
        finished = time.monotonic() - t_kill
        time.sleep(3)  # a late duplicate would show up here
    final = pods()
    replicas = [p["metadata"]["labels"][REPLICA_LABEL] for p in final]
    duplicates = len(seen.names) - target
    print(
        f"\nHA: leader killed with {at_kill}/{target} pods; takeover {takeover:.1f} s (Lease duration {DURATION} s), "
        f"scale-up finished {finished:.1f} s after the kill; pods ever seen {len(seen.names)}, duplicates {duplicates}"
    )
    assert len(final) == target and len(set(replicas)) == target
    assert duplicates == 0, seen.names
    assert takeover < DURATION + 4
    assert (lease(kube, ns).get("spec") or {}).get("leaseTransitions", 0) >= 1


def test_a_leader_stopped_cleanly_hands_over_at_once(pair, namespace, kube) -> None:
    a, b = pair
    t0 = time.monotonic()
    a.stop()
    kube.wait_for(
        lambda: holder(kube, namespace) == identity(b), timeout=DURATION * 3, interval=0.1, desc="b takes the Lease"
    )
    took = time.monotonic() - t0
    print(f"\nHA: clean stop to takeover {took:.1f} s (Lease duration {DURATION} s)")
    assert took < DURATION, "the stopping leader released the Lease"
