"""Parties of a signed report PDF for tests: the customs CA and its officer, an enterprise CA and its seal.

Keys and certificates are made at run time and written as PEM files into a test folder; the officer
certificate is the customs CA's (``agent.customs.ca.profiles.officer_certificate``: legal name, badge).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.customs.ca.profiles import officer_certificate
from agent.signing.keys import issue_leaf, make_ca

LEGAL_NAME, BADGE = "Alice Martin", "B-0417"


@dataclass(frozen=True)
class Party:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    ca: x509.Certificate
    key_file: Path
    cert_file: Path
    ca_file: Path
    ca_key: ec.EllipticCurvePrivateKey


def _write(folder: Path, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate, ca: x509.Certificate,
           ca_key: ec.EllipticCurvePrivateKey) -> Party:
    folder.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    files = folder / "key.pem", folder / "cert.pem", folder / "ca.pem"
    files[0].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    files[1].write_bytes(cert.public_bytes(pem))
    files[2].write_bytes(ca.public_bytes(pem))
    return Party(key, cert, ca, *files, ca_key)


def officer(folder: Path, legal_name: str = LEGAL_NAME, badge: str = BADGE) -> Party:
    """An officer certificate from a fresh customs CA."""
    ca_key, ca = make_ca("Test Customs CA", "Test Customs")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = officer_certificate(ca_key, ca, key.public_key(), "officer-alice", legal_name, badge, "Test Customs")
    return _write(folder, key, cert, ca, ca_key)


def device_of(customs: Party, folder: Path, device: str = "cam-7") -> Party:
    """A device certificate from the same customs CA as ``customs`` (no legal name, no badge)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "evidence-camera")])
    return _write(folder, key, issue_leaf(customs.ca_key, customs.ca, name, key.public_key()), customs.ca,
                  customs.ca_key)


def self_made_officer(folder: Path, legal_name: str = LEGAL_NAME, badge: str = BADGE) -> Party:
    """The same subject (legal name, badge) from a CA the attacker made: not the customs CA."""
    return officer(folder, legal_name, badge)


def enterprise(folder: Path, org: str = "Green Fields Ltd") -> Party:
    """An enterprise seal certificate from the enterprise's own CA."""
    ca_key, ca = make_ca(f"{org} CA", org)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{org} seal"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)])
    return _write(folder, key, issue_leaf(ca_key, ca, name, key.public_key()), ca, ca_key)


def report_pdf() -> bytes:
    """A small report PDF rendered by WeasyPrint."""
    import weasyprint

    html = ("<h1>Inspection report C-2026/0042</h1><p>Enterprise: Green Fields Ltd</p>"
            "<p>Outcome: continue. 40 bags of urea in the input store.</p>")
    pdf: bytes | None = weasyprint.HTML(string=html).write_pdf()
    assert pdf is not None
    return pdf


def evidence_agent(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The real ``evidence-agent`` command line in a child process."""
    return subprocess.run([sys.executable, "-m", "agent.device.cli", *args], capture_output=True, text=True,
                          timeout=timeout)
