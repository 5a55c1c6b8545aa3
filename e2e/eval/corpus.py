"""The PostgreSQL 15 manual (Debian postgresql-doc-15) as the evaluation knowledge base.

``postgres-manual.yaml`` holds its VectorIndex: a volume source (in a cluster, a PVC holding the
manual's html/ directory) with a fixed revision. Outside a cluster the ingestion Job's workers run
as local processes and read the installed package's directory in place of the volume's mount.
"""

from __future__ import annotations

import copy
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

MANUAL = Path("/usr/share/doc/postgresql-doc-15/html")
OBJECTS = Path(__file__).resolve().parent / "postgres-manual.yaml"
TASKS = Path(__file__).resolve().parent / "postgres-manual-tasks.yaml"


def ensure_manual() -> Path:
    """The manual's html/ directory, installed with apt-get when missing (~25 s)."""
    if MANUAL.is_dir():
        return MANUAL
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "-q", "postgresql-doc-15"], env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "postgresql-doc-15"], env=env, check=True, capture_output=True)
    if not MANUAL.is_dir():
        raise RuntimeError(f"postgresql-doc-15 is installed but {MANUAL} is missing")
    return MANUAL


def manual_vectorindex() -> dict[str, Any]:
    return next(d for d in yaml.safe_load_all(OBJECTS.read_text()) if d and d.get("kind") == "VectorIndex")


def with_manual_source(vi: dict[str, Any]) -> dict[str, Any]:
    """A VectorIndex object whose source, chunking and index are the manual's (its name, Milvus
    endpoint and collection stay). Pure."""
    manual = manual_vectorindex()["spec"]
    out = copy.deepcopy(vi)
    for key in ("source", "chunking", "index", "metric", "dimension"):
        out["spec"][key] = copy.deepcopy(manual[key])
    return out


def with_manual_prompt(af: dict[str, Any]) -> dict[str, Any]:
    """An AgentFleet object with the system prompt of postgres-manual.yaml's AgentFleet. Pure."""
    manual = next(d for d in yaml.safe_load_all(OBJECTS.read_text()) if d and d.get("kind") == "AgentFleet")
    out = copy.deepcopy(af)
    out["spec"]["systemPrompt"] = copy.deepcopy(manual["spec"]["systemPrompt"])
    return out
