"""The fleet-admin identity: a key and a certificate from the customs CA (``evidence-officer ca issue-admin``).

The certificate (CN = the admin account, OU = evidence-fleet-admin, clientAuth for the broker,
documentSigning for the bundles it signs) is what devices are provisioned to trust (``provision
--trust-admin``) and the TLS identity that the broker ACL lets write the trust topic. Its folder also keeps
the bundle version counter and every published bundle (``published/v<VERSION>.json``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.core.errors import ConfigError, SigningError
from agent.core.fsutil import atomic_write
from agent.customs.ca.profiles import _leaf
from agent.signing.keys import DOCUMENT_SIGNING, load_p256_key
from agent.wire.topics import check_segment

ADMIN_KEY: Final = "admin.key"
ADMIN_CERT: Final = "admin.pem"
ADMIN_UNIT: Final = "evidence-fleet-admin"
ADMIN_EKUS: Final = (ExtendedKeyUsageOID.CLIENT_AUTH, DOCUMENT_SIGNING)


@dataclass(frozen=True)
class AdminKey:
    folder: Path
    name: str
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def issue_admin(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, out: Path, name: str,
                organization: str, days: int) -> x509.Certificate:
    """A new admin key (0600, folder 0700) and its certificate in ``out``; refuses to overwrite a key."""
    check_segment(name, "admin account")
    if (out / ADMIN_KEY).exists():
        raise ConfigError(f"{out / ADMIN_KEY} already exists (choose another --out)")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                         x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ADMIN_UNIT)])
    cert = _leaf(ca_key, ca_cert, subject, key.public_key(), days, ADMIN_EKUS)
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    atomic_write(out / ADMIN_KEY, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()), mode=0o600)
    atomic_write(out / ADMIN_CERT, cert.public_bytes(serialization.Encoding.PEM))
    return cert


def load_admin(folder: Path) -> AdminKey:
    """The admin key folder; ConfigError says what is missing or wrong."""
    try:
        key = load_p256_key(folder / ADMIN_KEY, "fleet-admin key", "evidence-officer ca issue-admin")
        cert = x509.load_pem_x509_certificate((folder / ADMIN_CERT).read_bytes())
    except (SigningError, OSError, ValueError) as exc:
        raise ConfigError(f"{folder}: not a fleet-admin key folder ({exc}); create one with "
                          "`evidence-officer ca issue-admin NAME --out DIR`") from None
    if cert.public_key() != key.public_key():
        raise ConfigError(f"{folder / ADMIN_CERT} is not the certificate of {folder / ADMIN_KEY}")
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return AdminKey(folder, str(cns[0].value) if cns else "fleet-admin", key, cert)
