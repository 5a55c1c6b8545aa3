"""The evaluation knowledge bases: real documentation sets as Debian installs them.

- ``postgres``: the PostgreSQL 15 manual (``postgresql-doc-15``, 1,173 HTML pages);
- ``python``: the Python 3.11 standard library reference (``python3.11-doc``, the 317 pages of its
  ``library/`` directory; the rest of that package is tutorials, the C API and Sphinx's own files).

Each has ``<name>.yaml`` beside this file with its VectorIndex (a volume source: in a cluster, a PVC
holding the pages, with a fixed revision) and the AgentFleet system prompt for it,
``<name>-tasks.yaml`` with its questions, and ``<name>-fresh-tasks.yaml`` and
``<name>-fresh-b-tasks.yaml`` to ``<name>-fresh-f-tasks.yaml`` with fresh sets of questions, all
held out (issue 59): each written after the one before had been run and its failures read, so that a
change made since is measured on questions nobody has seen it answer. Outside a cluster the
ingestion Job's workers run as local processes and read the installed package's directory in place
of the volume's mount. Two corpora, so that what is tuned on one set of documents can be checked on
another.
"""

from __future__ import annotations

import copy
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Corpus:
    """One documentation set: where Debian puts it and the files that describe it here."""

    name: str  # the demo's --corpus choice
    title: str
    package: str  # the Debian package that installs the pages
    directory: Path  # the pages, as the VectorIndex's volume path names them
    objects: Path  # VectorIndex + AgentFleet (system prompt)
    tasks: Path  # the task set for agentfleet eval
    fresh: tuple[Path, ...]  # fresh task sets, oldest first, all held out, from the pages alone, never tuned on

    def ensure(self) -> Path:
        """The pages' directory, installed with apt-get when missing (~25 s each)."""
        if self.directory.is_dir():
            return self.directory
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", self.package]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, check=True, capture_output=True)
            subprocess.run(install, env=env, check=True, capture_output=True)
        if not self.directory.is_dir():
            raise RuntimeError(f"{self.package} is installed but {self.directory} is missing")
        return self.directory

    def _object(self, kind: str) -> dict[str, Any]:
        return next(d for d in yaml.safe_load_all(self.objects.read_text()) if d and d.get("kind") == kind)

    def vectorindex(self) -> dict[str, Any]:
        return self._object("VectorIndex")

    def with_source(self, vi: dict[str, Any]) -> dict[str, Any]:
        """A VectorIndex object whose source, chunking and index are this corpus's (its name, Milvus
        endpoint and collection stay). Pure."""
        spec = self.vectorindex()["spec"]
        out = copy.deepcopy(vi)
        for key in ("source", "chunking", "index", "metric", "dimension"):
            out["spec"][key] = copy.deepcopy(spec[key])
        if "fullText" in spec:  # hybrid retrieval is part of the collection's schema: it comes with the corpus
            out["spec"]["fullText"] = copy.deepcopy(spec["fullText"])
        return out

    def with_fleet(self, af: dict[str, Any]) -> dict[str, Any]:
        """An AgentFleet object with this corpus's AgentFleet settings laid over it: the system prompt
        replaced, every other spec section merged key by key (budgets, decisions), and, when the corpus
        lists tools, those tools, each laid over the object's tool of the same name (an entry may give
        only a name and the settings it changes). Pure."""
        theirs = self._object("AgentFleet")["spec"]
        out = copy.deepcopy(af)
        spec = out["spec"]
        for key, value in theirs.items():
            if key == "tools":
                by_name = {t["name"]: t for t in spec.get("tools") or []}
                spec["tools"] = [_merged(by_name.get(t["name"], {}), t) for t in value]
            elif key == "systemPrompt" or not isinstance(value, dict):
                spec[key] = copy.deepcopy(value)
            else:
                spec[key] = _merged(spec.get(key) or {}, value)
        return out


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` laid over ``base``, dicts merged key by key, anything else replaced. Pure."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


POSTGRES = Corpus(
    "postgres",
    "the PostgreSQL 15 manual",
    "postgresql-doc-15",
    Path("/usr/share/doc/postgresql-doc-15/html"),
    HERE / "postgres-manual.yaml",
    HERE / "postgres-manual-tasks.yaml",
    (
        HERE / "postgres-manual-fresh-tasks.yaml",
        HERE / "postgres-manual-fresh-b-tasks.yaml",
        HERE / "postgres-manual-fresh-c-tasks.yaml",
        HERE / "postgres-manual-fresh-d-tasks.yaml",
        HERE / "postgres-manual-fresh-e-tasks.yaml",
        HERE / "postgres-manual-fresh-f-tasks.yaml",
    ),
)
PYTHON = Corpus(
    "python",
    "the Python 3.11 library reference",
    "python3.11-doc",
    Path("/usr/share/doc/python3.11/html/library"),
    HERE / "python-library.yaml",
    HERE / "python-library-tasks.yaml",
    (
        HERE / "python-library-fresh-tasks.yaml",
        HERE / "python-library-fresh-b-tasks.yaml",
        HERE / "python-library-fresh-c-tasks.yaml",
        HERE / "python-library-fresh-d-tasks.yaml",
        HERE / "python-library-fresh-e-tasks.yaml",
        HERE / "python-library-fresh-f-tasks.yaml",
    ),
)
CORPORA = {c.name: c for c in (POSTGRES, PYTHON)}

# The first corpus's names, as the demo driver and the ingestion benchmark use them.
MANUAL = POSTGRES.directory
OBJECTS = POSTGRES.objects
TASKS = POSTGRES.tasks
ensure_manual = POSTGRES.ensure
manual_vectorindex = POSTGRES.vectorindex
with_manual_source = POSTGRES.with_source
with_manual_fleet = POSTGRES.with_fleet
