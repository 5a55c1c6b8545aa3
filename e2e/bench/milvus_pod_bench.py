"""The Milvus standalone pod on the real node two ways, in one invocation: the cache's binaries on a
read-only hostPath volume in the slim base image (what the e2e tier does, e2e/harness/milvus_pod.py),
against an image of its own carrying them (e2e/cluster/node/milvus.Containerfile).

    AGENTFLEET_KEEP_CLUSTER=1 python -m e2e.bench.milvus_pod_bench

Needs the e2e cluster up with its real node. For each way: what it adds to a CI run before the pod
can start (the base image import; the own image's build, its export from podman and import into the
node's containerd), the image size, and the pod's time from apply to Ready (/healthz) and its RSS.
The own image is removed from podman and the node first, so its build and import are measured
as a fresh CI machine pays them (the binaries' install and extraction into the cache is paid by
both ways, once, by the integration tier: not counted). Removes what it made when done.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
import uuid

from e2e.harness import milvus_pod, realnode
from e2e.harness.cluster import Cluster, info, script_env


def ctr(node: dict, *args: str) -> subprocess.CompletedProcess:
    cmd = [node["ctr"], "--address", node["containerd_socket"], "-n", "k8s.io", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def pod_start(cluster: Cluster, node: dict, image: str, own_image: bool) -> tuple[float, int]:
    """A fresh namespace with the Milvus pod: seconds from apply to Ready, RSS (MiB) then."""
    ns = f"af-mvbench-{uuid.uuid4().hex[:6]}"
    cluster.run("create", "namespace", ns)
    cluster.run("label", "namespace", ns, "agentfleet.io/e2e=true")
    realnode.confine(cluster, ns)
    try:
        cluster.wait_for(
            lambda: cluster.run("-n", ns, "get", "serviceaccount", "default", check=False).returncode == 0, timeout=60
        )
        milvus_pod.deploy(cluster, ns, image, own_image=own_image)
        pod, took = milvus_pod.wait_ready(cluster, ns)
        rss = milvus_pod.memory(milvus_pod.container_pid(node, pod))["VmRSS"] >> 20
        return took, rss
    finally:
        cluster.run("delete", "namespace", ns, "--wait=false", check=False)


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    cluster = Cluster(info(script_env()))
    node = cluster.info["real_node"]
    rows: dict[str, dict[str, str]] = {"hostPath volume + base image": {}, "image of its own": {}}

    t0 = time.monotonic()
    base = milvus_pod.base_image(cluster)
    vol = rows["hostPath volume + base image"]
    vol["image work before the pod"] = f"{time.monotonic() - t0:.1f} s (base image: built and imported for the tier)"
    vol["image size"] = f"{int(json.loads(realnode.run('podman', 'image', 'inspect', base))[0]['Size']) >> 20} MiB"

    own = rows["image of its own"]
    # Cold, as a fresh CI machine pays it: no own image left in podman or on the node.
    for r in realnode.run("podman", "images", "--format", "{{.Repository}}:{{.Tag}}").split():
        if r.startswith("localhost/agentfleet-milvus:"):
            subprocess.run(["podman", "rmi", "-f", r], capture_output=True)
            ctr(node, "images", "rm", r)
    t0 = time.monotonic()
    ref = milvus_pod.own_image_ref(base)
    build = time.monotonic() - t0
    t0 = time.monotonic()
    realnode.import_images(cluster, ref)
    imported = time.monotonic() - t0
    own["image work before the pod"] = f"{build + imported:.1f} s (build {build:.1f} s, import {imported:.1f} s)"
    own["image size"] = f"{int(json.loads(realnode.run('podman', 'image', 'inspect', ref))[0]['Size']) >> 20} MiB"

    for name, image, own_image in (("hostPath volume + base image", base, False), ("image of its own", ref, True)):
        took, rss = pod_start(cluster, node, image, own_image)
        rows[name]["pod apply to Ready"] = f"{took:.1f} s"
        rows[name]["RSS at Ready"] = f"{rss} MiB"

    keys = list(next(iter(rows.values())))
    print(f"| | {' | '.join(rows)} |\n|---|{'---|' * len(rows)}")
    for k in keys:
        print(f"| {k} | {' | '.join(r.get(k, '') for r in rows.values())} |")
    a = float(vol["image work before the pod"].split()[0])
    b = float(own["image work before the pod"].split()[0])
    print(f"image work: own image / volume = {b / max(a, 0.1):.1f}x ({b - a:+.1f} s per cold CI run)")
    # Its 246 MB would stay in the node's containerd and podman's storage: removed, as it came.
    ctr(node, "images", "rm", ref)
    subprocess.run(["podman", "rmi", "-f", ref], capture_output=True)


if __name__ == "__main__":
    main()
