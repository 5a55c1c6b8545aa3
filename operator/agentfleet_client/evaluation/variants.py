"""``--compare KEY=V1,V2``: one fleet's runtime in several configurations, side by side.

Each variant is the fleet's runtime configuration (its ConfigMap document, ``runtime.yaml``) with
one setting changed, run as a task API and a worker on this machine (``python -m
agentfleet_runtime api|worker``: the code the fleet's pods run), against the fleet's own model
servers, Milvus and Redis. Each variant gets its own fleet name, so its Redis keys (queue,
checkpoints, retrieval cache) are its own and one variant's cache never answers another's search.

KEY is a dotted path into the runtime configuration (``budgets.maxSteps``, ``model.name``), or
``retrieval.<field>`` for the Retrieval tools' settings (``retrieval.topK``,
``retrieval.cacheTtlSeconds``), ``retrieval.vectorIndex.<field>`` for the index's spec as the
runtime reads it (``retrieval.vectorIndex.fullText=[{}]`` searches hybrid; the collection must
have been created with spec.fullText). Values are YAML scalars, or, when the list starts with ``[``, one
YAML flow sequence of values of any shape (``decisions.toolPolicies=[[]]``).

An ablation is ``--compare`` repeated, or given one value: the configuration as given runs first
(labelled ``as configured``) and each KEY=VALUE is one change from it, so every column's delta is
what that one setting is worth.
"""

from __future__ import annotations

import copy
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from agentfleet_contract.runtime_config import RuntimeConfig

from agentfleet_client.evaluation.runner import Target

READY_SECONDS = 120


class VariantError(ValueError):
    """A --compare setting that cannot be applied; the message says what to write."""


AS_CONFIGURED = "as configured"


@dataclass(frozen=True)
class Variant:
    label: str  # e.g. retrieval.topK=3
    key: str  # "" for the configuration as given
    value: Any


def _values(spec: str, values: str) -> list[tuple[str, Any]]:
    """(label text, value) pairs of the part after '='."""
    if values.strip().startswith("["):
        try:
            seq = yaml.safe_load(values)
        except yaml.YAMLError as e:
            raise VariantError(
                f"--compare {spec!r}: the values are not one YAML flow sequence ({e.__class__.__name__})"
            ) from e
        if not isinstance(seq, list):
            raise VariantError(
                f"--compare {spec!r}: write the values as one YAML flow sequence, e.g. decisions.toolPolicies=[[]]"
            )
        return [(yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip(), v) for v in seq]
    return [(v.strip(), yaml.safe_load(v)) for v in values.split(",") if v.strip()]


def parse_compare(spec: str) -> list[Variant]:
    """The variants of one --compare KEY=V1[,V2...] (one value: a change from the configuration as given)."""
    if "=" not in spec:
        raise VariantError(f"--compare {spec!r}: write KEY=V1,V2 (for example retrieval.topK=3,8)")
    key, _, values = spec.partition("=")
    key = key.strip()
    if not key:
        raise VariantError(f"--compare {spec!r}: give a key, e.g. retrieval.cacheTtlSeconds=0,300")
    vals = _values(spec, values)
    if not vals:
        raise VariantError(f"--compare {spec!r}: give at least one value, e.g. retrieval.cacheTtlSeconds=0,300")
    return [Variant(f"{key}={text}", key, v) for text, v in vals]


def plan_variants(specs: list[str]) -> list[Variant]:
    """Every --compare's variants in order; an ablation (one value, or several --compare) runs the
    configuration as given first, so each delta is against it."""
    parsed = [parse_compare(s) for s in specs]
    variants = [v for vs in parsed for v in vs]
    if len(parsed) > 1 or (parsed and len(parsed[0]) == 1):
        variants.insert(0, Variant(AS_CONFIGURED, "", None))
    return variants


def apply_variant(doc: dict[str, Any], variant: Variant, fleet: str) -> dict[str, Any]:
    """The runtime configuration with the variant's setting and its own fleet name. Pure."""
    out = copy.deepcopy(doc)
    out["fleet"] = fleet
    if not variant.key:
        return out
    head, _, rest = variant.key.partition(".")
    if head == "retrieval" and rest and rest.split(".")[0] not in ("uri", "vectorIndex"):
        tools = [t for t in out.get("tools") or [] if t.get("type") == "Retrieval"]
        if not tools:
            raise VariantError(f"--compare {variant.key}: the runtime configuration has no Retrieval tool")
        for t in tools:
            t.setdefault("retrieval", {})[rest] = variant.value
        return out
    node = out
    parts = variant.key.split(".")
    for p in parts[:-1]:
        if not isinstance(node.get(p, {}), dict):
            raise VariantError(f"--compare {variant.key}: {p} is not a section of the runtime configuration")
        node = node.setdefault(p, {})
    node[parts[-1]] = variant.value
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - 127.0.0.1
            return r.status == 200
    except OSError:
        return False


@contextmanager
def local_runtime(doc: dict[str, Any], label: str, workers: int = 1) -> Iterator[Target]:
    """A task API and ``workers`` workers serving ``doc``, stopped (SIGTERM) on exit."""
    work = Path(tempfile.mkdtemp(prefix=f"agentfleet-eval-{doc['fleet']}-"))
    token = secrets.token_urlsafe(24)
    (work / "tokens").write_text(token + "\n")
    doc = {**doc, "api": {**(doc.get("api") or {}), "tokensFile": str(work / "tokens")}, "listenHost": "127.0.0.1"}
    RuntimeConfig.model_validate(doc)  # a bad override fails here, with pydantic's field path
    (work / "runtime.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    api_port = _free_port()
    procs: list[subprocess.Popen] = []
    logs = []
    try:
        specs = [
            (
                "api",
                {"AGENTFLEET_API_PORT": str(api_port), "AGENTFLEET_METRICS_PORT": "0"},
                f"http://127.0.0.1:{api_port}/readyz",
            )
        ]
        for i in range(workers):
            mp = _free_port()
            specs.append((f"worker-{i}", {"AGENTFLEET_METRICS_PORT": str(mp)}, f"http://127.0.0.1:{mp}/readyz"))
        for name, env, _ in specs:
            log = open(work / f"{name}.log", "wb")  # noqa: SIM115 - closed below
            logs.append(log)
            cmd = [
                sys.executable,
                "-m",
                "agentfleet_runtime",
                name.split("-")[0],
                "--config",
                str(work / "runtime.yaml"),
            ]
            procs.append(subprocess.Popen(cmd, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + READY_SECONDS
        for (name, _, url), p in zip(specs, procs, strict=True):
            while not _ready(url):
                if p.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"variant {label}: the {name} did not become ready; its log: {work / (name + '.log')}"
                    )
                time.sleep(0.3)
        yield Target(label, f"http://127.0.0.1:{api_port}", token)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        for log in logs:
            log.close()
