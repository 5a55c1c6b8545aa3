"""The container image, built and run: every entry point from the image, as uid 65532 on a read-only
root with only the pod's emptyDir paths writable, exactly as the chart and the operator render them.

``e2e/cluster/image.sh`` builds the Dockerfile with buildah on a Debian base made by debootstrap (cached;
the image is rebuilt when its inputs change). Then, with podman (e2e/harness/image.py):

- the operator, from the chart's Deployment, against the e2e control plane: it reconciles an
  AgentFleet (examples/agentfleet.yaml's ``support``, on a local Redis) and a VectorIndex (on a
  local Milvus Lite), writing their children;
- a worker and the task API, from the Deployments that operator rendered, with the runtime config
  and API tokens it wrote, against the Redis: the API takes a task, the worker takes it;
- the ingestion module, from the Job that operator rendered, on a small corpus (a ConfigMap): it
  runs to completion and the rows are in Milvus.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from agentfleet_contract.runtime_config import token_line

from e2e.harness import operator as fx
from e2e.harness.helm import by_kind, template
from e2e.harness.image import ULIMITS, Container, podman
from e2e.harness.installers import ensure_ingest_packages, ensure_redis_server
from e2e.harness.milvus import MilvusLiteServer
from e2e.harness.objects import apply_stuck_model
from e2e.harness.ports import free_port, wait_http
from e2e.harness.redis import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
UID = "65532"
CORPUS = {
    "vacuum.md": "# VACUUM\n\nVACUUM reclaims storage occupied by dead tuples. " * 12,
    "wal.md": "# Write-ahead log\n\nThe WAL records every change before it reaches the data files. " * 12,
    "indexes.md": "# Indexes\n\nA B-tree index speeds up equality and range queries. " * 12,
}


@pytest.fixture(scope="module")
def image() -> str:
    proc = subprocess.run(
        ["bash", str(ROOT / "e2e" / "cluster" / "image.sh"), "build"],
        capture_output=True,
        text=True,
        timeout=float(os.environ.get("AGENTFLEET_IMAGE_BUILD_TIMEOUT_S", "3600")),
    )
    if proc.returncode != 0:
        pytest.fail(f"e2e/cluster/image.sh build failed:\n{proc.stderr[-5000:]}", pytrace=False)
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> Iterator[dict[str, str]]:
    ensure_ingest_packages()
    r = RedisServer(ensure_redis_server(), tmp_path_factory.mktemp("img-redis"))
    r.start()
    m = MilvusLiteServer(tmp_path_factory.mktemp("img-milvus") / "data")
    m.wait_ready()
    yield {"redis": r.url, "milvus": m.uri}
    m.stop()
    r.stop()


def read_only_and_uid(c: Container) -> None:
    """The process runs as 65532:65532; / is read-only, and so are the paths podman would make
    writable by default; the pod's emptyDir (/tmp) is writable."""
    assert c.uids() == (UID, UID), c.uids()
    for path in ("/opt/agentfleet/x", "/var/tmp/x", "/run/x", "/x"):
        proc = c.exec("touch", path)
        assert proc.returncode != 0 and (
            "Read-only file system" in proc.stderr or "Permission denied" in proc.stderr
        ), (path, proc.stderr)
    assert "Read-only file system" in c.exec("touch", "/opt/agentfleet/x").stderr
    assert c.exec("touch", "/tmp/written-by-the-test").returncode == 0


@pytest.fixture(scope="module")
def deployed(cluster, helm, image, stores) -> Iterator[dict[str, Any]]:  # noqa: F811
    """The operator from the image (the chart's Deployment) reconciling a fleet and an index."""
    fx.install_crds(cluster)
    ns = f"e2e-image-{os.urandom(3).hex()}"
    cluster.run("create", "namespace", ns)
    health = free_port()
    docs = template(
        helm,
        f"operator.healthPort={health}",
        "image.repository=localhost/agentfleet",
        f"image.tag={image.rsplit(':', 1)[1]}",
        namespace=ns,
    )
    (dep,) = by_kind(docs, "Deployment")
    kubeconfig = Path(tempfile.mkdtemp(prefix="agentfleet-image-kc-")) / "kubeconfig"
    shutil.copy(cluster.kubeconfig, kubeconfig)
    kubeconfig.chmod(0o644)  # the container's user is not the file's owner
    op = Container(
        cluster, image, dep["spec"]["template"]["spec"], "operator", ns, name="operator",
        extra_env={"KUBECONFIG": (
            "/etc/agentfleet-e2e/kubeconfig"
        )}, extra_mounts={str(kubeconfig): (
            "/etc/agentfleet-e2e/kubeconfig"
        )},
    )  # fmt: skip
    assert op.spec["image"] == image, "the chart names the image that was built"
    op.start()
    try:
        wait_http(f"http://127.0.0.1:{health}/healthz", 120, op)
        apply_stuck_model(cluster, ns)
        (af,) = [
            d
            for d in yaml.safe_load_all((ROOT / "examples" / "agentfleet.yaml").read_text())
            if d and d["kind"] == "AgentFleet"
        ]
        # The fleet's pods run spec.image: the image just built.
        af["spec"].update(modelRef={"name": "stuck"}, redis={"url": stores["redis"]}, image=image)
        af["spec"].pop("vectorIndexRef", None)
        af["spec"]["tools"] = [t for t in af["spec"].get("tools", []) if t.get("type") != "Retrieval"]
        cluster.apply(af, ns)
        cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "corpus"}, "data": CORPUS}, ns)
        vi = {
            "apiVersion": "agentfleet.io/v1alpha1",
            "kind": "VectorIndex",
            "metadata": {"name": "docs"},
            "spec": {
                "milvus": {"uri": stores["milvus"]},
                "collection": "image_docs",
                "dimension": 384,
                "source": {"configMap": {"name": "corpus"}},
            },
        }
        cluster.apply(vi, ns)
        fleet = af["metadata"]["name"]

        def reconciled() -> dict[str, Any] | None:
            st = cluster.json("-n", ns, "get", "agentfleet", fleet).get("status") or {}
            vst = cluster.json("-n", ns, "get", "vi", "docs").get("status") or {}
            have = (
                cluster.run(
                    "-n", ns, "get", f"deployment/{fleet}-worker", f"deployment/{fleet}-api", check=False
                ).returncode
                == 0
            )
            ok = st.get("observedGeneration") == 1 and vst.get("ingestion", {}).get("jobName") and have
            return {"fleet": fleet, "job": vst["ingestion"]["jobName"], "status": st} if ok else None

        try:
            out = cluster.wait_for(
                reconciled, timeout=120, desc="the operator from the image reconciling the fleet and the index"
            )
        except BaseException:
            print(op.logs()[-6000:])
            raise
        yield {**out, "ns": ns, "operator": op, "image": image, **stores}
    finally:
        op.stop()
        cluster.run("delete", "namespace", ns, "--wait=false", check=False)


def test_operator_runs_from_the_image_as_the_chart_says(deployed) -> None:
    op: Container = deployed["operator"]
    assert op.running()
    read_only_and_uid(op)
    st = deployed["status"]
    assert any(c["type"] == "Ready" and c["observedGeneration"] == 1 for c in st["conditions"]), st


@pytest.mark.parametrize("user", [f"{UID}:{UID}", UID])
def test_the_image_names_its_user_where_no_runtime_adds_a_passwd_entry(image, user) -> None:
    """containerd and CRI-O add no passwd entry for the pod's uid (podman does unless told not to):
    the image's own entry is what getpass.getuser() (kopf asked it at start-up) finds, and what gives
    a container that states only runAsUser its group instead of gid 0."""
    probe = "import getpass, os; print(getpass.getuser(), os.getuid(), os.getgid())"
    proc = podman(
        "run",
        "--rm",
        *ULIMITS,
        "--passwd=false",
        "--user",
        user,
        "--entrypoint",
        '["python"]',
        image,
        "-c",
        probe,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["agentfleet", UID, UID], proc.stdout


def runtime_container(deployed: dict[str, Any], component: str, ports: dict[str, int]) -> Container:
    ns, fleet = deployed["ns"], deployed["fleet"]
    dep = deployed_cluster(deployed).json("-n", ns, "get", "deployment", f"{fleet}-{component}")
    # Host network, shared machine: the rendered fixed ports (9090, 8080) may be taken, so they
    # move through the runtime's own environment overrides, and listen on loopback.
    env = {
        "AGENTFLEET_METRICS_PORT": str(ports["metrics"]),
        "AGENTFLEET_API_PORT": str(ports["api"]),
        "AGENTFLEET_LISTEN_HOST": "127.0.0.1",
    }
    c = Container(
        deployed_cluster(deployed),
        deployed["image"],
        dep["spec"]["template"]["spec"],
        component,
        ns,
        name=component,
        extra_env=env,
    )
    assert c.spec["image"] == deployed["image"], "the fleet's pods run its spec.image"
    return c


def deployed_cluster(deployed: dict[str, Any]) -> Any:
    return deployed["operator"].cluster


def test_worker_and_task_api_run_from_the_image_against_redis(deployed) -> None:
    ports = {"metrics": free_port(), "api": free_port()}
    api = runtime_container(deployed, "api", ports)
    worker = runtime_container(deployed, "worker", ports)
    api.start()
    worker.start()
    try:
        wait_http(f"http://127.0.0.1:{ports['api']}/readyz", 90, api)
        wait_http(f"http://127.0.0.1:{ports['metrics']}/readyz", 90, worker)
        read_only_and_uid(api)
        read_only_and_uid(worker)
        # The generated token is in its Secret for its users; the API container holds its hash only.
        ns, fleet = deployed["ns"], deployed["fleet"]
        secret = deployed_cluster(deployed).json("-n", ns, "get", "secret", f"{fleet}-api-token")
        token = base64.b64decode(secret["data"]["tokens"]).decode().strip()
        assert (api.dir / "volumes" / "api-tokens" / "tokens").read_text() == token_line("default", token) + "\n"
        req = urllib.request.Request(
            f"http://127.0.0.1:{ports['api']}/v1/tasks",
            data=json.dumps({"goal": "How do I reclaim space?"}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - 127.0.0.1 only
            assert resp.status == 201
            task = json.load(resp)["id"]
        # The worker takes it from the stream (its model is unreachable here, so the task then
        # retries or fails: taking it is what shows the worker runs against this Redis).
        r = redis.Redis.from_url(deployed["redis"], decode_responses=True)
        prefix = f"af:{deployed['ns']}/{deployed['fleet']}"  # the fleet's keys: namespace and name
        stream = f"{prefix}:tasks"

        def taken() -> bool:
            groups = r.xinfo_groups(stream)
            status = r.hget(f"{prefix}:t:{task}", "status")
            return (
                bool(groups)
                and groups[0]["lag"] == 0
                and groups[0]["consumers"] >= 1
                and status not in (None, "queued")
            )

        deployed_cluster(deployed).wait_for(taken, timeout=60, desc="the worker from the image taking the task")
        assert b"agentfleet_queue_depth" in wait_http(f"http://127.0.0.1:{ports['metrics']}/metrics", 10, worker)
    finally:
        print(worker.logs()[-3000:], api.logs()[-3000:])
        worker.stop()
        api.stop()


def test_ingestion_runs_from_the_image_on_a_small_corpus(deployed) -> None:
    cluster, ns = deployed_cluster(deployed), deployed["ns"]
    job = cluster.json("-n", ns, "get", "job", deployed["job"])
    pod = job["spec"]["template"]["spec"]
    # An Indexed Job: one pod per completion index, each ingesting its share of the documents.
    for index in range(job["spec"]["completions"]):
        # The Job controller adds JOB_COMPLETION_INDEX to each pod of an Indexed Job.
        env = {"JOB_COMPLETION_INDEX": str(index)}
        c = Container(
            cluster, deployed["image"], pod, "ingest", ns, name=f"ingest-{index}", completion_index=index, extra_env=env
        )
        # The operator puts its own image (AGENTFLEET_RUNTIME_IMAGE, set by the chart) into the Job.
        assert c.spec["image"] == deployed["image"]
        try:
            code = c.run(timeout=600)
            logs = c.logs()
            assert code == 0, logs[-5000:]
        finally:
            c.stop()
    from agentfleet_milvus import MilvusTarget

    client = MilvusTarget(deployed["milvus"]).connect()
    try:
        rows = client.query("image_docs", filter="", output_fields=["count(*)"], consistency_level="Strong")
    finally:
        client.close()
    assert rows[0]["count(*)"] >= len(CORPUS), rows  # every document gave at least one chunk
