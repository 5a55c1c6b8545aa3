"""Other projects' CRDs and binaries for the e2e tests, from e2e/cluster/thirdparty.sh (Go modules at
pinned versions, cached under $AGENTFLEET_CACHE)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

THIRDPARTY_SH = Path(__file__).resolve().parents[1] / "cluster" / "thirdparty.sh"


def thirdparty(what: str, timeout: float) -> Path:
    """`e2e/cluster/thirdparty.sh crds|keda`: the cached folder (fetched or built first when missing)."""
    try:
        proc = subprocess.run(["bash", str(THIRDPARTY_SH), what], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"e2e/cluster/thirdparty.sh {what} did not finish in {timeout:.0f}s", pytrace=False)
    if proc.returncode != 0:
        pytest.fail(f"e2e/cluster/thirdparty.sh {what} failed:\n{proc.stderr[-3000:]}", pytrace=False)
    return Path(proc.stdout.strip().splitlines()[-1])


def keda_bin_dir() -> Path:
    # A cold build compiles KEDA (10+ minutes on 2 cores); e2e/test.sh builds it before pytest.
    return thirdparty("keda", float(os.environ.get("AGENTFLEET_KEDA_BUILD_TIMEOUT_S", "3600")))


def install_thirdparty_crds(cluster) -> list[str]:
    """Applies the cached third-party CRDs (idempotent) and waits until each is Established."""
    files = sorted(thirdparty("crds", 600).glob("*.yaml"))
    names = [yaml.safe_load(f.read_text())["metadata"]["name"] for f in files]
    # Server-side: the Prometheus Operator's CRDs exceed the last-applied annotation's size limit.
    for f in files:
        cluster.run(
            "apply", "--server-side", "--force-conflicts", "--field-manager=agentfleet-e2e", "-f", str(f), timeout=120
        )
    for n in names:
        cluster.run("wait", "--for=condition=Established", f"crd/{n}", "--timeout=60s")
    cluster.wait_for(
        lambda: (
            cluster.run(
                "get", "podmonitors,scaledobjects,applications.argoproj.io,inferencepools", "-A", check=False
            ).returncode
            == 0
        ),
        timeout=30,
        desc="discovery of the third-party kinds",
    )
    return names


def strict_apply(
    cluster: Any, docs: list[dict[str, Any]], namespace: str, check: bool = True
) -> subprocess.CompletedProcess:
    """Server-side apply with strict field validation: an unknown or misspelt field is an error,
    not a silently pruned one."""
    body = json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})
    return cluster.run(
        "apply",
        "--server-side",
        "--validate=strict",
        "--field-manager=agentfleet-e2e",
        "-n",
        namespace,
        "-f",
        "-",
        input=body,
        check=check,
    )


def contains(live: Any, want: Any) -> bool:
    """Every field of ``want`` is in ``live`` with the same value (the server may add defaults)."""
    if isinstance(want, dict):
        return isinstance(live, dict) and all(k in live and contains(live[k], v) for k, v in want.items())
    if isinstance(want, list):
        return (
            isinstance(live, list)
            and len(live) == len(want)
            and all(contains(a, b) for a, b in zip(live, want, strict=True))
        )
    return live == want or (isinstance(want, (int, float)) and str(live) == str(want))
