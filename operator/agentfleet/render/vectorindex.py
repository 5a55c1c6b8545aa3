"""Child objects of a VectorIndex as plain dicts: the ingestion Job (and its URL list), the Milvus.

Pure: no kopf, kubernetes or pymilvus here; the controller applies what these functions return
(server-side apply, one field manager) and reads back Job pods and the Milvus object's status.

Ingestion Job:
- Indexed completion mode, completions = parallelism = spec.ingestion.parallelism; worker i owns
  the documents whose id hashes to i (agentfleet_runtime.ingest.partition), so workers never
  coordinate and a retried worker redoes exactly its own share.
- The name carries a hash of the ingestion key (source revision, source, chunking, embedding,
  target collection): a new revision or a change that alters the chunks makes a new Job, the
  same inputs find the existing one. Re-running is safe: chunk ids are deterministic and rows
  are upserted.
- The worker needs no Kubernetes API access at all (automountServiceAccountToken: false): it
  reports progress as JSON lines on stdout and its final record as the termination message,
  which the operator reads from the pods (agentfleet_contract.ingest_progress).
- Exit code 3 means a permanent error (missing collection, dimension mismatch): the
  podFailurePolicy fails the Job at once instead of burning its retries; evictions are ignored.

Milvus (spec.milvus.managed): a ``milvus.io/v1beta1`` ``Milvus`` for the Milvus Operator with only
the fields we decide (mode, image, query node count and memory, standalone memory, storage size,
dependency deletion policy); the Milvus Operator fills in and writes back the rest.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import posixpath
import re
from decimal import Decimal
from typing import Any

from agentfleet_contract.vectorindex import Ingestion, VectorIndex, VectorIndexSpec

from agentfleet.capacity import parse_quantity
from agentfleet.render.common import RenderError, child_meta, restricted_container

VECTORINDEX_LABEL = "agentfleet.io/vectorindex"
INGESTION_KEY_LABEL = "agentfleet.io/ingestion-key"
REVISION_ANNOTATION = "agentfleet.io/source-revision"
MANAGED_BY = "agentfleet"

CONTAINER = "ingest"
INGEST_MODULE = "agentfleet_runtime.ingest"
SOURCE_MOUNT = "/mnt/source"
URLS_MOUNT = "/mnt/urls"
URLS_KEY = "urls.txt"
TMP_MOUNT = "/tmp"
RUN_AS = 65532  # the runtime image's numeric non-root user
EXIT_PERMANENT = 3  # agentfleet_runtime.ingest.cli.EXIT_PERMANENT
# Names: Indexed Job pods get the hostname <job>-<index>; keep room for it within 63.
JOB_NAME_MAX = 52
KEY_LEN = 10

_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([A-Za-z]*)$")


def twice(quantity: str) -> str:
    """A Kubernetes quantity (agentfleet_contract.common.QUANTITY) doubled, in its own unit. Pure."""
    m = _QUANTITY.match(quantity)
    if m is None:
        raise RenderError(f"not a quantity: {quantity!r}")
    number = format(Decimal(m.group(1)) * 2, "f")
    return (number.rstrip("0").rstrip(".") if "." in number else number) + m.group(2)


def ingestion_resources(ingestion: Ingestion) -> dict[str, Any]:
    """spec.ingestion.cpu and memory as requests, limits twice them (the defaults, 1 CPU and 1Gi,
    give what the Job always asked for). The CPU limit also sizes the encoder's thread pool (the
    worker reads its cgroup quota). Pure."""
    cpu, memory = ingestion.cpu or "1", ingestion.memory or "1Gi"
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": twice(cpu), "memory": twice(memory)}}


MILVUS_API_VERSION = "milvus.io/v1beta1"
MILVUS_KIND = "Milvus"
MILVUS_PORT = 19530
# Share of a query node's memory we plan to fill with one replica's segments: Milvus refuses
# loads near its memory watermark and needs room for growing segments and compaction.
QUERY_NODE_FILL = 0.6
# Bytes held in query-node memory per vector byte, by index type (graph links, centroids, codes).
INDEX_MEMORY_FACTOR = {
    "HNSW": 1.3,
    "AUTOINDEX": 1.3,
    "FLAT": 1.0,
    "IVF_FLAT": 1.05,
    "IVF_SQ8": 0.3,
    "IVF_PQ": 0.1,
    "DISKANN": 0.25,
}
SCALAR_BYTES_PER_ROW = 1536  # chunk text (~256 tokens), source, metadata JSON, id


# --- Names, labels, hashes ----------------------------------------------------------------------


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def _hash(obj: Any, n: int = KEY_LEN) -> str:
    return hashlib.sha256(_canonical(obj).encode()).hexdigest()[:n]


def _meta_name(vi: VectorIndex) -> str:
    name = (vi.metadata or {}).get("name")
    if not name:
        raise RenderError("the VectorIndex needs metadata.name")
    return name


def common_labels(vi_name: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "agentfleet-vectorindex",
        "app.kubernetes.io/instance": vi_name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        VECTORINDEX_LABEL: vi_name,
    }


def _meta(
    vi: VectorIndex, name: str, labels: dict[str, str], annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    return child_meta(vi, name, labels, annotations)


def source_revision(spec: VectorIndexSpec, observed: str | None = None) -> str:
    """spec.source.revision, or one derived from the source's definition plus ``observed``.

    ``observed`` is what the controller saw change in the source itself (the ConfigMap's data
    hash or resourceVersion); URL and PVC contents cannot be observed, so set a revision there
    to re-ingest changed documents.
    """
    if spec.source is None:
        raise RenderError("spec.source is unset: there is nothing to ingest")
    if spec.source.revision:
        return spec.source.revision
    src = spec.source.model_dump(by_alias=True, exclude_none=True, exclude={"revision"})
    return "auto-" + _hash({"source": src, "observed": observed or ""}, 12)


def ingestion_key(spec: VectorIndexSpec, revision: str, milvus_uri: str) -> str:
    """Everything that changes which rows an ingestion writes: a change means a new Job.

    The controller creates the Job when no Job of this name exists and never patches one (a
    Job's pod template is immutable); Jobs of the same VectorIndex with another key are
    superseded and can be deleted.
    """
    assert spec.source is not None
    return _hash(
        {
            "revision": revision,
            "source": spec.source.model_dump(by_alias=True, exclude_none=True),
            # sectionTitles left out while off: a field added later must not re-ingest every index.
            "chunking": spec.chunking.model_dump(
                by_alias=True, exclude=None if spec.chunking.section_titles else {"section_titles"}
            ),
            "embedding": spec.embedding.model_dump(by_alias=True, exclude={"batch_size", "api_key_secret_ref"}),
            # Worker count and limits change which worker writes what and which documents fail;
            # the image, backoffLimit and the pods' resources do not, and an operator upgrade must
            # not re-ingest everything.
            "ingestion": spec.ingestion.model_dump(by_alias=True, exclude={"image", "backoff_limit", "cpu", "memory"}),
            "collection": [milvus_uri, spec.milvus.database, spec.collection, spec.dimension],
            "partitionKey": spec.partition_key.field if spec.partition_key else None,
        }
    )


def row_tag(revision: str, key: str) -> str:
    """What an ingestion stores as every row's metadata.revision: the source revision plus the
    ingestion key. A chunking or embedding change keeps the source revision but writes other
    rows (other chunk ids, other vectors), so the key must be in the tag for the rows of earlier
    ingestions to be told apart and pruned."""
    return f"{revision}+{key}"


def ingestion_job_name(vi_name: str, key: str) -> str:
    suffix = f"-ingest-{key}"
    return vi_name[: JOB_NAME_MAX - len(suffix)].rstrip("-.") + suffix


def urls_config_map_name(job_name: str) -> str:
    return f"{job_name}-urls"


def ingestion_selector(vi_name: str) -> dict[str, str]:
    """Labels of every ingestion Job and pod of a VectorIndex (to list them, old ones too)."""
    return {VECTORINDEX_LABEL: vi_name, "app.kubernetes.io/component": "ingestion"}


# --- Ingestion Job --------------------------------------------------------------------------------


def _pvc_sub_path(path: str) -> str | None:
    norm = posixpath.normpath("/" + path.strip())
    if any(part == ".." for part in path.split("/")):
        raise RenderError(f"spec.source.persistentVolumeClaim.path {path!r} may not contain '..'")
    rel = norm.lstrip("/")
    return rel or None


def _milvus_env(spec: VectorIndexSpec, milvus_uri: str) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "MILVUS_URI", "value": milvus_uri},
        {"name": "MILVUS_DATABASE", "value": spec.milvus.database},
    ]
    creds = spec.milvus.credentials
    if creds is not None:
        env.append(
            {
                "name": "MILVUS_USER",
                "valueFrom": {"secretKeyRef": {"name": creds.secret_name, "key": creds.username_key}},
            }
        )
        env.append(
            {
                "name": "MILVUS_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": creds.secret_name, "key": creds.password_key}},
            }
        )
    return env


def ingestion_args(spec: VectorIndexSpec, revision: str) -> list[str]:
    """Flags of ``python -m agentfleet_runtime.ingest`` (agentfleet_runtime.ingest.cli)."""
    assert spec.source is not None
    e, c, i = spec.embedding, spec.chunking, spec.ingestion
    args = [
        "--collection", spec.collection,
        "--revision", revision,
        "--workers", str(i.parallelism),
        "--dimension", str(spec.dimension),
        "--max-tokens", str(c.max_tokens),
        "--overlap-tokens", str(c.overlap_tokens),
        "--embedding-provider", e.provider,
        "--embedding-model", e.model,
        "--embedding-batch-size", str(e.batch_size),
        "--insert-batch-size", str(i.insert_batch_size),
        "--max-document-bytes", str(i.max_document_bytes),
    ]  # fmt: skip
    if e.endpoint:
        args += ["--embedding-endpoint", e.endpoint]
    if c.section_titles:
        args += ["--section-titles"]
    if spec.partition_key is not None:
        args += ["--partition-key", spec.partition_key.field]
    if spec.source.urls is not None:
        args += ["--urls-file", f"{URLS_MOUNT}/{URLS_KEY}"]
    else:
        args += ["--source-dir", SOURCE_MOUNT]
    return args


def render_urls_config_map(vi: VectorIndex, job_name: str) -> dict[str, Any] | None:
    """The URL list as a ConfigMap file: up to 10,000 URLs do not fit in args or one env var."""
    src = vi.spec.source
    if src is None or src.urls is None:
        return None
    name = _meta_name(vi)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(vi, urls_config_map_name(job_name), common_labels(name, "ingestion")),
        "data": {URLS_KEY: "\n".join(src.urls) + "\n"},
    }


def render_ingestion_job(
    vi: VectorIndex,
    *,
    image: str,
    milvus_uri: str,
    revision: str,
    resources: dict[str, Any] | None = None,
    image_pull_policy: str | None = None,
) -> dict[str, Any]:
    """The ingestion Job. ``image`` is the operator's runtime image (spec.ingestion.image wins);
    ``milvus_uri`` is spec.milvus.uri or the managed Milvus' endpoint; ``revision`` comes from
    source_revision().

    Long on purpose: one Job manifest read top to bottom, as kubectl shows it; split into helpers
    it would scatter one pod spec over several functions."""
    spec = vi.spec
    if spec.source is None:
        raise RenderError("spec.source is unset: there is nothing to ingest")
    name = _meta_name(vi)
    key = ingestion_key(spec, revision, milvus_uri)
    job_name = ingestion_job_name(name, key)
    labels = {**common_labels(name, "ingestion"), INGESTION_KEY_LABEL: key}

    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": TMP_MOUNT}]
    src = spec.source
    if src.config_map is not None:
        volumes.append({"name": "source", "configMap": {"name": src.config_map.name}})
        mounts.append({"name": "source", "mountPath": SOURCE_MOUNT, "readOnly": True})
    elif src.persistent_volume_claim is not None:
        pvc = src.persistent_volume_claim
        volumes.append({"name": "source", "persistentVolumeClaim": {"claimName": pvc.claim_name, "readOnly": True}})
        mount: dict[str, Any] = {"name": "source", "mountPath": SOURCE_MOUNT, "readOnly": True}
        if sub := _pvc_sub_path(pvc.path):
            mount["subPath"] = sub
        mounts.append(mount)
    else:
        volumes.append({"name": "urls", "configMap": {"name": urls_config_map_name(job_name)}})
        mounts.append({"name": "urls", "mountPath": URLS_MOUNT, "readOnly": True})

    env = _milvus_env(spec, milvus_uri) + [
        {"name": "INGEST_WORKERS", "value": str(spec.ingestion.parallelism)},
        {"name": "HOME", "value": TMP_MOUNT},
        {"name": "AGENTFLEET_CACHE_DIR", "value": f"{TMP_MOUNT}/agentfleet-cache"},
        {"name": "HF_HUB_OFFLINE", "value": "1"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    if spec.embedding.api_key_secret_ref is not None:
        ref = spec.embedding.api_key_secret_ref
        env.append({"name": "EMBEDDING_API_KEY", "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})

    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.ingestion.image or image,
        "command": ["python", "-m", INGEST_MODULE],
        "args": ingestion_args(spec, row_tag(revision, key)),
        "env": env,
        "resources": copy.deepcopy(resources or ingestion_resources(spec.ingestion)),
        "volumeMounts": mounts,
        "terminationMessagePath": "/dev/termination-log",
        # The worker writes its final progress record there; if it dies before writing, the
        # tail of its log (which holds the last progress line) is used instead.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": restricted_container(),
    }
    if image_pull_policy:
        container["imagePullPolicy"] = image_pull_policy
    parallelism = spec.ingestion.parallelism
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(vi, job_name, labels, {REVISION_ANNOTATION: revision}),
        "spec": {
            "completionMode": "Indexed",
            "completions": parallelism,
            "parallelism": parallelism,
            "backoffLimit": spec.ingestion.backoff_limit,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {"containerName": CONTAINER, "operator": "In", "values": [EXIT_PERMANENT]},
                    },
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                ]
            },
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "restartPolicy": "Never",  # required by podFailurePolicy; the Job retries
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUN_AS,
                        "runAsGroup": RUN_AS,
                        # Files the pod writes on its volumes belong to the image's group; only a
                        # volume whose root does not already match is re-owned, so a large corpus
                        # volume is not walked on every start.
                        "fsGroup": RUN_AS,
                        "fsGroupChangePolicy": "OnRootMismatch",
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def render_ingestion(
    vi: VectorIndex, *, image: str, milvus_uri: str, revision: str, resources: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The objects of one ingestion, in apply order: the URL ConfigMap (URL sources), then the Job."""
    job = render_ingestion_job(vi, image=image, milvus_uri=milvus_uri, revision=revision, resources=resources)
    cm = render_urls_config_map(vi, job["metadata"]["name"])
    return ([cm] if cm else []) + [job]


# --- Managed Milvus -------------------------------------------------------------------------------


def milvus_name(vi_name: str) -> str:
    return f"{vi_name}-milvus"


def query_nodes(spec: VectorIndexSpec, expected_rows: int | None = None) -> int:
    """Query nodes so every in-memory replica fits: replicas x nodes per replica.

    Milvus puts each replica on its own query nodes, so at least one node per replica. With a
    row estimate (status.rowCount), a replica larger than QUERY_NODE_FILL of one node's memory
    is spread over several nodes.
    """
    assert spec.milvus.managed is not None
    per_replica = 1
    if expected_rows:
        vector_bytes = expected_rows * spec.dimension * 4
        need = vector_bytes * INDEX_MEMORY_FACTOR.get(spec.index.type, 1.3) + expected_rows * SCALAR_BYTES_PER_ROW
        usable = parse_quantity(spec.milvus.managed.query_node_memory) * QUERY_NODE_FILL
        per_replica = max(1, math.ceil(need / usable))
    return spec.in_memory_replicas * per_replica


def render_milvus(vi: VectorIndex, *, expected_rows: int | None = None) -> dict[str, Any]:
    spec = vi.spec
    managed = spec.milvus.managed
    if managed is None:
        raise RenderError("spec.milvus.managed is unset: the VectorIndex uses an existing Milvus")
    name = _meta_name(vi)
    memory = managed.query_node_memory
    mem = {"requests": {"memory": memory}, "limits": {"memory": memory}}
    components: dict[str, Any] = {}
    if managed.image:
        components["image"] = managed.image
    if managed.mode == "Cluster":
        components["queryNode"] = {"replicas": query_nodes(spec, expected_rows), "resources": mem}
    else:
        components["standalone"] = {"resources": mem}
    delete = spec.deletion_policy == "Delete"
    in_cluster = {"deletionPolicy": "Delete" if delete else "Retain", "pvcDeletion": delete}
    return {
        "apiVersion": MILVUS_API_VERSION,
        "kind": MILVUS_KIND,
        "metadata": _meta(vi, milvus_name(name), common_labels(name, "milvus")),
        "spec": {
            "mode": managed.mode.lower(),
            "components": components,
            "dependencies": {
                "etcd": {"inCluster": dict(in_cluster)},
                "storage": {"inCluster": {**in_cluster, "values": {"persistence": {"size": managed.storage_size}}}},
            },
        },
    }


def milvus_ready(obj: dict[str, Any] | None) -> tuple[bool, str]:
    """(ready, why) from a Milvus object's MilvusReady condition."""
    if not obj:
        return False, "the Milvus object does not exist yet"
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == "MilvusReady":
            if c.get("status") == "True":
                return True, c.get("message") or "MilvusReady"
            return False, f"{c.get('reason') or 'NotReady'}: {c.get('message') or 'Milvus is not ready'}"
    return False, "the Milvus Operator has not reported MilvusReady yet"


_HOST_PORT = re.compile(r"^[A-Za-z0-9.-]+(:\d+)?$")


def milvus_uri(obj: dict[str, Any] | None) -> str | None:
    """The gRPC URI of a ready managed Milvus, from status.endpoint (host:port)."""
    ready, _ = milvus_ready(obj)
    endpoint = ((obj or {}).get("status") or {}).get("endpoint")
    if not ready or not endpoint:
        return None
    if "://" in endpoint:
        return endpoint
    if not _HOST_PORT.match(endpoint):
        return None
    return f"http://{endpoint}" if ":" in endpoint else f"http://{endpoint}:{MILVUS_PORT}"
