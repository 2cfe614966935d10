"""Officer signing keys: ``evidence-officer keys init``.

An officer key is ECDSA P-256 (like the device's, so it can live in a smart card or HSM later). Its
certificate's subject CN is the officer id the device expects in every command, its OU is
``evidence-officer``. With ``--ca-cert/--ca-key`` the customs CA issues it; without, a development
officer CA is made beside the key (``ca.pem``/``ca.key``, like a device's development CA). Either way
``ca.pem`` is the certificate a verifier gives as ``evidence-agent verify --officer-ca`` to trust the
officer's signed reports. The device pins the officer certificate itself (its trust store is a directory
of these certificates), whoever issued it.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.core.errors import SigningError
from agent.core.fsutil import atomic_write
from agent.signing.keys import issue_leaf, key_id_of, load_p256_key, make_ca
from agent.signing.report import OFFICER_UNIT
from agent.wire.topics import check_segment

KEY_FILE = "officer.key"
CERT_FILE = "officer.pem"
CA_FILE = "ca.pem"  # the CA that issued officer.pem (what verifiers give as --officer-ca)
CA_KEY_FILE = "ca.key"  # only for a development officer CA made by `keys init` without --ca-cert
DEFAULT_DIR = Path(os.environ.get("EVIDENCE_OFFICER_HOME", "~/.evidence-officer")).expanduser()


@dataclass(frozen=True)
class OfficerKey:
    """The officer's private key and certificate (CN = officer id)."""

    officer_id: str
    private_key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()  # the CA certificates above ``cert`` (from ca.pem)

    @property
    def key_id(self) -> str:
        return key_id_of(self.private_key.public_key())


def init_officer(key_dir: Path, officer_id: str, *, organization: str = "Customs", days: int = 365,
                 ca_cert: Path | None = None, ca_key: Path | None = None, force: bool = False) -> OfficerKey:
    """Create ``officer.key`` (0600) and ``officer.pem`` in ``key_dir``; refuses to overwrite without force."""
    try:
        check_segment(officer_id, "officer id")
    except ValueError as exc:
        raise SigningError(str(exc)) from None
    key_path, cert_path = key_dir / KEY_FILE, key_dir / CERT_FILE
    if key_path.exists() and not force:
        raise SigningError(f"{key_path} already exists (use --force to replace this officer key)")
    key_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(key_dir, 0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, officer_id),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                         x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, OFFICER_UNIT)])
    if (ca_cert is None) != (ca_key is None):
        raise SigningError("--ca-cert and --ca-key go together")
    if ca_cert is not None and ca_key is not None:
        ca = x509.load_pem_x509_certificate(ca_cert.read_bytes())
        issuer_key = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
        if not isinstance(issuer_key, ec.EllipticCurvePrivateKey):
            raise SigningError(f"{ca_key} is not an EC private key")
    else:
        issuer_key, ca = make_ca(f"Evidence Officer Development CA ({officer_id})", organization, days=days + 30)
        atomic_write(key_dir / CA_KEY_FILE, issuer_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()), mode=0o600)
    cert = issue_leaf(issuer_key, ca, subject, key.public_key(), days=days, eku=(ExtendedKeyUsageOID.CLIENT_AUTH,))
    atomic_write(key_dir / CA_FILE, ca.public_bytes(serialization.Encoding.PEM))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    atomic_write(key_path, pem, mode=0o600)
    atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return OfficerKey(officer_id, key, cert, (ca,))


def load_officer(key_dir: Path) -> OfficerKey:
    """Load the officer key and certificate; SigningError names the missing or mismatched file."""
    key = load_p256_key(key_dir / KEY_FILE, "officer key", "evidence-officer keys init")
    try:
        cert = x509.load_pem_x509_certificate((key_dir / CERT_FILE).read_bytes())
    except FileNotFoundError as exc:
        raise SigningError(f"{exc.filename} is missing (run `evidence-officer keys init`)") from None
    except ValueError as exc:
        raise SigningError(f"officer certificate in {key_dir} is unreadable: {exc}") from None
    if key_id_of(cert.public_key()) != key_id_of(key.public_key()):  # type: ignore[arg-type]
        raise SigningError(f"{key_dir / CERT_FILE} is not the certificate of {key_dir / KEY_FILE}")
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cns:
        raise SigningError(f"{key_dir / CERT_FILE} has no CN (the officer id)")
    chain: tuple[x509.Certificate, ...] = ()
    if (key_dir / CA_FILE).is_file():
        try:
            chain = tuple(x509.load_pem_x509_certificates((key_dir / CA_FILE).read_bytes()))
        except ValueError as exc:
            raise SigningError(f"{key_dir / CA_FILE} is unreadable: {exc}") from None
    return OfficerKey(str(cns[0].value), key, cert, chain)


def _cmd_init(args: argparse.Namespace) -> int:
    officer = init_officer(Path(args.dir), args.officer_id, organization=args.organization, days=args.days,
                           ca_cert=args.ca_cert, ca_key=args.ca_key, force=args.force)
    cert_path = Path(args.dir) / CERT_FILE
    print(f"officer {officer.officer_id}: key id {officer.key_id}")
    print(f"certificate: {cert_path} (issued by {Path(args.dir) / CA_FILE}: give that to "
          "`evidence-agent verify --officer-ca` to trust this officer's reports)")
    print("install it on each device: `evidence-agent provision ... --officer "
          f"{cert_path}` (trusts it with every command), or copy it into the device's officer trust store "
          f"(uplink.commands.trust_dir) as {officer.officer_id}.pem and list it in permissions.json there, e.g. "
          f'{{"{officer.officer_id}": ["status", "snapshot", "mark"]}} — the device grants only what that file lists')
    return 0


def register(subparsers: Any) -> None:
    """``evidence-officer keys init --officer-id ID [--dir DIR]``."""
    keys = subparsers.add_parser("keys", help="officer signing keys")
    sub = keys.add_subparsers(dest="keys_command", required=True)
    init = sub.add_parser("init", help="create an ECDSA P-256 officer key and certificate")
    init.add_argument("--officer-id", required=True, help="officer id (certificate CN, also the broker identity)")
    init.add_argument("--dir", default=str(DEFAULT_DIR), help="key directory (default %(default)s)")
    init.add_argument("--organization", default="Customs", help="organisation in the certificate (O=)")
    init.add_argument("--days", type=int, default=365, help="certificate validity in days (default 365)")
    init.add_argument("--ca-cert", type=Path, help="customs CA certificate to issue the officer certificate")
    init.add_argument("--ca-key", type=Path, help="customs CA private key")
    init.add_argument("--force", action="store_true", help="replace an existing key")
    init.set_defaults(func=_cmd_init)
