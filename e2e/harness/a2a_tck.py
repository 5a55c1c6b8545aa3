"""The A2A project's compatibility kit (a2aproject/a2a-tck), pinned, run against an A2A server.

The kit is nobody's here: it is not on PyPI and its code is never committed to this repository. Its
source comes from a git directory holding the pinned commit (the library's ``fetch`` of
a2aproject/a2a-tck leaves one at MIRROR; AGENTFLEET_A2A_TCK_GIT names another), is unpacked once
into the cache beside a virtualenv with its requirements from PyPI, and is run from there.

What runs is what the kit's own runner (run_tck.py) runs for a category, with the same pytest
selection: ``mandatory`` (tests/mandatory/, markers mandatory, mandatory_protocol and, for the
JSON-RPC transport, mandatory_jsonrpc) and ``capabilities`` (tests/optional/capabilities/, where a
test of a capability the card does not declare skips itself). The runner is not called itself
because it writes its reports into the kit's directory, which two runs at once would share.

    python -m e2e.harness.a2a_tck URL [--header 'Authorization: Bearer ...']   # one run, its failures
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CACHE = Path(os.environ.get("AGENTFLEET_CACHE", Path.home() / ".cache" / "agentfleet"))
KIT_REPO = "a2aproject/a2a-tck"
# The kit's newest commit when this was pinned (2026-03-13, "Rename `blocking` to
# `return_immediately` per upstream a2a.proto"): the A2A 1.0 wire format a2a-sdk 1.3.0 speaks.
KIT_COMMIT = "410ba92e1b264df895e1fe6eccfe22db7aeaab06"
MIRROR = Path("/work/.mirror/a2aproject+a2a-tck/repo")
# What the kit imports beyond its requirements.txt (its pyproject.toml's dependencies).
EXTRA_REQUIREMENTS = ("pyOpenSSL", "proto-plus", "protobuf", "python-dotenv", "aiohttp", "grpcio-status")

CATEGORIES = {
    "mandatory": ("tests/mandatory/", "mandatory or mandatory_protocol or mandatory_jsonrpc"),
    "capabilities": ("tests/optional/capabilities/", None),
}


class KitMissing(RuntimeError):
    pass


def _git_dir() -> Path:
    named = os.environ.get("AGENTFLEET_A2A_TCK_GIT")
    for candidate in ([Path(named)] if named else []) + [MIRROR / ".git", MIRROR]:
        if (candidate / "objects").is_dir():
            return candidate
    raise KitMissing(
        f"the A2A kit {KIT_REPO}@{KIT_COMMIT[:12]} is neither in {CACHE / 'a2a-tck'} nor at {MIRROR}: "
        f"fetch {KIT_REPO} with the tool library's fetch, or set AGENTFLEET_A2A_TCK_GIT to a git directory holding it"
    )


def ensure_kit() -> Path:
    """The kit's directory at KIT_COMMIT with its virtualenv (``.venv``), made once under the cache."""
    home = CACHE / "a2a-tck" / KIT_COMMIT
    ready = home / ".ready"
    if ready.exists():
        return home
    home.parent.mkdir(parents=True, exist_ok=True)
    with open(home.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready.exists():
            return home
        git = _git_dir()
        shutil.rmtree(home, ignore_errors=True)
        with tempfile.TemporaryDirectory(dir=home.parent) as tmp:
            archive = subprocess.run(
                ["git", "--git-dir", str(git), "archive", "--format=tar", KIT_COMMIT],
                capture_output=True,
                check=False,
            )
            if archive.returncode != 0:
                raise KitMissing(f"{git} lacks {KIT_COMMIT}: {archive.stderr.decode(errors='replace')[-300:]}")
            subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
            subprocess.run([sys.executable, "-m", "venv", f"{tmp}/.venv"], check=True)
            pip = [f"{tmp}/.venv/bin/python", "-m", "pip", "install", "-q", "--disable-pip-version-check"]
            subprocess.run([*pip, "-r", f"{tmp}/requirements.txt", *EXTRA_REQUIREMENTS], check=True, timeout=900)
            os.rename(tmp, home)
        # The virtualenv's scripts name the temporary path; the kit is run as `python -m pytest`,
        # which does not read them.
        ready.write_text(KIT_COMMIT + "\n")
    return home


@dataclass(frozen=True)
class KitRun:
    """One category's outcome per test (pytest's nodeid -> passed, failed, skipped, error...)."""

    category: str
    outcomes: dict[str, str]
    why: dict[str, str] = field(default_factory=dict)  # a failed test's first crash line

    def failed(self) -> set[str]:
        return {t for t, o in self.outcomes.items() if o in ("failed", "error")}

    def passed(self) -> set[str]:
        return {t for t, o in self.outcomes.items() if o in ("passed", "xpassed")}


# Names the kit's process resolves to given addresses (A2A_TCK_HOSTS="name=ip,..."), as cluster DNS
# would for an in-cluster client: the kit calls the URLs a card names, and a fleet's card names its
# Service. Loaded by Python at start-up from PYTHONPATH (sitecustomize).
_HOSTS = """import os, socket
_hosts = dict(e.split("=", 1) for e in os.environ.get("A2A_TCK_HOSTS", "").split(",") if e)
_getaddrinfo = socket.getaddrinfo
def _resolve(host, *a, **k):  # anyio (httpx's async client) asks with the IDNA-encoded bytes
    name = host.decode() if isinstance(host, bytes) else host
    return _getaddrinfo(_hosts.get(name, host), *a, **k)
socket.getaddrinfo = _resolve
"""


def run_kit(
    sut_url: str,
    category: str,
    headers: dict[str, str],
    *,
    netns: str | None = None,
    hosts: dict[str, str] | None = None,
    ca_file: Path | None = None,
    timeout: float = 900,
) -> KitRun:
    """The kit's CATEGORY against the A2A server whose card is at SUT_URL/.well-known/agent-card.json,
    over JSON-RPC (the runner's default transport), with HEADERS on every request (A2A_AUTH_HEADERS).
    NETNS: run it inside that network namespace (the real node's, where Services are reached), with
    HOSTS resolved as given. CA_FILE: the PEM CAs it trusts for HTTPS, in place of the system's
    (httpx reads SSL_CERT_FILE, requests REQUESTS_CA_BUNDLE), never verification turned off."""
    kit = ensure_kit()
    path, markers = CATEGORIES[category]
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [
            str(kit / ".venv" / "bin" / "python"),
            "-m",
            "pytest",
            path,
            f"--sut-url={sut_url}",
            "--test-scope=all",
            "--tb=short",
            "--transports=jsonrpc",
            "-p",
            "no:cacheprovider",
            "--json-report",
            f"--json-report-file={report}",
            *(["-m", markers] if markers else []),
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("A2A_", "PYTEST_", "SUT_"))}
        env["A2A_AUTH_HEADERS"] = json.dumps(headers)
        if hosts:
            (Path(tmp) / "sitecustomize.py").write_text(_HOSTS)
            env["PYTHONPATH"] = tmp
            env["A2A_TCK_HOSTS"] = ",".join(f"{name}={ip}" for name, ip in hosts.items())
        if ca_file is not None:
            env["SSL_CERT_FILE"] = env["REQUESTS_CA_BUNDLE"] = str(ca_file)
        if netns:
            cmd = ["nsenter", f"--net={netns}", *cmd]
        done = subprocess.run(cmd, cwd=kit, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        if not report.exists():
            raise RuntimeError(
                f"the kit wrote no report (exit {done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-2000:]}"
            )
        tests = json.loads(report.read_text()).get("tests", [])
    outcomes = {t["nodeid"]: t["outcome"] for t in tests}
    why = {t["nodeid"]: _why(t) for t in tests if t["outcome"] in ("failed", "error")}
    return KitRun(category, outcomes, why)


def _why(test: dict) -> str:
    """A failed test's assertion line (pytest-json-report keeps each phase's crash)."""
    for phase in ("setup", "call", "teardown"):
        crash = (test.get(phase) or {}).get("crash") or {}
        if crash.get("message"):
            return crash["message"].splitlines()[0][:300]
    return ""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("--header", action="append", default=[], help="NAME: VALUE, sent with every request")
    p.add_argument("--category", action="append", choices=list(CATEGORIES))
    args = p.parse_args()
    headers = dict(h.split(":", 1) for h in args.header)
    for category in args.category or list(CATEGORIES):
        run = run_kit(args.url, category, {k.strip(): v.strip() for k, v in headers.items()})
        print(f"{category}: {len(run.passed())} passed, {len(run.failed())} failed, {len(run.outcomes)} in all")
        for t in sorted(run.failed()):
            print(f"  FAILED {t}")


if __name__ == "__main__":
    main()
