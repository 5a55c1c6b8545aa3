"""The main job (`bash e2e/up.sh`) end to end: the demo driver against the e2e cluster.

Runs `python -m e2e.demo up` with the cluster's kubeconfig in a fresh namespace and a private
state dir. With `--model sim` the fleet runs on the cluster's real node: the chart's operator, a
Milvus, the AgentFleet's Redis, task API and workers, the ingestion Job and the ModelReplicaSet's
replicas are pods whose containers containerd runs, and a Prometheus runs in the node's network
namespace; then `down`, and checks the namespace, its volume and the Prometheus are gone.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentfleet.render.agentfleet import COMPONENT_LABEL, FLEET_LABEL
from e2e.harness import realnode
from e2e.harness.procs import alive

ROOT = Path(__file__).resolve().parents[2]
TASKS = 4

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1300)]


def printed_row(out: str, name: str) -> dict[str, str]:
    """The columns of ``name``'s line in kubectl's table, cut at the header's column starts (a
    blank cell stays blank instead of shifting the next one left)."""
    lines = out.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith(name + " "))
    header = next(lines[j] for j in range(i, -1, -1) if lines[j].startswith("NAME "))
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    row = lines[i]
    return {header[a:b].strip(): row[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)}


def _driver(cluster, state: Path, *args: str, timeout: float) -> subprocess.CompletedProcess:
    """`python -m e2e.demo ARGS`; its output also goes to STATE/driver-<command>.log as it comes, so a
    run that times out still shows how far it got."""
    cmd = [
        sys.executable,
        "-m",
        "e2e.demo",
        *args,
        "--kubeconfig",
        cluster.kubeconfig,
        "--kubectl",
        cluster.kubectl,
        "--state-dir",
        str(state),
    ]
    state.mkdir(parents=True, exist_ok=True)
    log = state / f"driver-{args[0]}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:
        try:
            proc = subprocess.run(
                cmd, cwd=ROOT, stdout=out, stderr=subprocess.PIPE, text=True, timeout=timeout, env=env
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"`e2e.demo {args[0]}` ran past {timeout:.0f}s; its output:\n{log.read_text()[-6000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, log.read_text(), proc.stderr)


def on_real_node(cluster, ns: str, selector: str) -> list[dict]:
    """The pods of SELECTOR, each on the real node with its containers run by containerd (kwok's pods
    have no container ids) and Ready, or Succeeded for a Job's."""
    node = cluster.info["real_node"]["name"]
    found = cluster.json("-n", ns, "get", "pods", "-l", selector)["items"]
    assert found, f"no pod {selector} in {ns}"
    for p in found:
        name, st = p["metadata"]["name"], p["status"]
        assert p["spec"]["nodeName"] == node, (name, p["spec"].get("nodeName"))
        ids = [cs.get("containerID", "") for cs in st.get("containerStatuses", [])]
        assert ids and all(i.startswith("containerd://") for i in ids), (name, ids)
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions", []))
        assert ready or st.get("phase") == "Succeeded", (name, st.get("phase"), st.get("conditions"))
    return found


def test_demo_runs_tasks_through_the_fleet_and_cleans_up(cluster, namespace, tmp_path):
    state = tmp_path / "state"
    pids: dict[str, int] = {}
    try:
        up = _driver(
            cluster,
            state,
            "up",
            "--model",
            "sim",
            "--namespace",
            namespace,
            "--tasks",
            str(TASKS),
            "--task-timeout",
            "120",
            timeout=900,
        )
        out = up.stdout
        for meta in (state / "demo" / namespace).glob("*.json"):
            pids[meta.stem] = json.loads(meta.read_text())["pid"]
        assert up.returncode == 0, f"demo failed ({up.returncode}):\n{out[-6000:]}\n{up.stderr[-4000:]}"

        # Every pod the fleet needs ran on the real node, in containers: the chart's operator, Milvus,
        # the AgentFleet's Redis, task API and two workers, the replicas and the ingestion Job.
        assert set(pids) == {"prometheus", "pod-discovery", "forward"}, (
            f"the fleet runs as pods; only Prometheus and the port forwards run here: {pids}"
        )
        on_real_node(cluster, namespace, "app.kubernetes.io/component=operator")
        on_real_node(cluster, namespace, "app.kubernetes.io/name=milvus")
        for component, count in (("redis", 1), ("api", 1), ("worker", 2)):
            found = on_real_node(cluster, namespace, f"{FLEET_LABEL}=support,{COMPONENT_LABEL}={component}")
            assert len(found) == count, (component, [p["metadata"]["name"] for p in found])
        assert len(on_real_node(cluster, namespace, "agentfleet.io/modelreplicaset=llama-8b")) >= 1
        vi = cluster.json("-n", namespace, "get", "vectorindexes.agentfleet.io", "docs")
        on_real_node(cluster, namespace, f"job-name={vi['status']['ingestion']['jobName']}")

        # The workers found the replicas through the replicas Service's EndpointSlices, as the
        # worker ServiceAccount (not from static endpoints).
        assert "routing: EndpointSlice discovery of Service llama-8b-replicas as ServiceAccount" in out, out[-4000:]
        config = (state / "demo" / namespace / "runtime.yaml").read_text()
        assert "endpoints:" not in config, config

        # Tasks went through the task API and all finished with an answer.
        assert re.search(rf"^tasks\s+{TASKS} done, 0 failed of {TASKS}", out, re.M), out[-4000:]
        assert f"{TASKS}/{TASKS} tasks" in out
        # The loop searched the index the ingestion filled, and answers cite what it found.
        rows = int(re.search(r"VectorIndex docs: (\d+) rows", out).group(1))
        assert rows > 0
        searches = int(re.search(r"^retrieval\s+(\d+) searches answered", out, re.M).group(1))
        assert searches >= TASKS
        assert re.search(r"^sample answer: .+\[source: \w[\w.-]*\.md\]", out, re.M), out[-2000:]
        calls = int(re.search(r"^model calls\s+(\d+)", out, re.M).group(1))
        assert calls >= 2 * TASKS  # at least search + answer per task
        p95 = re.search(r"^task time\s+p50 ([\d.]+)s\s+p95 ([\d.]+)s", out, re.M)
        assert p95 and float(p95.group(1)) <= float(p95.group(2))
        assert re.search(r"^cost/task\s+0\.\d+ USD", out, re.M), out[-2000:]

        # The report's placements are the operator's own, read from the ModelReplicaSet.
        mrs = cluster.json("-n", namespace, "get", "modelreplicasets.agentfleet.io", "llama-8b")
        placements = mrs["status"]["placements"]
        assert len(placements) == 2
        for p in placements:
            assert re.search(
                rf"^\s+{re.escape(p['name'])}\s+nodes {re.escape(','.join(p['nodes']))}\s+gpus {p['gpus']}", out, re.M
            ), out[-3000:]
        assert "kubectl get agentfleets,modelreplicasets,vectorindexes" in out
        # The figures the operator reads after the tasks fill their printer columns: the
        # autoscaler's from the Prometheus scraping the pods, the AgentFleet controller's from Redis.
        mrs_row = printed_row(out, "modelreplicaset.agentfleet.io/llama-8b")
        assert mrs_row["QUEUE"] and mrs_row["GOODPUT"], mrs_row
        assert float(mrs_row["GOODPUT"]) > 0, mrs_row
        af_row = printed_row(out, "agentfleet.agentfleet.io/support")
        assert int(af_row["TASKS/H"]) >= TASKS and float(af_row["P95(S)"]) > 0, af_row
        assert "still blank" not in out, out[-4000:]
        assert re.search(r"^vectorindex\.agentfleet\.io/docs\s+True", out, re.M), out[-3000:]

        # The example runs with in-cluster endpoints: Milvus by its Service's name, the fleet's own Redis.
        assert vi["spec"]["milvus"]["uri"] == f"http://milvus.{namespace}.svc.cluster.local:19530"
        af = cluster.json("-n", namespace, "get", "agentfleets.agentfleet.io", "support")
        assert "deploy" in af["spec"]["redis"], af["spec"]["redis"]
    finally:
        down = _driver(cluster, state, "down", "--namespace", namespace, timeout=300)
    assert down.returncode == 0, down.stderr
    left = {name: pid for name, pid in pids.items() if alive(pid)}
    assert not left, f"processes still running after `down`: {left}"
    assert not list((state / "demo" / namespace).glob("*.json"))
    assert cluster.run("get", "namespace", namespace, check=False).returncode != 0, "down left the namespace"
    assert cluster.run("get", "pv", f"{namespace}-redis", check=False).returncode != 0, "down left the Redis volume"


def rolled_replica_is_deleted_once_idle(cluster, ns: str, name: str) -> None:
    """Roll the set (a new engine.env entry shapes the pods) and follow its first drain: the drained
    replica's requests are read from llama-server's own gauges, so it goes as soon as it is idle.
    Before, a drain of a llama-server replica knew no count and waited drainTimeoutSeconds (600 s)."""
    selector = f"involvedObject.kind=ModelReplicaSet,involvedObject.name={name}"

    def events() -> dict[tuple[str, int], tuple[str, str]]:
        # An Event said again keeps its name and counts up: (uid, count) is one saying.
        items = cluster.json("-n", ns, "get", "events", "--field-selector", selector)["items"]
        return {(e["metadata"]["uid"], e.get("count") or 1): (e["reason"], e.get("message", "")) for e in items}

    before = events()
    mrs = cluster.json("-n", ns, "get", "modelreplicaset", name)
    env = [*(mrs["spec"]["engine"].get("env") or []), {"name": "AGENTFLEET_E2E_ROLL", "value": "1"}]
    patch = {"spec": {"engine": {"env": env}}}
    cluster.run("-n", ns, "patch", "modelreplicaset", name, "--type=merge", "-p", json.dumps(patch))
    deadline = time.monotonic() + 420  # a surge replica's start, then the drain; well short of 600 s
    while True:
        said = [v for k, v in events().items() if k not in before]
        deleted = [m for r, m in said if r == "ReplicaDeleted"]
        if deleted:
            break
        assert time.monotonic() < deadline, f"no replica deleted by the roll: {said}"
        time.sleep(3)
    draining = [m for r, m in said if r == "Draining"]
    assert draining and all("rolling update" in m and "unknown" not in m for m in draining), draining
    assert any("drained: 0 requests in flight" in m for m in deleted), deleted


def test_demo_with_a_real_model_serves_it_from_llama_server_pods(cluster, namespace, tmp_path):
    """--model smollm2: the replicas are pods of the llama engine image, whose `vllm` runs llama-server
    on the GGUF mounted read-only from the node, and the task's model calls reach them: each pod's own
    /metrics, read at its address inside the node's network namespace, counts the tokens; a roll
    deletes a drained replica once it is idle."""
    state = tmp_path / "state"
    try:
        up = _driver(
            cluster, state, "up", "--model", "smollm2", "--namespace", namespace, "--tasks", "1",
            "--task-timeout", "300", timeout=900,
        )  # fmt: skip
        out = up.stdout
        assert up.returncode == 0, f"demo failed ({up.returncode}):\n{out[-6000:]}\n{up.stderr[-4000:]}"
        assert re.search(r"^tasks\s+1 done, 0 failed of 1", out, re.M), out[-4000:]
        replicas = on_real_node(cluster, namespace, "agentfleet.io/modelreplicaset=llama-8b")
        predicted = 0.0
        for p in replicas:
            (c,) = p["spec"]["containers"]
            assert c["image"].startswith("localhost/agentfleet-engine-llama:"), c["image"]
            assert c["command"] == ["vllm", "serve"] and c["args"][0].endswith(".gguf"), (c["command"], c["args"])
            mount = next(m for m in c["volumeMounts"] if m["name"] == "model-source")
            assert mount.get("readOnly") is True, mount
            status, body, _ = realnode.http_in_netns(
                cluster.info["real_node"]["netns"], p["status"]["podIP"], 8000, "GET", "/metrics"
            )
            assert status == 200, (p["metadata"]["name"], status)
            found = re.search(r"^llamacpp:tokens_predicted_total ([\d.e+]+)", body.decode(), re.M)
            assert found, body.decode()[:2000]
            predicted += float(found.group(1))
        assert predicted > 0, "no replica pod's llama-server generated a token"
        rolled_replica_is_deleted_once_idle(cluster, namespace, "llama-8b")
    finally:
        down = _driver(cluster, state, "down", "--namespace", namespace, timeout=300)
    assert down.returncode == 0, down.stderr
    assert cluster.run("get", "pv", f"{namespace}-model-files", check=False).returncode != 0, "down left the model PV"


@pytest.mark.timeout(1200)
def test_demo_burst_scenario_scales_up_explains_each_decision_and_plots_it(cluster, namespace, tmp_path):
    state = tmp_path / "state"
    pids: dict[str, int] = {}
    try:
        # A shorter burst than the default: 20 s quiet, 50 s at 3 tasks/s, 40 s quiet.
        up = _driver(
            cluster,
            state,
            "up",
            "--namespace",
            namespace,
            "--scenario",
            "burst",
            "--burst-phases",
            "20:0.5,50:3,40:0.5",
            timeout=1080,
        )
        out = up.stdout
        for meta in (state / "demo" / namespace).glob("*.json"):
            pids[meta.stem] = json.loads(meta.read_text())["pid"]
        assert up.returncode == 0, f"demo failed ({up.returncode}):\n{out[-6000:]}\n{up.stderr[-4000:]}"
        assert "through the task API; the autoscaler's decisions as they happen" in out
        # Each decision as it happened: from, to, the term that asked for it and why.
        decisions = re.findall(r"^  \+\s*\d+s  replicas (\d+) -> (\d+)  term (\w+): (.+)$", out, re.M)
        assert any(int(after) > int(before) for before, after, _, _ in decisions), out[-6000:]
        assert all(
            term in ("reactive", "predictive", "standing", "scheduled") and why for _, _, term, why in decisions
        ), decisions
        # The replicas the autoscaler added answered calls (pods the workers found through the
        # replicas Service's EndpointSlices) and every task of the burst finished.
        assert re.search(r"^  tasks: (\d+) done, 0 failed, 0 unfinished of \1 submitted", out, re.M), out[-4000:]
        answered = int(re.search(r"^  replica pods that answered calls: (\d+)", out, re.M).group(1))
        assert answered > 2, f"no replica pod beyond the 2 placed first answered a call:\n{out[-4000:]}"
        events = int(re.search(r"Events of ModelReplicaSet llama-8b .*: (\d+) ScaledUp/ScaledDown", out).group(1))
        assert events >= len(decisions) > 0
        png = Path(re.search(r"plot of demand, replicas and goodput: (\S+)$", out, re.M).group(1))
        assert png == state / "demo" / namespace / "burst.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "no sample tasks" not in out and "== report" not in out  # the burst starts from a quiet fleet
    finally:
        down = _driver(cluster, state, "down", "--namespace", namespace, timeout=300)
    assert down.returncode == 0, down.stderr
    left = {name: pid for name, pid in pids.items() if alive(pid)}
    assert not left, f"processes still running after `down`: {left}"
    assert cluster.run("get", "namespace", namespace, check=False).returncode != 0, "down left the namespace"
