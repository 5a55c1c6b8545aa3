"""A tool's private CA (spec.tools[].<kind>.caSecretRef, issue 78): the one SSL context builder
(tools/trust.py), how the registry finds the mounted file, and what a tool does with an unusable one
(no network: the HTTPS calls themselves are in tests/integration/runtime/test_runtime_tool_ca.py)."""

from __future__ import annotations

import asyncio
import datetime
import ssl
import time
from pathlib import Path

import pytest
from agentfleet_contract.runtime_config import RuntimeConfig, tool_ca_file

from agentfleet_runtime.core.config import load_config
from agentfleet_runtime.core.types import Limits, Status, TaskRecord
from agentfleet_runtime.tools.a2a import A2ATool
from agentfleet_runtime.tools.base import ToolContext, ToolError
from agentfleet_runtime.tools.http import HTTPTool
from agentfleet_runtime.tools.registry import secret_dirs, trust_of
from agentfleet_runtime.tools.trust import SYSTEM, Trust, TrustError, certificate_hint, load_ca, tool_trust

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

FIELD = "spec.tools[].http.caSecretRef (tickets)"


def ca_pem(cn: str = "team-b test CA") -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def ctx() -> ToolContext:
    far = time.time() + 3600
    task = TaskRecord(id="t1", goal="g", status=Status.RUNNING, limits=Limits(), created_at=0, deadline=far, root="t1")
    return ToolContext(task, 0, 0, far)


def test_the_context_trusts_the_ca_besides_the_systems_and_keeps_every_check_on(tmp_path: Path) -> None:
    path = tmp_path / "tickets.pem"
    path.write_bytes(ca_pem("team-b test CA"))
    c = load_ca(str(path), FIELD)
    subjects = [dict(x[0] for x in ca["subject"]).get("commonName") for ca in c.get_ca_certs()]
    assert "team-b test CA" in subjects, subjects
    assert c.verify_mode == ssl.CERT_REQUIRED and c.check_hostname is True
    assert c.minimum_version >= ssl.TLSVersion.TLSv1_2


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"not a certificate\n", "holds no PEM certificate"),
        (
            b"-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49\n-----END PRIVATE KEY-----\n",
            "holds no PEM",
        ),
        (
            b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
            "is not a valid PEM certificate",
        ),
        (b"\xff\xfe binary", "cannot be read"),
    ],
    ids=["text", "a-key", "garbage-pem", "binary"],
)
def test_an_unusable_ca_file_is_an_error_naming_the_field_and_the_fix(tmp_path: Path, content: bytes, why: str) -> None:
    path = tmp_path / "tickets.pem"
    path.write_bytes(content)
    with pytest.raises(TrustError) as e:
        load_ca(str(path), FIELD)
    assert str(e.value).startswith(FIELD) and why in str(e.value), e.value
    assert "PEM CA certificates" in str(e.value) and "fix the Secret or the key" in str(e.value)


def test_a_missing_file_is_the_same_error_and_tool_trust_keeps_it_for_the_calls(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.pem")
    with pytest.raises(TrustError, match="is not mounted"):
        load_ca(missing, FIELD)
    trust = tool_trust(missing, FIELD)
    assert trust.context is None and FIELD in trust.problem and "not mounted" in trust.problem
    assert tool_trust(None, FIELD) is SYSTEM
    assert SYSTEM.verify is True, "no CA file: the system's trust store, verified (never ssl=False)"


def test_http_and_a2a_tools_with_an_unusable_ca_answer_why_without_connecting() -> None:
    trust = Trust.refusing(f"{FIELD}: /etc/agentfleet/tool-ca/tickets.pem holds no PEM certificate; fix it")

    async def body() -> None:
        # Port 9: nothing listens; the tools must refuse before any connection.
        http = HTTPTool("tickets", "https://127.0.0.1:9/x", trust=trust)
        a2a = A2ATool("ask_docs", "https://127.0.0.1:9/card.json", trust=trust)
        for tool in (http, a2a):
            with pytest.raises(ToolError) as e:
                await tool.run({"message": "hi"}, ctx())
            assert FIELD in str(e.value) and "not called" in str(e.value), e.value
            assert not e.value.unhealthy, "the author's setting, not an outage: the breaker must not hide the why"
            await tool.close()

    asyncio.run(body())


def test_the_registry_reads_each_tools_file_from_the_ca_dir(tmp_path: Path) -> None:
    (tmp_path / "tickets.pem").write_bytes(ca_pem())
    (tmp_path / "ask_docs.pem").write_text("oops")
    cfg = RuntimeConfig.model_validate(
        {
            "toolCaDir": str(tmp_path),
            "toolHeadersDir": "/etc/agentfleet/tool-headers",
            "tools": [
                {
                    "name": "tickets",
                    "type": "HTTP",
                    "http": {"url": "https://t/x", "caSecretRef": {"name": "a", "key": "b"}},
                },
                {
                    "name": "ask_docs",
                    "type": "A2A",
                    "a2a": {"cardUrl": "https://b/c", "caSecretRef": {"name": "a", "key": "b"}},
                },
                {"name": "plain", "type": "HTTP", "http": {"url": "https://public/x"}},
            ],
        }
    )
    assert tool_ca_file(str(tmp_path), "tickets") == str(tmp_path / "tickets.pem")
    tickets, ask, plain = (trust_of(cfg, t) for t in cfg.tools)
    assert isinstance(tickets.context, ssl.SSLContext) and not tickets.problem
    assert ask.context is None and ask.problem.startswith("spec.tools[].a2a.caSecretRef (ask_docs)"), ask.problem
    assert plain is SYSTEM
    # A stdio MCP server may not read the mounted CA files either (the worker's Secret directories).
    assert str(tmp_path) in secret_dirs(cfg)


def test_the_ca_dir_comes_from_the_config_or_its_env_override(tmp_path: Path) -> None:
    assert load_config(None, env={"AGENTFLEET_TOOL_CA_DIR": "/etc/agentfleet/tool-ca"}).tool_ca_dir == (
        "/etc/agentfleet/tool-ca"
    )
    path = tmp_path / "runtime.yaml"
    path.write_text("toolCaDir: /x/ca\n")
    assert load_config(path, env={}).tool_ca_dir == "/x/ca"


def test_a_verification_failure_names_the_field_to_set() -> None:
    err = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    hint = certificate_hint(err, "spec.tools[].a2a.caSecretRef")
    assert "spec.tools[].a2a.caSecretRef" in hint and "agentfleet.io/consent=true" in hint
    assert certificate_hint(ConnectionRefusedError(111, "Connection refused"), "x") == ""


def _subjects(trust: Trust) -> set[str]:
    assert trust.context is not None
    return {dict(x[0] for x in ca["subject"]).get("commonName", "") for ca in trust.context.get_ca_certs()}


def test_a_renewed_ca_file_is_added_to_the_live_context_at_the_next_check(tmp_path: Path) -> None:
    # cert-manager rotates a CA Issuer's CA (a 90-day CA Certificate, renewed at two thirds); the
    # kubelet swaps the mounted file, not the pod. The tool's connection pool holds this very context.
    path = tmp_path / "tickets.pem"
    path.write_bytes(ca_pem("CA one"))
    trust = Trust(str(path), FIELD, recheck_seconds=60)
    live = trust.context
    path.write_bytes(ca_pem("CA two"))
    t0 = time.monotonic()
    trust.refresh(t0 + 30)  # within the minute: not read again
    assert "CA two" not in _subjects(trust)
    trust.refresh(t0 + 61)
    assert trust.context is live and {"CA one", "CA two"} <= _subjects(trust)  # the old stays trusted
    # A file that turns bad (half written, a wrong key) keeps the working context, and says nothing to calls.
    path.write_text("not a certificate")
    trust.refresh(t0 + 200)
    assert trust.problem == "" and trust.context is live


def test_a_ca_file_fixed_after_start_makes_the_tool_work_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "tickets.pem"
    path.write_text("not a certificate")
    trust = tool_trust(str(path), FIELD, recheck_seconds=0)
    assert trust.context is None and trust.problem.startswith(FIELD)
    path.write_bytes(ca_pem("CA fixed"))
    trust.refresh()
    assert trust.problem == "" and _subjects(trust) >= {"CA fixed"}
    assert SYSTEM.refresh() is None and SYSTEM.context is None  # no caSecretRef: nothing to follow
