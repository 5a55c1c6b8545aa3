"""Throwaway certificates for the e2e tier, made with the openssl CLI: a CA per use, valid 30 days."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_certs(directory: Path, dns_names: list[str], ips: list[str], *, name: str = "agentfleet-e2e") -> None:
    """ca.crt, tls.crt, tls.key in ``directory`` (the layout KEDA's --cert-dir and a kubernetes.io/tls
    Secret use): a throwaway CA, and a certificate it signs for DNS_NAMES and IPS (server and client use)."""
    directory.mkdir(parents=True, exist_ok=True)
    d = str(directory)
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", f"{d}/ca.key")
    (directory / "ca.cnf").write_text(
        f"[req]\ndistinguished_name = dn\nx509_extensions = v3_ca\nprompt = no\n[dn]\nCN = {name}-ca\n"
        "[v3_ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = "
        "critical,keyCertSign,cRLSign,digitalSignature\nsubjectKeyIdentifier = hash\n"
    )
    _openssl(
        "req",
        "-x509",
        "-new",
        "-config",
        f"{d}/ca.cnf",
        "-key",
        f"{d}/ca.key",
        "-days",
        "30",
        "-sha256",
        "-out",
        f"{d}/ca.crt",
    )
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", f"{d}/tls.key")
    san = ",".join([f"DNS:{n}" for n in dns_names] + [f"IP:{i}" for i in ips])
    (directory / "tls.ext").write_text(
        "basicConstraints = critical,CA:FALSE\nkeyUsage = "
        "critical,digitalSignature,keyEncipherment\nextendedKeyUsage = serverAuth,clientAuth\nsubjectAltName = "
        f"{san}\n"
    )
    _openssl("req", "-new", "-key", f"{d}/tls.key", "-subj", f"/CN={name}", "-out", f"{d}/tls.csr")
    _openssl(
        "x509",
        "-req",
        "-in",
        f"{d}/tls.csr",
        "-CA",
        f"{d}/ca.crt",
        "-CAkey",
        f"{d}/ca.key",
        "-set_serial",
        f"0x{random.getrandbits(64):x}",
        "-days",
        "30",
        "-sha256",
        "-extfile",
        f"{d}/tls.ext",
        "-out",
        f"{d}/tls.crt",
    )
