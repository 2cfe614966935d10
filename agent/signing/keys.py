"""Device identity: an ECDSA P-256 key, its certificate and the CA chain that issued it.

P-256 (not Ed25519) so the key can later move into a TPM 2.0 or ATECC608 secure element.
By default a development CA is created beside the key so the device certificate is a proper
leaf (C2PA refuses self-signed signers); production devices send a CSR to the customs CA instead.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.core.errors import SigningError, VerificationError
from agent.core.fsutil import atomic_write

KEY_FILE = "device.key"
CERT_FILE = "device.pem"
CA_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"
CSR_FILE = "device.csr"
DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")
# emailProtection: the EKU c2pa-python 0.38 accepts out of the box (documentSigning alone is refused,
# measured); documentSigning: what the issue and C2PA 2.x name; clientAuth: the same key authenticates
# the device to the customs broker over mutual TLS (Mosquitto refuses a client certificate without it).
DEVICE_EKUS: tuple[x509.ObjectIdentifier, ...] = (
    ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING, ExtendedKeyUsageOID.CLIENT_AUTH)


def key_id_of(public_key: ec.EllipticCurvePublicKey) -> str:
    """Hex SHA-256 of the SubjectPublicKeyInfo DER: stable, and computable with openssl alone."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def sign_with(private_key: ec.EllipticCurvePrivateKey, data: bytes) -> bytes:
    """ECDSA P-256 over SHA-256, DER-encoded (what `openssl dgst -sha256 -verify` takes)."""
    return private_key.sign(data, ec.ECDSA(hashes.SHA256()))


def verify_with(public_key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> None:
    """Raise SigningError unless ``signature`` is valid for ``data``."""
    from agent.signing.trust import verify_key_signature

    try:
        verify_key_signature(public_key, signature, data)
    except VerificationError as exc:
        raise SigningError("signature does not match") from exc


@dataclass(frozen=True)
class DeviceIdentity:
    """The signing key plus the certificates a verifier needs (leaf first, then CAs)."""

    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    cert: x509.Certificate
    chain: tuple[x509.Certificate, ...]

    @cached_property
    def key_id(self) -> str:
        return key_id_of(self.private_key.public_key())

    def sign(self, data: bytes) -> bytes:
        return sign_with(self.private_key, data)

    def chain_der(self) -> list[bytes]:
        return list(self._chain_der)

    @cached_property
    def _chain_der(self) -> tuple[bytes, ...]:
        return tuple(c.public_bytes(serialization.Encoding.DER) for c in self.chain)

    def chain_pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in self.chain)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    atomic_write(path, pem, mode=0o600)


def _name(common_name: str, organization: str, unit: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name),
             x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)]
    if unit:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    return x509.Name(attrs)


def make_ca(common_name: str, organization: str,
            days: int = 3650) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed CA (development CA for devices, or a test CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name, organization)
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def issue_leaf(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey, days: int = 825,
    eku: tuple[x509.ObjectIdentifier, ...] | None = None,
) -> x509.Certificate:
    """A device leaf; see DEVICE_EKUS for why it carries three extended key usages."""
    eku = DEVICE_EKUS if eku is None else eku
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(ca_cert.subject).public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def init_identity(key_dir: Path, device_id: str, organization: str, *, csr: bool = False,
                  force: bool = False) -> Path:
    """Create the device key and either a dev-CA-issued certificate or a CSR; returns the file written."""
    key_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(key_dir, 0o700)
    key_path = key_dir / KEY_FILE
    if key_path.exists() and not force:
        raise SigningError(f"{key_path} already exists (use --force to replace the device identity)")
    key = ec.generate_private_key(ec.SECP256R1())
    _write_key(key_path, key)
    subject = _name(device_id, organization, "evidence-camera")
    if csr:
        request = (x509.CertificateSigningRequestBuilder().subject_name(subject)
                   .sign(key, hashes.SHA256()))
        out = key_dir / CSR_FILE
        atomic_write(out, request.public_bytes(serialization.Encoding.PEM))
        return out
    ca_key, ca_cert = make_ca(f"Evidence Agent Development CA ({device_id})", organization)
    _write_key(key_dir / CA_KEY_FILE, ca_key)
    atomic_write(key_dir / CA_FILE, ca_cert.public_bytes(serialization.Encoding.PEM))
    leaf = issue_leaf(ca_key, ca_cert, subject, key.public_key())
    atomic_write(key_dir / CERT_FILE, leaf.public_bytes(serialization.Encoding.PEM))
    return key_dir / CERT_FILE


def install_certificate(key_dir: Path, cert_pem: bytes, chain_pem: bytes) -> None:
    """Install a certificate issued (by the customs CA) for the existing key, refusing a mismatch."""
    key = load_p256_key(key_dir / KEY_FILE)
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        x509.load_pem_x509_certificates(chain_pem)
    except ValueError as exc:
        raise SigningError(f"not a PEM certificate: {exc}") from exc
    if key_id_of(cert.public_key()) != key_id_of(key.public_key()):  # type: ignore[arg-type]
        raise SigningError("the certificate is not for this device's key")
    atomic_write(key_dir / CERT_FILE, cert_pem)
    atomic_write(key_dir / CA_FILE, chain_pem)


def load_p256_key(path: Path, what: str = "device key", init_hint: str = "evidence-agent keys init"
                  ) -> ec.EllipticCurvePrivateKey:
    """An unencrypted PEM ECDSA P-256 private key; SigningError names the file and how to create it."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise SigningError(f"{what} {path} is missing (run `{init_hint}`)") from exc
    except (ValueError, TypeError) as exc:
        raise SigningError(f"{what} {path} is not a readable unencrypted PEM key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise SigningError(f"{what} {path} is not an ECDSA P-256 key")
    return key


def load_identity(key_dir: Path) -> DeviceIdentity:
    """Load key, leaf and chain; refuse a certificate that is not for the key."""
    key = load_p256_key(key_dir / KEY_FILE)
    try:
        cert = x509.load_pem_x509_certificate((key_dir / CERT_FILE).read_bytes())
        cas = tuple(x509.load_pem_x509_certificates((key_dir / CA_FILE).read_bytes()))
    except FileNotFoundError as exc:
        raise SigningError(f"{exc.filename} is missing (run `evidence-agent keys init`, "
                           "or install the certificate issued for the CSR)") from exc
    except ValueError as exc:
        raise SigningError(f"certificate in {key_dir} is unreadable: {exc}") from exc
    if key_id_of(cert.public_key()) != key_id_of(key.public_key()):  # type: ignore[arg-type]
        raise SigningError(f"{key_dir / CERT_FILE} is not the certificate of {key_dir / KEY_FILE}")
    return DeviceIdentity(private_key=key, cert=cert, chain=(cert, *cas))
