"""The device identity during provisioning: key once, CSR or development certificate, the issued chain.

The key is never replaced (a new key would orphan the evidence chain); a key directory that names another
device id is refused.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.core.errors import ConfigError, SigningError
from agent.core.fsutil import atomic_write
from agent.hostsetup.changes import Change
from agent.signing import keys


def _subject(device_id: str, organization: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "evidence-camera")])


def _cn(name: x509.Name) -> str | None:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else None


def _load_private_key(key_dir: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key((key_dir / keys.KEY_FILE).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SigningError(f"{key_dir / keys.KEY_FILE} is not an ECDSA key")
    return key


def _check_owner(key_dir: Path, device_id: str) -> None:
    """Refuse to re-provision a key directory that belongs to another device id."""
    for name, loader in ((keys.CERT_FILE, x509.load_pem_x509_certificate),
                         (keys.CSR_FILE, x509.load_pem_x509_csr)):
        path = key_dir / name
        if path.exists():
            cn = _cn(loader(path.read_bytes()).subject)  # type: ignore[operator]
            if cn is not None and cn != device_id:
                raise ConfigError(f"{path} is for device {cn!r}, not {device_id!r}: this key directory belongs to "
                                  "another device id (pass --device-id "
                                  f"{cn}, or use another --state-dir)")


def ensure_key(key_dir: Path, device_id: str, organization: str, *, dev_ca: bool) -> list[Change]:
    """Create the key once; write a CSR (or, with ``dev_ca``, a development certificate) when missing."""
    key_path, cert_path, csr_path = key_dir / keys.KEY_FILE, key_dir / keys.CERT_FILE, key_dir / keys.CSR_FILE
    if not key_path.exists():
        keys.init_identity(key_dir, device_id, organization, csr=not dev_ca)
        made = "certificate from a development CA" if dev_ca else f"certificate request {csr_path}"
        return [Change("created", str(key_path), f"ECDSA P-256 key, mode 0600, and {made}")]
    _check_owner(key_dir, device_id)
    out = [Change("unchanged", str(key_path), "existing device key kept (never replaced)")]
    if cert_path.exists():
        return out
    key = _load_private_key(key_dir)
    if dev_ca:
        ca_key, ca_cert = keys.make_ca(f"Evidence Agent Development CA ({device_id})", organization)
        leaf = keys.issue_leaf(ca_key, ca_cert, _subject(device_id, organization), key.public_key())
        atomic_write(key_dir / keys.CA_KEY_FILE, ca_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()), mode=0o600)
        atomic_write(key_dir / keys.CA_FILE, ca_cert.public_bytes(serialization.Encoding.PEM))
        atomic_write(cert_path, leaf.public_bytes(serialization.Encoding.PEM))
        out.append(Change("created", str(cert_path), "issued by a development CA for the existing key"))
    elif not csr_path.exists():
        csr = x509.CertificateSigningRequestBuilder().subject_name(_subject(device_id, organization)) \
            .sign(key, hashes.SHA256())
        atomic_write(csr_path, csr.public_bytes(serialization.Encoding.PEM))
        out.append(Change("created", str(csr_path), "certificate request for the existing key"))
    return out


def split_pem_chain(pem: bytes, source: str) -> tuple[bytes, bytes]:
    """Leaf first, then the issuing CA(s): what an enrollment command prints."""
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise SigningError(f"{source}: no PEM certificates in the output: {exc}") from None
    if len(certs) < 2:
        raise SigningError(f"{source}: expected the device certificate followed by its CA chain, "
                           f"got {len(certs)} certificate(s)")
    enc = serialization.Encoding.PEM
    return certs[0].public_bytes(enc), b"".join(c.public_bytes(enc) for c in certs[1:])


def run_enroll(cmd: str, csr: Path, timeout: float = 120.0) -> tuple[bytes, bytes]:
    """Run the site's enrollment command with the CSR path; it prints the issued certificate and chain."""
    argv = [*shlex.split(cmd), str(csr)]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SigningError(f"enrollment command {argv[0]!r} failed: {exc}") from None
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip()[-500:]
        raise SigningError(f"enrollment command exited with {done.returncode}: {err}")
    return split_pem_chain(done.stdout, "enrollment command")


def ensure_certificate(key_dir: Path, cert_pem: bytes | None, chain_pem: bytes | None,
                       enroll_cmd: str | None) -> Change:
    cert_path, ca_path = key_dir / keys.CERT_FILE, key_dir / keys.CA_FILE
    if cert_pem is None and enroll_cmd is not None and not cert_path.exists():
        cert_pem, chain_pem = run_enroll(enroll_cmd, key_dir / keys.CSR_FILE)
    if cert_pem is not None and chain_pem is not None:
        if cert_path.exists() and ca_path.exists() and cert_path.read_bytes() == cert_pem \
                and ca_path.read_bytes() == chain_pem:
            return Change("unchanged", str(cert_path), "issued certificate already installed")
        keys.install_certificate(key_dir, cert_pem, chain_pem)  # refuses a certificate for another key
        return Change("installed", str(cert_path), "issued certificate and CA chain")
    if cert_path.exists():
        return Change("unchanged", str(cert_path), "certificate present")
    return Change("pending", str(cert_path), f"send {key_dir / keys.CSR_FILE} to the customs CA (it signs it with "
                                             "`evidence-officer ca sign-csr CSR --device ID --site SITE`, docs/ca.md), "
                                             "then re-run with --cert FILE --chain FILE (or --enroll-cmd)")
