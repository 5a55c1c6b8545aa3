"""A VectorIndex on a real Milvus server on the real node: PyPI ``milvus`` 2.3.5 standalone
(coordinators, query/data/index nodes, embedded etcd) as a pod behind a Service (e2e/harness/milvus_pod.py),
the operator from the chart as a pod, the ingestion Job's pods, all run by the node's containerd.

Milvus Lite (the embedded default, test_realnode.py's Milvus) ignores shards and in-memory replicas and
cannot be killed under a writer without losing what it held in memory; this server does neither. Here:

- shards and in-memory replicas in the VectorIndex status are the server's (describe_collection,
  describe_replica), and a replica number the single query node cannot hold leaves it loaded with one;
- the operator's ingestion Job fills the collection from a volume of documents, and the runtime's
  Retriever finds the documents through the Service;
- an index type change rebuilds the index over the rows already there, losing none;
- the Milvus container SIGKILLed while the Job writes: the kubelet restarts it, the Job resumes, and
  the collection holds every chunk once (ids counted against the uninterrupted ingestion).

Figures (time to Ready, memory, rows/s, kill/resume counts) are printed as FIGURE lines:
docs/results/2026-11-26-milvus-realnode.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from agentfleet_contract import ingest_progress as progress

from e2e.bench import ingest_corpus as gen
from e2e.harness import milvus_pod, realnode
from e2e.harness.nodenet import forward_into_netns
from e2e.tests.test_realnode import dump, kill_containers, new_namespace, node, on_real_node  # noqa: F401 - node

# The real node has 2 CPUs shared by every e2e test running at once, and the ingestion Job asks for a
# whole one: its pod may wait minutes to be scheduled.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3000)]

N_DOCUMENTS = 800
QUERY_CAP = 16_384  # Milvus 2.3's most rows in one query
SHARDS = 2
# The real node's 2 CPUs are shared by every e2e test running at once, whose pods' requests left
# less than a tenth of one free at times (seen): the Milvus pod asks 20m, the one operator pod 10m;
# the ingestion worker asks the operator's default, a whole CPU, and may wait to be scheduled.
CLAIM = "corpus"
FIGURES: dict[str, Any] = {}


def figure(key: str, value: Any) -> None:
    FIGURES[key] = value
    print(f"FIGURE {key}: {value}", flush=True)


@pytest.fixture(scope="module", autouse=True)
def figures_block() -> Iterator[None]:
    """Every figure of the module once more, as one block, when the module ends (the results page copies it)."""
    yield
    print("\n" + "\n".join(f"FIGURE {k}: {v}" for k, v in FIGURES.items()), flush=True)


@pytest.fixture(scope="module")
def images(cluster, node) -> dict[str, str]:  # noqa: F811 - node is a fixture
    """The project image (the operator, the ingestion Job) and the slim base the Milvus pod runs in,
    imported into the node. Neither carries Milvus: its binaries come from the cache on a volume.
    AGENTFLEET_REALNODE_IMAGE names another project image (e2e/cluster/node/mutant.sh), as in test_realnode."""
    t0 = time.monotonic()
    project = os.environ.get("AGENTFLEET_REALNODE_IMAGE") or realnode.run(
        "bash", str(realnode.ROOT / "e2e" / "cluster" / "image.sh"), "build", timeout=3600
    )
    project = project.strip().splitlines()[-1]
    realnode.import_images(cluster, project)
    base = milvus_pod.base_image(cluster)
    figure("images (project build-or-cache + base, imported)", f"{time.monotonic() - t0:.1f} s")
    return {"project": project, "base": base}


@pytest.fixture(scope="module")
def operator(cluster, node, images, helm) -> Iterator[dict[str, str]]:  # noqa: F811 - fixtures
    """The chart installed unchanged by helm (one operator pod, a small CPU request: see above)
    into a namespace on the real node, watching the test's namespace."""
    ns = new_namespace(cluster, "af-mvs-op")
    fleet_ns = new_namespace(cluster, "af-mvs")
    sets = [f"operator.watchNamespaces={{{fleet_ns}}}", "operator.resources.requests.cpu=10m", "operator.replicas=1"]
    try:
        realnode.helm_install(cluster, helm, "af", ns, images["project"], sets)
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    yield {"ns": ns, "fleet_ns": fleet_ns}
    # The test's namespace first, while the operator still runs to clear its objects' finalizers.
    cluster.run("delete", "namespace", fleet_ns, "--ignore-not-found", "--timeout=120s", check=False, timeout=150)
    realnode.helm_uninstall(cluster, helm, "af", ns)
    cluster.run("delete", "namespace", ns, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture(scope="module")
def milvus(cluster, node, images, operator) -> dict[str, Any]:  # noqa: F811 - fixtures
    """The Milvus standalone pod and Service in the fleet's namespace, Ready."""
    ns = operator["fleet_ns"]
    uri = milvus_pod.deploy(cluster, ns, images["base"], cpu="20m")
    try:
        pod, took = milvus_pod.wait_ready(cluster, ns)
    except RuntimeError as e:
        dump(cluster, ns)
        pytest.fail(str(e), pytrace=False)
    figure("Milvus pod: apply to Ready (/healthz)", f"{took:.1f} s")
    figure("Milvus RSS just Ready", f"{milvus_pod.memory(milvus_pod.container_pid(node, pod))['VmRSS'] >> 20} MiB")
    return {"ns": ns, "uri": uri, "pod": pod}


@contextmanager
def client(cluster, node: dict, ns: str) -> Iterator[str]:  # noqa: F811 - node is a fixture here
    """A local URI into the Milvus Service (its ClusterIP in the node's namespace)."""
    ip = cluster.json("-n", ns, "get", "service", milvus_pod.NAME)["spec"]["clusterIP"]
    with forward_into_netns(node["netns"], ip, milvus_pod.GRPC_PORT) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def corpus() -> gen.Corpus:
    return gen.generate(N_DOCUMENTS, seed=5, filler_paragraphs=1, queries_per_document=0.1)


@pytest.fixture(scope="module")
def corpus_claim(cluster, operator, corpus: gen.Corpus) -> Iterator[str]:  # noqa: F811 - operator is a fixture
    """The corpus as files in a directory of the node, world-readable (the Job runs as 65532), and a
    read-only claim CLAIM bound to it (realnode.host_dir_claim, with the consent label)."""
    ns = operator["fleet_ns"]
    root = Path(f"/tmp/agentfleet-e2e-corpus-{ns}")
    gen.write(corpus, root)
    for p in [root, *root.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    realnode.host_dir_claim(cluster, ns, CLAIM, root)
    yield CLAIM
    cluster.run("delete", "pv", f"{ns}-{CLAIM}", "--wait=false", "--ignore-not-found", check=False)
    shutil.rmtree(root, ignore_errors=True)


def vectorindex(name: str, uri: str, **more: Any) -> dict[str, Any]:
    spec = {
        "collection": name.replace("-", "_"),
        "dimension": 384,
        "milvus": {"uri": uri},
        "shards": SHARDS,
        "index": {"type": "HNSW"},
        "source": {"persistentVolumeClaim": {"claimName": CLAIM, "path": "/"}},
        # One worker: its Job pods are its runs (the kill test counts them); small batches so
        # rows reach Milvus early in the Job. Not spec.ingestion.cpu (this tree's field): an operator
        # of another test that watches every namespace runs older code, which calls it InvalidSpec
        # and marks the object Failed beside ours (seen).
        "ingestion": {"parallelism": 1, "insertBatchSize": 32},
        **more,
    }
    return {"apiVersion": "agentfleet.io/v1alpha1", "kind": "VectorIndex", "metadata": {"name": name}, "spec": spec}


def status(cluster, ns: str, name: str) -> dict[str, Any]:
    return cluster.json("-n", ns, "get", "vectorindex", name).get("status") or {}


def conditions(st: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in st.get("conditions", [])}


def wait_indexed(cluster, ns: str, name: str, timeout: float = 1800) -> dict[str, Any]:
    def indexed() -> dict | None:
        st = status(cluster, ns, name)
        assert st.get("phase") != "Failed", st  # a failed Job: no use waiting out the timeout
        ready = conditions(st).get("Ready", {}).get("status") == "True"
        return st if ready and (st.get("ingestion") or {}).get("completedAt") else None

    try:
        return cluster.wait_for(indexed, timeout=timeout, interval=2, desc=f"VectorIndex {name} Ready after ingestion")
    finally:
        dump(cluster, ns)


def ids(uri: str, collection: str) -> list[str]:
    """Every row's id, read with one Strong query (16,384 rows at most)."""
    from pymilvus import MilvusClient

    c = MilvusClient(uri=uri, timeout=60)
    try:
        rows = c.query(collection, filter='id != ""', output_fields=["id"], limit=QUERY_CAP, consistency_level="Strong")
        count = c.query(collection, filter="", output_fields=["count(*)"], consistency_level="Strong")[0]["count(*)"]
    finally:
        c.close()
    assert len(rows) < QUERY_CAP, "the corpus outgrew one query: page through it"
    got = [r["id"] for r in rows]
    assert len(got) == int(count), (len(got), count)
    return got


@pytest.fixture(scope="module")
def kb(cluster, node, milvus, corpus_claim) -> dict[str, Any]:  # noqa: F811 - node is a fixture
    """VectorIndex ``kb`` (2 shards, HNSW) ingested by the operator's Job into the server."""
    ns = milvus["ns"]
    obj = vectorindex("kb", milvus["uri"])
    t0 = time.monotonic()
    cluster.apply(obj, ns)
    st = wait_indexed(cluster, ns, "kb")
    figure("kb: VectorIndex applied to Ready after ingestion", f"{time.monotonic() - t0:.1f} s")
    return {"ns": ns, "obj": obj, "status": st, "collection": obj["spec"]["collection"]}


def rows_per_second(ing: dict[str, Any]) -> float:
    from datetime import datetime

    took = datetime.fromisoformat(ing["completedAt"]) - datetime.fromisoformat(ing["startedAt"])
    return ing["chunks"] / max(took.total_seconds(), 1e-9)


def test_milvus_pod_runs_the_cached_server_on_the_real_node(cluster, node, milvus) -> None:  # noqa: F811
    """The Service answers gRPC with a real Milvus 2.3.5 (not Lite), from a pod containerd runs on the
    real node with the cache's binaries on a read-only volume."""
    from pymilvus import MilvusClient

    pod = milvus_pod.server_pod(cluster, milvus["ns"])
    assert pod is not None
    on_real_node(pod, node["name"])
    mounts = {m["name"]: m for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["bin"].get("readOnly") is True and "hostPath" in pod["spec"]["volumes"][0], pod["spec"]
    with client(cluster, node, milvus["ns"]) as uri:
        c = MilvusClient(uri=uri, timeout=30)
        version = c.get_server_version()
        c.close()
    assert version.startswith("v2.3.5"), version


def test_shards_and_replicas_in_status_are_the_servers(cluster, node, kb) -> None:  # noqa: F811
    """status.shards and status.inMemoryReplicas are what the server reports: 2 DML channels, one
    replica with a shard leader on each."""
    from pymilvus import MilvusClient

    st = kb["status"]
    assert st["shards"] == SHARDS and st["inMemoryReplicas"] == 1 and st["loadState"] == "Loaded", st
    with client(cluster, node, kb["ns"]) as uri:
        c = MilvusClient(uri=uri, timeout=30)
        desc = c.describe_collection(kb["collection"])
        replicas = c.describe_replica(kb["collection"])
        c.close()
    assert desc["num_shards"] == SHARDS, desc
    assert len(replicas) == 1, replicas
    leaders = {s.channel_name: s.shard_leader for s in replicas[0].shards}
    assert len(leaders) == SHARDS and all(v >= 0 for v in leaders.values()), leaders


def test_ingestion_job_fills_the_server_and_the_retriever_finds_the_documents(
    cluster,
    node,  # noqa: F811
    kb,
    corpus: gen.Corpus,
) -> None:
    """The operator's Job (one worker pod on the real node) ingests every document; the collection holds
    exactly its chunks, each once; the runtime's Retriever, through the Service, finds the documents
    the corpus's queries are about."""
    from agentfleet_contract.vectorindex import VectorIndexSpec

    from agentfleet_runtime.tools.retriever import Retriever

    ns, st = kb["ns"], kb["status"]
    ing = st["ingestion"]
    assert ing["documentsTotal"] == ing["documentsDone"] == N_DOCUMENTS and ing["documentsFailed"] == 0, ing
    (worker,) = realnode.pods(cluster, ns, f"job-name={ing['jobName']}")
    on_real_node(worker, node["name"])
    assert worker["status"]["phase"] == "Succeeded", worker["status"]
    figure("kb: ingestion rows/s (status.ingestion chunks / (completedAt - startedAt))", f"{rows_per_second(ing):.1f}")
    figure("kb: chunks", ing["chunks"])
    with client(cluster, node, ns) as uri:
        got = ids(uri, kb["collection"])
        assert len(got) == len(set(got)) == ing["chunks"] == st["rowCount"], (len(got), ing, st["rowCount"])

        async def search() -> float:
            retriever = Retriever.for_index(VectorIndexSpec.model_validate(kb["obj"]["spec"]), uri=uri)
            async with retriever:
                results = await retriever.search_many([q.text for q in corpus.queries], top_k=5)
            hits = sum(q.source in {p.source for p in ps} for q, ps in zip(corpus.queries, results, strict=True))
            return hits / len(corpus.queries)

        recall = asyncio.run(search())
    figure("kb: Retriever recall@5 over the corpus's queries", f"{recall:.3f} ({len(corpus.queries)} queries)")
    assert len(corpus.queries) >= 40 and recall >= 0.9, recall
    pid = milvus_pod.container_pid(node, milvus_pod.server_pod(cluster, ns))
    mem = milvus_pod.memory(pid)
    figure("Milvus RSS after ingestion / peak", f"{mem['VmRSS'] >> 20} MiB / {mem['VmHWM'] >> 20} MiB")


def test_replicas_the_server_cannot_hold_leave_it_serving(cluster, node, kb) -> None:  # noqa: F811
    """inMemoryReplicas 2 on one query node: the server refuses, the VectorIndex says so
    (Degraded/ReplicasRefused) and status.inMemoryReplicas stays the server's 1, still Loaded and
    answering; back to 1, Ready again."""
    from pymilvus import MilvusClient

    ns = kb["ns"]
    cluster.run("-n", ns, "patch", "vectorindex", "kb", "--type=merge", "-p", '{"spec": {"inMemoryReplicas": 2}}')

    def refused() -> dict | None:
        st = status(cluster, ns, "kb")
        degraded = conditions(st).get("Degraded", {})
        return st if degraded.get("reason") == "ReplicasRefused" and degraded.get("status") == "True" else None

    st = cluster.wait_for(refused, timeout=180, interval=2, desc="Degraded/ReplicasRefused")
    assert st["inMemoryReplicas"] == 1 and st["loadState"] == "Loaded", st
    with client(cluster, node, ns) as uri:
        c = MilvusClient(uri=uri, timeout=30)
        assert len(c.describe_replica(kb["collection"])) == 1
        hits = c.search(kb["collection"], data=[[0.1] * 384], limit=3, output_fields=["id"])
        c.close()
    assert len(hits[0]) == 3, hits
    cluster.run("-n", ns, "patch", "vectorindex", "kb", "--type=merge", "-p", '{"spec": {"inMemoryReplicas": 1}}')
    cluster.wait_for(
        lambda: conditions(status(cluster, ns, "kb")).get("Degraded", {}).get("status") == "False",
        timeout=180,
        interval=2,
        desc="Degraded False again",
    )


def test_an_index_type_change_rebuilds_over_the_rows_already_there(cluster, node, kb) -> None:  # noqa: F811
    """HNSW -> IVF_FLAT: the server's index is IVF_FLAT, Loaded again, with the same rows (ids)."""
    from pymilvus import MilvusClient

    ns = kb["ns"]
    with client(cluster, node, ns) as uri:
        before = set(ids(uri, kb["collection"]))
    t0 = time.monotonic()
    cluster.run(
        "-n", ns, "patch", "vectorindex", "kb", "--type=merge", "-p", '{"spec": {"index": {"type": "IVF_FLAT"}}}'
    )

    def rebuilt() -> dict | None:
        st = status(cluster, ns, "kb")
        ready = conditions(st).get("Ready", {}).get("status") == "True"
        return st if st.get("indexType") == "IVF_FLAT" and st.get("loadState") == "Loaded" and ready else None

    st = cluster.wait_for(rebuilt, timeout=300, interval=2, desc="status.indexType IVF_FLAT, Loaded")
    figure("kb: index HNSW -> IVF_FLAT to Loaded again", f"{time.monotonic() - t0:.1f} s")
    with client(cluster, node, ns) as uri:
        c = MilvusClient(uri=uri, timeout=30)
        index = c.describe_index(kb["collection"], c.list_indexes(kb["collection"])[0])
        c.close()
        after = ids(uri, kb["collection"])
    assert index["index_type"] == "IVF_FLAT", index
    assert len(after) == len(set(after)) == len(before) == st["rowCount"] and set(after) == before


def test_milvus_killed_during_ingestion_the_job_resumes_and_nothing_is_lost_or_doubled(
    cluster,
    node,  # noqa: F811
    milvus,
    kb,
) -> None:
    """A second VectorIndex over the same documents; once its worker has written rows, the Milvus
    container is SIGKILLed (containerd) and the kubelet restarts it. The Job finishes (the worker's
    retries or a new worker pod), and the collection holds the uninterrupted ingestion's ids, each once."""
    ns = milvus["ns"]
    with client(cluster, node, ns) as uri:
        reference = set(ids(uri, kb["collection"]))
    # Its worker held to 100m CPU (limit 200m, spec.ingestion.cpu): on a quiet machine an unlimited
    # worker wrote all 800 documents within its first 5-second progress line, before any kill (CI).
    obj = vectorindex("kb-kill", milvus["uri"], ingestion={"parallelism": 1, "insertBatchSize": 32, "cpu": "100m"})
    cluster.apply(obj, ns)

    def writing() -> tuple[dict, progress.WorkerProgress] | None:
        job = (status(cluster, ns, "kb-kill").get("ingestion") or {}).get("jobName")
        for p in realnode.pods(cluster, ns, f"job-name={job}") if job else []:
            logs = cluster.run("-n", ns, "logs", p["metadata"]["name"], check=False).stdout
            last = progress.latest(logs)
            if last is not None and last.chunks > 0:
                return p, last
        return None

    worker, last = cluster.wait_for(writing, timeout=1500, interval=0.5, desc="the kb-kill worker writing rows")
    server = milvus_pod.server_pod(cluster, ns)
    restarts = server["status"]["containerStatuses"][0]["restartCount"]
    kill_containers(cluster, node, server)
    killed = time.monotonic()
    figure("kill: chunks the worker had written when Milvus was killed", last.chunks)

    def restarted() -> dict | None:
        p = milvus_pod.server_pod(cluster, ns)
        return p if p and p["status"]["containerStatuses"][0]["restartCount"] > restarts and realnode.ready(p) else None

    cluster.wait_for(restarted, timeout=300, interval=0.5, desc="the kubelet restarting the Milvus container, Ready")
    figure("kill: SIGKILL to Milvus Ready again (kubelet restart)", f"{time.monotonic() - killed:.1f} s")
    st = wait_indexed(cluster, ns, "kb-kill")
    ing = st["ingestion"]
    runs = realnode.pods(cluster, ns, f"job-name={ing['jobName']}")
    phases = sorted(p["status"]["phase"] for p in runs)
    figure("kill: Job worker pods (phases)", json.dumps(phases))
    figure("kill: Milvus container restarts", restarts + 1)
    for p in runs:
        on_real_node(p, node["name"])
    assert ing["documentsDone"] == N_DOCUMENTS and ing["documentsFailed"] == 0, ing
    assert last.chunks < len(reference), "the kill came after the ingestion"
    with client(cluster, node, ns) as uri:
        got = ids(uri, obj["spec"]["collection"])
    figure("kill: rows / distinct ids / reference ids", f"{len(got)} / {len(set(got))} / {len(reference)}")
    assert len(got) == len(set(got)) == len(reference) == st["rowCount"], (len(got), len(set(got)), st["rowCount"])
    assert set(got) == reference
    assert worker["spec"]["nodeName"] == node["name"]
