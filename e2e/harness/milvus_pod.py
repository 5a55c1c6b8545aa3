"""A real Milvus 2.3.5 standalone server (PyPI ``milvus``) as a pod on the e2e cluster's real node.

The server is the one e2e/harness/milvus_standalone.py installs and extracts once into the cache
(``~/.cache/agentfleet/milvus-2.3.5/bin``: the Go binary and the 23 shared libraries it ships, 246 MB).
The pod runs it from that directory, mounted read-only as a ``hostPath`` volume, in the slim Debian
base image the project image is built on (e2e/cluster/image.sh base: glibc, which is all the binary
needs from the system). No image of its own: building and importing one that carries the 246 MB
costs more on a cold CI run (docs/results/2026-11-26-milvus-realnode.md measures both).

Its config is the package's template filled as the package's own writer fills it, with the default
ports (the pod has its own network namespace, so nothing to probe) and logs to stdout (``kubectl
logs``); data (embedded etcd, rocksmq, segments) lives on an ``emptyDir``, which outlives a crash of
the container (the kubelet restarts it in the same pod) but not the pod.

The server ignores SIGTERM (its components keep retrying rootcoord), so the pod's grace period is
short: the kubelet's SIGKILL is what stops it, and data survives a SIGKILL.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from e2e.harness import milvus_standalone, realnode

NAME = "milvus"
GRPC_PORT = 19530
HEALTH_PORT = 9091
BIN = "/opt/milvus/bin"  # the cache's bin/, read-only
CONFIGS = "/etc/milvus/configs"  # milvus.yaml and glog.conf from a ConfigMap
DATA = "/var/lib/milvus"  # working directory (glog writes logs/ under it) and every data path
LABELS = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/component": "milvus-standalone"}
_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}")


def config_yaml(template: str, data_dir: str = DATA) -> str:
    """The package's ``config.yaml.template`` filled for a pod (MilvusServerConfig's placeholders:
    ``{{ key }}``, ``{{ key: default }}``, ``{{ key(type): default }}``): the data paths under DATA_DIR
    as its writer lays them out, logs to stdout, every port its default. Pure."""
    paths = {
        "etcd_log_path": "stdout",
        "system_log_path": '""',  # no log file: Milvus writes to stdout
        "etcd_data_dir": f"{data_dir}/data/etcd.data",
        "local_storage_dir": f"{data_dir}/data",
        "rocksmq_data_dir": f"{data_dir}/data/rocksmq",
    }

    def fill(m: re.Match[str]) -> str:
        key, sep, default = m.group(1).partition(":")
        key = key.split("(")[0].strip()
        if key in paths:
            return paths[key]
        if not sep or not default.strip():
            raise ValueError(f"the Milvus config template's {{{{ {key} }}}} has no default and no value here")
        return default.strip()

    return _PLACEHOLDER.sub(fill, template)


def package_data(home: Path = milvus_standalone.HOME) -> Path:
    """The installed ``milvus`` package's data directory (the config template and glog.conf)."""
    found = sorted((home / "venv").glob("lib/python3*/site-packages/milvus/data"))
    if not found:
        raise RuntimeError(
            f"no milvus package under {home / 'venv'}: run python -m e2e.harness.milvus_standalone install"
        )
    return found[0]


def manifests(
    image: str, bin_dir: str | None, config: dict[str, str], memory: str = "2Gi", cpu: str = "100m"
) -> list[dict[str, Any]]:
    """The ConfigMap, Deployment and Service of one Milvus standalone: IMAGE runs BIN_DIR's (a node
    directory, mounted read-only at BIN; None: IMAGE carries BIN itself) ``milvus run standalone`` as
    non-root with a read-only root, Ready when /healthz answers. CONFIG maps file names to contents. Pure."""
    container = {
        "name": NAME,
        "image": image,
        "imagePullPolicy": "Never",
        "command": [f"{BIN}/milvus", "run", "standalone"],
        "workingDir": DATA,
        "env": [
            {"name": "LD_LIBRARY_PATH", "value": BIN},  # the libraries it ships, before the image's
            {"name": "DEPLOY_MODE", "value": "STANDALONE"},
            {"name": "METRICS_PORT", "value": str(HEALTH_PORT)},
            {"name": "MILVUS_RUN_DIR", "value": f"{DATA}/run"},
            {"name": "MILVUSCONF", "value": CONFIGS},
        ],
        "ports": [
            {"name": "grpc", "containerPort": GRPC_PORT},
            {"name": "metrics", "containerPort": HEALTH_PORT},
        ],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": HEALTH_PORT}, "periodSeconds": 1},
        "resources": {"requests": {"cpu": cpu, "memory": "512Mi"}, "limits": {"memory": memory}},
        "securityContext": {
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "bin", "mountPath": BIN, "readOnly": True},
            {"name": "configs", "mountPath": CONFIGS, "readOnly": True},
            {"name": "data", "mountPath": DATA},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    pod = {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 65532},
        "automountServiceAccountToken": False,
        # SIGTERM does nothing to it: a long grace period is only a longer wait for the SIGKILL.
        "terminationGracePeriodSeconds": 5,
        "containers": [container],
        "volumes": [
            {"name": "bin", "hostPath": {"path": bin_dir, "type": "Directory"}},
            {"name": "configs", "configMap": {"name": f"{NAME}-config"}},
            {"name": "data", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
        ],
    }
    if bin_dir is None:
        container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] != "bin"]
        pod["volumes"] = [v for v in pod["volumes"] if v["name"] != "bin"]
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{NAME}-config"}, "data": config},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": NAME, "labels": LABELS},
            "spec": {
                "replicas": 1,
                "strategy": {"type": "Recreate"},  # two servers must never share a name in one namespace
                "selector": {"matchLabels": LABELS},
                "template": {"metadata": {"labels": LABELS}, "spec": pod},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": NAME, "labels": LABELS},
            "spec": {
                "selector": LABELS,
                "ports": [{"name": "grpc", "port": GRPC_PORT, "targetPort": GRPC_PORT}],
            },
        },
    ]


def base_image(cluster) -> str:  # type: ignore[no-untyped-def]
    """The Debian base image of the project image (e2e/cluster/image.sh base), imported into the node."""
    ref = realnode.run("bash", str(realnode.ROOT / "e2e" / "cluster" / "image.sh"), "base", timeout=3600)
    ref = ref.strip().splitlines()[-1]
    realnode.import_images(cluster, ref)
    return ref


def own_image_ref(base: str, home: Path = milvus_standalone.HOME) -> str:
    """The alternative to the volume: e2e/cluster/node/milvus.Containerfile, BASE with the cache's
    binaries copied into BIN (built by buildah when missing, tagged by a hash of its inputs)."""
    milvus_standalone.ensure_installed(home)
    files = tuple(sorted(p for p in (home / "bin").iterdir() if p.name == "milvus" or ".so" in p.name))
    files = tuple(p for p in files if not p.name.endswith(".md5"))
    return realnode.build_image("milvus.Containerfile", base, "localhost/agentfleet-milvus", extra=files)


def deploy(  # type: ignore[no-untyped-def]
    cluster, ns: str, image: str, home: Path = milvus_standalone.HOME, *, own_image: bool = False, cpu: str = "100m"
) -> str:
    """The Milvus standalone pod and its Service in NS (binaries installed into the cache first when
    missing); returns the URI pods use, by the Service's name. Does not wait for it. OWN_IMAGE: IMAGE
    carries the binaries (own_image_ref), no hostPath volume. CPU: the pod's request."""
    milvus_standalone.ensure_installed(home)
    data = package_data(home)
    config = {
        "milvus.yaml": config_yaml((data / "config.yaml.template").read_text()),
        "glog.conf": (data / "glog.conf").read_text(),
    }
    for obj in manifests(image, None if own_image else str(home / "bin"), config, cpu=cpu):
        cluster.apply(obj, ns)
    return f"http://{NAME}.{ns}.svc.cluster.local:{GRPC_PORT}"


def server_pod(cluster, ns: str) -> dict[str, Any] | None:  # type: ignore[no-untyped-def]
    """The Milvus pod of NS (None when there is none yet)."""
    found = realnode.pods(cluster, ns, ",".join(f"{k}={v}" for k, v in LABELS.items()))
    return found[0] if found else None


def wait_ready(cluster, ns: str, timeout: float = 300) -> tuple[dict[str, Any], float]:  # type: ignore[no-untyped-def]
    """Waits for the Milvus pod Ready (/healthz OK); the pod and the seconds waited."""
    t0 = time.monotonic()

    def ready() -> dict[str, Any] | None:
        p = server_pod(cluster, ns)
        for cs in (p or {}).get("status", {}).get("containerStatuses", []):
            waiting = (cs.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in ("CrashLoopBackOff", "CreateContainerError", "ErrImageNeverPull"):
                raise RuntimeError(f"the Milvus pod cannot start: {waiting}")
        return p if p and realnode.ready(p) else None

    p = cluster.wait_for(ready, timeout=timeout, interval=0.5, desc="the Milvus standalone pod Ready")
    return p, time.monotonic() - t0


def container_pid(node: dict[str, Any], pod: dict[str, Any]) -> int:
    """The host PID of the pod's Milvus process (containerd's task)."""
    cid = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("containerd://")
    out = realnode.run(node["ctr"], "--address", node["containerd_socket"], "-n", "k8s.io", "tasks", "ls", timeout=60)
    for line in out.splitlines():
        fields = line.split()
        if fields and fields[0] == cid:
            return int(fields[1])
    raise RuntimeError(f"containerd runs no task {cid}:\n{out}")


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of PID in bytes."""
    got = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            got[key] = int(value.split()[0]) * 1024
    return got
