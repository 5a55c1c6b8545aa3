"""Run a container of a rendered pod (the chart's or the operator's) from the built image with
podman, the way a kubelet would run it, as far as one machine without a kubelet can:

- ``command``/``args`` as given (``command[0]`` is the entrypoint), ``env`` values, ``fieldRef``
  (namespace, name, completion index) and ``secretKeyRef`` (read from the cluster);
- the container's ``securityContext``: ``runAsUser``/``runAsGroup`` (or the pod's) as
  ``--user`` with no passwd entry added for it (``--passwd=false``, as on containerd and CRI-O),
  ``readOnlyRootFilesystem`` as ``--read-only`` *without* podman's default tmpfs on
  /tmp, /var/tmp and /run (``--read-only-tmpfs=false``), so that only the pod's ``emptyDir`` mounts
  (tmpfs) are writable; ``capabilities.drop: [ALL]`` and ``allowPrivilegeEscalation: false``;
- ``configMap``/``secret`` volumes as read-only bind mounts of files written from the cluster's
  objects.

Differences from a cluster, and why: the host network (``--network host``; the test's Redis, Milvus
Lite and API server listen on 127.0.0.1), ports the test moves to free ones (several jobs share
this machine), and the operator gets a kubeconfig file instead of a ServiceAccount token.
"""

from __future__ import annotations

import base64
import json
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

# runc, not Debian 12's crun, which refuses a hybrid cgroup layout (v1 controllers beside a v2
# mount, as in this sandbox). Without CAP_SYS_RESOURCE podman cannot raise its default open-file
# and process limits above the host's, so the containers get lower ones, as a kubelet's would
# inherit the node's.
PODMAN = ["podman", "--runtime", "runc"]
ULIMITS = ["--ulimit", "nofile=16384:16384", "--ulimit", "nproc=8192:8192"]


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


class Container:
    def __init__(
        self,
        cluster: Any,
        image: str,
        pod: dict[str, Any],
        container: str,
        namespace: str,
        *,
        name: str,
        extra_env: dict[str, str] | None = None,
        extra_mounts: dict[str, str] | None = None,
        completion_index: int = 0,
    ) -> None:
        self.cluster = cluster
        self.image = image
        self.pod = pod  # a PodSpec
        self.spec = next(c for c in pod["containers"] if c["name"] == container)
        self.namespace = namespace
        self.name = f"af-e2e-{name}-{uuid.uuid4().hex[:6]}"
        self.extra_env = extra_env or {}
        self.extra_mounts = extra_mounts or {}  # host path -> container path (read-only)
        self.completion_index = completion_index  # an Indexed Job's pod's index
        self.dir = Path(tempfile.mkdtemp(prefix=f"agentfleet-{name}-"))

    # -- pod spec -> podman flags -------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for e in self.spec.get("env", []):
            if "value" in e:
                out[e["name"]] = str(e["value"])
                continue
            src = e.get("valueFrom", {})
            if "fieldRef" in src:
                path = src["fieldRef"]["fieldPath"]
                out[e["name"]] = {
                    "metadata.namespace": self.namespace,
                    "metadata.name": self.name,
                    "metadata.annotations['batch.kubernetes.io/job-completion-index']": str(self.completion_index),
                }[path]
            elif "secretKeyRef" in src:
                ref = src["secretKeyRef"]
                data = self.cluster.json("-n", self.namespace, "get", "secret", ref["name"])["data"]
                out[e["name"]] = base64.b64decode(data[ref["key"]]).decode()
            else:
                raise AssertionError(f"env {e['name']}: no translation for {src}")
        out.update(self.extra_env)
        return out

    def _volume_files(self, volume: dict[str, Any]) -> Path:
        """A host folder holding what a configMap/secret volume projects."""
        d = self.dir / "volumes" / volume["name"]
        d.mkdir(parents=True)
        if "configMap" in volume:
            data = self.cluster.json("-n", self.namespace, "get", "configmap", volume["configMap"]["name"]).get(
                "data", {}
            )
            items = volume["configMap"].get("items") or [{"key": k, "path": k} for k in data]
        elif "secret" in volume:
            raw = self.cluster.json("-n", self.namespace, "get", "secret", volume["secret"]["secretName"]).get(
                "data", {}
            )
            data = {k: base64.b64decode(v).decode() for k, v in raw.items()}
            items = volume["secret"].get("items") or [{"key": k, "path": k} for k in data]
        else:
            raise AssertionError(f"volume {volume['name']}: no translation for {sorted(volume)}")
        for it in items:
            (d / it["path"]).parent.mkdir(parents=True, exist_ok=True)
            (d / it["path"]).write_text(data[it["key"]])
        d.chmod(0o755)
        for f in d.rglob("*"):
            f.chmod(0o755 if f.is_dir() else 0o644)
        return d

    def flags(self) -> list[str]:
        sc = {**(self.pod.get("securityContext") or {}), **(self.spec.get("securityContext") or {})}
        # --passwd=false: podman by default adds a passwd entry for the --user uid, which a kubelet's
        # containerd or CRI-O never does; that hid an operator that crash-looped on every real node.
        flags = ["--name", self.name, "--network", "host", "--pull", "never", "--passwd=false", *ULIMITS]
        flags += ["--user", f"{sc['runAsUser']}:{sc.get('runAsGroup', sc['runAsUser'])}"]
        if sc.get("readOnlyRootFilesystem"):
            flags += ["--read-only", "--read-only-tmpfs=false"]
        if "ALL" in (sc.get("capabilities") or {}).get("drop", []):
            flags.append("--cap-drop=ALL")
        if sc.get("allowPrivilegeEscalation") is False:
            flags += ["--security-opt", "no-new-privileges"]
        volumes = {v["name"]: v for v in self.pod.get("volumes", [])}
        hosts: dict[str, Path] = {}  # mount path -> host folder of a configMap/secret volume
        for m in self.spec.get("volumeMounts", []):
            v = volumes[m["name"]]
            if "emptyDir" in v:
                flags += ["--tmpfs", f"{m['mountPath']}:rw,mode=1777"]
            else:
                hosts[m["mountPath"]] = self._volume_files(v)
        for path, host in hosts.items():
            # A mount inside another (api tokens under /etc/agentfleet) needs its mount point in
            # the outer, read-only one; a kubelet's projected folders have it the same way.
            for inner in hosts:
                if inner != path and inner.startswith(path + "/"):
                    (host / inner[len(path) + 1 :]).mkdir(parents=True, exist_ok=True)
        for path, host in sorted(hosts.items()):
            flags += ["-v", f"{host}:{path}:ro"]
        for host, path in self.extra_mounts.items():
            flags += ["-v", f"{host}:{path}:ro"]
        for k, v in self._env().items():
            flags += ["-e", f"{k}={v}"]
        command = self.spec.get("command") or []
        if command:
            flags += ["--entrypoint", json.dumps(command[:1])]
        return flags

    def argv(self) -> list[str]:
        command = self.spec.get("command") or []
        return [*command[1:], *self.spec.get("args", [])]

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        podman("run", "-d", *self.flags(), self.image, *self.argv())

    def run(self, timeout: float = 600) -> int:
        """Runs to completion (a Job's pod); returns the exit code."""
        self.start()
        out = podman("wait", self.name, timeout=timeout).stdout.strip()
        return int(out.splitlines()[-1])

    def running(self) -> bool:
        return podman("inspect", "--format", "{{.State.Running}}", self.name, check=False).stdout.strip() == "true"

    def pid(self) -> int:
        return int(podman("inspect", "--format", "{{.State.Pid}}", self.name).stdout.strip())

    def uids(self) -> tuple[str, str]:
        """(Uid, Gid) lines of the container's main process, as the host kernel sees it."""
        status = Path(f"/proc/{self.pid()}/status").read_text().splitlines()
        uid = next(line for line in status if line.startswith("Uid:")).split()[1:]
        gid = next(line for line in status if line.startswith("Gid:")).split()[1:]
        return uid[0], gid[0]

    def exec(self, *cmd: str) -> subprocess.CompletedProcess:
        return podman("exec", self.name, *cmd, check=False)

    def logs(self) -> str:
        return podman("logs", self.name, check=False).stdout + podman("logs", self.name, check=False).stderr

    def stop(self) -> None:
        podman("rm", "-f", "-t", "10", self.name, check=False, timeout=60)
