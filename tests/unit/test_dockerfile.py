"""The Dockerfile, checked statically (no container runtime here): stages, a numeric non-root USER,
the `python -m` entrypoint, a read-only-rootfs friendly environment, and that every module the
chart and the operator's renderers start in this image exists with a main that parses its args."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import json
import re
import sys
import tomllib
from pathlib import Path

import pytest

import agentfleet.render.agentfleet as render_af
import agentfleet.render.vectorindex as render_vi

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
CHART_TEMPLATES = ROOT / "charts" / "agentfleet" / "templates"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def stages(ins: list[tuple[str, str]]) -> list[tuple[str, list[tuple[str, str]]]]:
    out: list[tuple[str, list[tuple[str, str]]]] = []
    for word, rest in ins:
        if word == "FROM":
            m = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", rest, re.IGNORECASE)
            assert m, rest
            out.append((m.group(2) or "", []))
        elif out:
            out[-1][1].append((word, rest))
    return out


INS = instructions(DOCKERFILE.read_text())
STAGES = stages(INS)
FINAL = STAGES[-1][1]


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in stage:
        if word == "ENV":
            for m in re.finditer(r"(\w+)=(\S+)", rest):
                env[m.group(1)] = m.group(2)
    return env


def test_multi_stage_and_the_final_stage_copies_only_the_virtualenv_and_the_task_sets() -> None:
    names = [n for n, _ in STAGES]
    assert len(STAGES) >= 2 and names[0] == "build" and names[-1]
    copies = [rest for word, rest in FINAL if word == "COPY"]
    assert copies == [
        "--from=build /opt/agentfleet /opt/agentfleet",
        "--from=build /etc/passwd /etc/group /etc/",
        "--from=build /usr/share/agentfleet /usr/share/agentfleet",  # the gate's shipped task sets
    ]
    assert not any(word == "RUN" for word, _ in FINAL), "the final stage adds no layers of its own"


def test_build_stage_copies_every_server_package_and_neither_the_client_nor_test_tooling() -> None:
    roots = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["where"]
    packages = {
        f"{root}/{pkg.name}" for root in roots for pkg in (ROOT / root).iterdir() if (pkg / "__init__.py").is_file()
    }
    copied = {
        rest.split()[0].rstrip("/") for word, rest in STAGES[0][1] if word == "COPY" and not rest.startswith("--")
    }

    def shipped(package: str) -> bool:
        return any(package == c or package.startswith(c + "/") for c in copied)

    # e2e/ holds the simulator (development only); agentfleet_client runs on a user's machine.
    left_out = {p for p in packages if p.startswith("e2e/") or p.endswith("/agentfleet_client")}
    assert {p for p in packages - left_out if not shipped(p)} == set()
    assert {p for p in left_out if shipped(p)} == set()


def test_runs_as_a_numeric_non_root_user() -> None:
    users = [rest for word, rest in FINAL if word == "USER"]
    assert users, "the final stage sets no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0, (
        "USER must be numeric (runAsNonRoot is checked without /etc/passwd) and not 0"
    )
    assert gid == "" or (gid.isdigit() and int(gid) > 0)
    # The same uid the renderers put into runAsUser and the chart's default.
    assert int(uid) == render_vi.RUN_AS
    # Nothing after USER switches back.
    last_user = max(i for i, (word, _) in enumerate(FINAL) if word == "USER")
    assert all(word != "USER" for word, _ in FINAL[last_user + 1 :])


def test_the_user_has_a_passwd_and_a_group_entry() -> None:
    # containerd and CRI-O add no passwd entry for a uid the image lacks (podman does, by default):
    # without one getpass.getuser() raises KeyError, which crash-looped the operator on real kubelets.
    uid = next(rest for word, rest in reversed(FINAL) if word == "USER").partition(":")[0]
    runs = " ".join(rest for word, rest in STAGES[0][1] if word == "RUN")
    assert re.search(rf"\w+:x:{uid}:{uid}:[^:]*:/tmp:[^ ']+' >>/etc/passwd", runs), "no passwd entry for the USER's uid"
    assert re.search(rf"\w+:x:{uid}:' >>/etc/group", runs), "no group entry for the USER's gid"
    assert "--from=build /etc/passwd /etc/group /etc/" in [rest for word, rest in FINAL if word == "COPY"]


def test_entrypoint_is_python_m_and_the_default_is_the_operator() -> None:
    entry = [rest for word, rest in FINAL if word == "ENTRYPOINT"]
    cmd = [rest for word, rest in FINAL if word == "CMD"]
    assert json.loads(entry[-1]) == ["python", "-m"], "exec form, so signals reach python"
    assert json.loads(cmd[-1]) == ["agentfleet.manager"]


def test_environment_works_with_a_read_only_root_filesystem() -> None:
    env = env_of(FINAL)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    for var in ("HOME", "TMPDIR", "XDG_CACHE_HOME", "AGENTFLEET_CACHE_DIR"):
        assert env[var] == "/tmp" or env[var].startswith("/tmp/"), var
    assert env["PATH"].startswith("/opt/agentfleet/bin:")
    # Bytecode is compiled at build time, so imports never try to write next to the sources.
    assert any(word == "RUN" and "compileall" in rest for word, rest in STAGES[0][1])


# --- the modules pods start ---------------------------------------------------------------------


def modules_started() -> dict[str, str]:
    """module -> where it is named: the chart's containers and every renderer's container command."""
    found: dict[str, str] = {}
    for path in CHART_TEMPLATES.glob("*.yaml"):
        for m in re.finditer(r'command:\s*\["python",\s*"-m",\s*"([\w.]+)"\]', path.read_text()):
            found[m.group(1)] = f"chart {path.name}"
    # Every module of agentfleet.render: a renderer's containers may be built in a sibling of its module.
    for path in sorted(Path(render_af.__file__).parent.glob("*.py")):
        mod = importlib.import_module(f"agentfleet.render.{path.stem}")
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.List)
                and len(node.elts) == 3
                and all(isinstance(e, ast.Constant | ast.Name) for e in node.elts)
            ):
                first, second, third = node.elts
                if (
                    isinstance(first, ast.Constant)
                    and first.value == "python"
                    and isinstance(second, ast.Constant)
                    and second.value == "-m"
                ):
                    name = third.value if isinstance(third, ast.Constant) else getattr(mod, third.id)
                    found[name] = mod.__name__
    return found


MODULES = modules_started()


def test_the_known_entrypoints_are_all_found() -> None:
    # operator (chart), ingestion (VectorIndex Job), worker and task API (AgentFleet Deployments).
    assert {"agentfleet.manager", "agentfleet_runtime.ingest", "agentfleet_runtime"} <= set(MODULES), MODULES
    doc = DOCKERFILE.read_text()
    for name in MODULES:
        assert f"python -m {name}" in doc, f"Dockerfile's header does not document {name}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_entrypoint_module_is_importable_with_a_main(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.find_spec(name)
    assert spec is not None, f"{name} ({MODULES[name]}) is not importable"
    target = f"{name}.__main__" if spec.submodule_search_locations is not None else name
    assert importlib.util.find_spec(target) is not None, f"python -m {name} needs {target}"
    source = Path(importlib.util.find_spec(target).origin).read_text()
    assert 'if __name__ == "__main__":' in source
    main = getattr(importlib.import_module(target), "main", None)
    assert callable(main), f"{target} has no main()"
    # `python -m X --help` answers and exits 0: the argument parser is reachable from main.
    monkeypatch.setattr(sys, "argv", [name, "--help"])
    with pytest.raises(SystemExit) as exc:
        main(["--help"]) if inspect.signature(main).parameters else main()
    assert exc.value.code == 0


@pytest.mark.parametrize("sub", ["worker", "api"])
def test_runtime_subcommands_the_agentfleet_renderer_uses_exist(sub: str) -> None:
    src = Path(render_af.__file__).read_text()
    assert re.search(rf'"{sub}"', src), f"render/agentfleet.py no longer starts `{sub}`"
    main = importlib.import_module("agentfleet_runtime.__main__").main
    with pytest.raises(SystemExit) as exc:
        main([sub, "--help"])
    assert exc.value.code == 0
