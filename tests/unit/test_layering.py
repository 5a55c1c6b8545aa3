"""Import contracts in pyproject.toml: the API and pure logic do no I/O."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_no_package_shadows_the_standard_library() -> None:
    for top in ("operator", "runtime", "shared"):
        assert not (ROOT / top / "__init__.py").exists(), f"{top}/ must not be a package: it shadows the stdlib"
    import operator as stdlib_operator

    assert hasattr(stdlib_operator, "itemgetter")


def test_test_module_names_are_unique() -> None:
    # pytest's default import mode imports test files by basename; two alike would collide.
    names = [p.name for top in ("tests", "e2e") for p in (ROOT / top).rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []


# --- one way to do each thing -----------------------------------------------------------------------

PRODUCT = [ROOT / "operator", ROOT / "runtime", ROOT / "shared"]


def _definitions() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Top-level and nested function and class names defined in product code -> where."""
    import ast

    funcs: dict[str, list[str]] = {}
    classes: dict[str, list[str]] = {}
    for top in PRODUCT:
        for path in top.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    funcs.setdefault(node.name, []).append(str(path.relative_to(ROOT)))
                elif isinstance(node, ast.ClassDef):
                    classes.setdefault(node.name, []).append(str(path.relative_to(ROOT)))
    return funcs, classes


def test_each_shared_mechanism_is_defined_once() -> None:
    """One condition helper, one owner reference, one validation-error formatter, one Event recorder,
    one status writer, one reconciler base, one API client: a second copy fails here."""
    funcs, classes = _definitions()
    for name in (
        "set_condition",
        "owner_reference",
        "child_meta",
        "describe_validation_error",
        "runtime_config",
        "post_with_kube",
        "post_with_kopf",
    ):
        assert len(funcs.get(name, [])) == 1, (name, funcs.get(name))
    for name in ("EventRecorder", "StatusWriter", "Controller", "WorkQueue", "Kube", "RenderError", "RuntimeConfig"):
        assert len(classes.get(name, [])) == 1, (name, classes.get(name))


def test_only_the_client_and_the_framework_touch_the_api_machinery() -> None:
    """Controllers go through agentfleet.kube.Kube; pydantic errors through reconcile.errors."""
    for top in PRODUCT:
        for path in top.rglob("*.py"):
            rel = str(path.relative_to(ROOT))
            src = path.read_text()
            if rel != "operator/agentfleet/kube.py":
                assert "._resource(" not in src and "kube.dynamic" not in src, rel
            if (
                rel != "operator/agentfleet/reconcile/errors.py"
                and "agentfleet/" in rel
                and "agentfleet_runtime" not in rel
            ):
                assert ".errors()" not in src, rel


def test_rollout_in_an_operator_module_name_is_the_gate() -> None:
    """One name, one meaning: `rollout` is spec.rollout, the AgentFleet's evaluation gate
    (agentfleet.gate, docs/evaluation-gate.md). The ModelReplicaSet's replica-by-replica rollout is
    agentfleet.replica_rollout; a module named plain `rollout` would lead a reader of spec.rollout there."""
    named = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "operator").rglob("*") if p.stem == "rollout")
    assert named == [], f"name it for what it rolls out: {named}"
