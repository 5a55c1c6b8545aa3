"""The task API serving HTTPS itself (AgentFleet.spec.api.tls, issue 78): `python -m agentfleet_runtime
api` as a real process with a certificate issued by a test CA, on a real Redis; a client that trusts the
CA gets answers and an agent card naming https URLs; one that does not, or that speaks plain HTTP, gets
nothing."""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import json
import signal
import ssl
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml
from agentfleet_contract.runtime_config import ApiTLSSettings

from e2e.harness.poll import poll
from e2e.harness.ports import free_port
from e2e.harness.procs import Proc

pytestmark = pytest.mark.integration
x509 = pytest.importorskip("cryptography.x509", reason="the test CA is made with the cryptography package")

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_ca_and_server_cert(tmp: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key): a CA as cert-manager's CA issuer would hold,
    and a leaf for 127.0.0.1 and localhost signed by it (what a kubernetes.io/tls Secret carries)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("agentfleet test CA"))
        .issuer_name(_name("agentfleet test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("docs-api"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(san, critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = tmp / "ca.crt", tmp / "tls.crt", tmp / "tls.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(_pem_key(key))
    return paths


def get(url: str, ctx: ssl.SSLContext, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=3, context=ctx) as r:  # noqa: S310 - 127.0.0.1 only
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture
def tls_api(redis_server, fleet, tmp_path, procs):
    """The task API process with api.tls (the files the operator mounts), spec.a2a on and no card URL
    (a process outside a pod: the card names the origin each request came to)."""
    ca, cert, key = make_ca_and_server_cert(tmp_path)
    (tmp_path / "tokens").write_text("tok\n")
    port = free_port()
    doc = {
        "fleet": fleet,
        "redisUrl": redis_server.url,
        "api": {
            "port": port,
            "tokensFile": str(tmp_path / "tokens"),
            "tls": {"certFile": str(cert), "keyFile": str(key), "reloadSeconds": 0.2},
        },
        "a2a": {"skills": []},
    }
    path = tmp_path / "runtime.yaml"
    path.write_text(yaml.safe_dump(doc))
    api = Proc([sys.executable, "-m", "agentfleet_runtime", "api", "--config", str(path)], log=tmp_path / "api.log")
    procs.append(api)
    trusted = ssl.create_default_context(cafile=str(ca))

    def ready() -> bool | None:
        if not api.running():
            raise AssertionError(f"the task API exited:\n{api.logs()[-4000:]}")
        try:
            return get(f"https://127.0.0.1:{port}/readyz", trusted)[0] == 200 or None
        except OSError:
            return None

    poll(
        ready,
        30,
        "the task API to answer /readyz over HTTPS",
        0.1,
        lambda m: pytest.fail(m + "\n" + api.logs()[-4000:]),
    )
    yield api, port, trusted, tmp_path
    api.proc.send_signal(signal.SIGTERM)
    assert api.proc.wait(15) == 0


def test_the_task_api_serves_https_with_the_mounted_certificate_and_its_card_names_https(tls_api) -> None:
    _, port, trusted, _ = tls_api
    base = f"https://127.0.0.1:{port}"
    assert get(base + "/healthz", trusted)[0] == 200
    # Authentication is unchanged by TLS: no token, 401; the token, 200.
    assert get(base + "/v1/deadletters", trusted)[0] == 401
    assert get(base + "/v1/deadletters", trusted, token="tok")[0] == 200
    status, body = get(base + "/.well-known/agent-card.json", trusted)
    assert status == 200
    card = json.loads(body)
    urls = [i["url"] for i in card["supportedInterfaces"]]
    assert urls and all(u.startswith(f"https://127.0.0.1:{port}/") for u in urls), urls


def test_a_client_that_does_not_trust_the_ca_or_speaks_plain_http_gets_nothing(tls_api) -> None:
    _, port, _, _ = tls_api
    # The default trust store has never heard of the test CA: the handshake fails verification.
    with pytest.raises(urllib.error.URLError) as refused:
        get(f"https://127.0.0.1:{port}/healthz", ssl.create_default_context())
    assert isinstance(refused.value.reason, ssl.SSLCertVerificationError), refused.value
    # Plain HTTP on the TLS port gets no HTTP answer at all (never the API's data in the clear).
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        conn.request("GET", "/healthz")
        conn.getresponse()
    conn.close()


def test_a_renewed_certificate_is_served_without_a_restart_and_a_broken_pair_is_not(tls_api) -> None:
    api, port, _, tmp = tls_api
    served = lambda: ssl.get_server_certificate(("127.0.0.1", port), timeout=3)  # noqa: E731
    old = served()
    assert ssl.PEM_cert_to_DER_cert(old) == ssl.PEM_cert_to_DER_cert((tmp / "tls.crt").read_text())
    (tmp / "renewed").mkdir()
    ca, cert, key = make_ca_and_server_cert(tmp / "renewed")
    # A certificate without its key (the key not yet written): the old pair stays served.
    (tmp / "tls.crt").write_bytes(cert.read_bytes())
    poll(lambda: "TLS certificate not reloaded" in api.logs(), 10, "the half pair to be refused", 0.1)
    assert ssl.PEM_cert_to_DER_cert(served()) == ssl.PEM_cert_to_DER_cert(old)
    # The kubelet swaps both keys of the Secret: the renewed pair is served, and it chains to its CA.
    (tmp / "tls.key").write_bytes(key.read_bytes())
    want = ssl.PEM_cert_to_DER_cert(cert.read_text())
    poll(lambda: ssl.PEM_cert_to_DER_cert(served()) == want, 10, "the renewed certificate to be served", 0.1)
    assert get(f"https://127.0.0.1:{port}/healthz", ssl.create_default_context(cafile=str(ca)))[0] == 200
    assert api.running()


def test_the_server_context_refuses_tls_below_1_2_and_a_key_that_is_not_the_certificates(tmp_path) -> None:
    from agentfleet_runtime.server.tls import server_context

    _, cert, key = make_ca_and_server_cert(tmp_path)
    ctx = server_context(ApiTLSSettings(cert_file=str(cert), key_file=str(key)))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    # A key that is not the certificate's is refused when the API starts, not at the first handshake.
    (tmp_path / "other").mkdir()
    _, other_cert, _ = make_ca_and_server_cert(tmp_path / "other")
    with pytest.raises(ssl.SSLError):
        server_context(ApiTLSSettings(cert_file=str(other_cert), key_file=str(key)))
