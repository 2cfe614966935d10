"""The CA folder: ``ca.pem``, ``ca.key`` (0600, never copied out), ``issued/<SERIAL>.pem``, ``issued.jsonl``,
``crl.pem``.

The layout of ``evidence-officer broker-setup``'s ``<out>/ca/`` is the same, so a broker's fleet CA can be
run as the customs CA in place. Every operation opens the key where it lies and signs there; nothing
writes it anywhere else. For production the key belongs in a hardware token (PKCS#11, docs/ca.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.core.errors import ConfigError, SigningError
from agent.core.fsutil import atomic_write
from agent.customs.ca.log import IssuanceLog
from agent.signing.keys import load_p256_key, make_ca

CA_CERT, CA_KEY, CRL_FILE, ISSUED = "ca.pem", "ca.key", "crl.pem", "issued"


def serial_hex(serial: int) -> str:
    return f"{serial:X}"


@dataclass(frozen=True)
class CaFolder:
    path: Path

    @property
    def cert_path(self) -> Path:
        return self.path / CA_CERT

    @property
    def crl_path(self) -> Path:
        return self.path / CRL_FILE

    @property
    def log(self) -> IssuanceLog:
        return IssuanceLog(self.path)

    def init(self, name: str, organization: str, days: int) -> x509.Certificate:
        """A new CA (refused over an existing one: a new CA under a fleet is never made by accident)."""
        if (self.path / CA_KEY).exists():
            raise ConfigError(f"{self.path / CA_KEY} already exists: this folder already holds a CA")
        self.path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path, 0o700)
        key, cert = make_ca(name, organization, days=days)
        atomic_write(self.path / CA_KEY, key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()), mode=0o600)
        atomic_write(self.cert_path, cert.public_bytes(serialization.Encoding.PEM))
        self.log.append("init", key, subject=cert.subject.rfc4514_string(), serial=serial_hex(cert.serial_number),
                        not_after=cert.not_valid_after_utc.isoformat())
        return cert

    def load(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """The CA key and certificate, read in place; ConfigError says how to create them."""
        if not (self.path / CA_KEY).exists():
            raise ConfigError(f"{self.path} holds no CA key (run `evidence-officer ca init --dir {self.path}`)")
        try:
            key = load_p256_key(self.path / CA_KEY, "CA key", "evidence-officer ca init")
            cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        except (SigningError, OSError, ValueError) as exc:
            raise ConfigError(f"{self.path}: cannot load the CA: {exc}") from None
        if cert.public_key() != key.public_key():
            raise ConfigError(f"{self.cert_path} is not the certificate of {self.path / CA_KEY}")
        return key, cert

    def organization(self, cert: x509.Certificate) -> str:
        orgs = cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)
        return str(orgs[0].value) if orgs else "Customs"

    def keep(self, cert: x509.Certificate) -> Path:
        """A copy of every issued certificate, by serial (the log names it; auditors read it)."""
        out = self.path / ISSUED / f"{serial_hex(cert.serial_number)}.pem"
        atomic_write(out, cert.public_bytes(serialization.Encoding.PEM))
        return out
