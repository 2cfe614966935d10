"""``evidence-officer ca``: init, sign-csr, issue-officer, revoke, crl, log (the customs CA's operations).

Every subcommand takes ``--dir`` (default ``$EVIDENCE_CA_DIR`` or ``./customs-ca``): the CA folder
(folder.py). Every operation is one line in the folder's hash-chained issuance log (log.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.core.errors import ConfigError
from agent.core.fsutil import atomic_write
from agent.customs.ca.crl import REASONS, publish, revoke
from agent.customs.ca.folder import CaFolder, serial_hex
from agent.customs.ca.profiles import SITE_URI_PREFIX, device_certificate, officer_certificate, p256

DEFAULT_DIR = os.environ.get("EVIDENCE_CA_DIR", "customs-ca")


def _folder(args: argparse.Namespace) -> CaFolder:
    return CaFolder(Path(args.dir))


def _cmd_init(args: argparse.Namespace) -> int:
    folder = _folder(args)
    cert = folder.init(args.name or f"{args.org} Evidence CA", args.org, args.days)
    print(f"customs CA {cert.subject.rfc4514_string()} in {folder.path} (key ca.key, 0600: it never leaves "
          f"this folder); log {folder.log.path}")
    print(f"next: `evidence-officer ca crl --dir {folder.path}` publishes its (empty) CRL")
    return 0


def _issued(folder: CaFolder, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate, out: Path, role: str,
            identity: str, **extra: Any) -> None:
    kept = folder.keep(cert)
    if str(out) == "-":  # the certificate then the CA chain on stdout: what `provision --enroll-cmd` reads
        sys.stdout.buffer.write(cert.public_bytes(serialization.Encoding.PEM) + folder.cert_path.read_bytes())
        sys.stdout.flush()
    else:
        atomic_write(out, cert.public_bytes(serialization.Encoding.PEM))
    folder.log.append("issue", key, role=role, identity=identity, serial=serial_hex(cert.serial_number),
                      not_after=cert.not_valid_after_utc.isoformat(), file=str(kept.relative_to(folder.path)),
                      **extra)
    print(f"issued {role} certificate for {identity} (serial {serial_hex(cert.serial_number)}, until "
          f"{cert.not_valid_after_utc:%Y-%m-%d}): {out}", file=sys.stderr if str(out) == "-" else sys.stdout)


def _cmd_sign_csr(args: argparse.Namespace) -> int:
    folder = _folder(args)
    key, ca = folder.load()
    try:
        csr = x509.load_pem_x509_csr(Path(args.csr).read_bytes())
    except OSError as exc:
        raise ConfigError(f"{args.csr}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ConfigError(f"{args.csr}: not a PEM certificate signing request: {exc}") from None
    if not csr.is_signature_valid:
        raise ConfigError(f"{args.csr}: the CSR's signature does not hold (not made with its key)")
    cns = csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if [str(c.value) for c in cns] != [args.device]:
        raise ConfigError(f"{args.csr}: the CSR is for {[str(c.value) for c in cns]}, not device {args.device!r} "
                          "(signing the wrong device's request?)")
    try:
        cert = device_certificate(key, ca, csr, args.device, args.site, folder.organization(ca), args.days)
    except ValueError as exc:
        raise ConfigError(f"{args.csr}: {exc}") from None
    out = Path(args.out or f"{args.device}.pem")
    _issued(folder, key, cert, out, "device", args.device, site=args.site)
    print(f"site bound as {SITE_URI_PREFIX}{args.site}; on the device: evidence-agent keys install-cert "
          f"--key-dir KEY_DIR {out} {folder.cert_path}", file=sys.stderr if str(out) == "-" else sys.stdout)
    return 0


def _cmd_issue_officer(args: argparse.Namespace) -> int:
    folder = _folder(args)
    key, ca = folder.load()
    from agent.customs.keys import CA_FILE, CERT_FILE, KEY_FILE

    out = Path(args.out or args.name)
    if args.csr:
        try:
            csr = x509.load_pem_x509_csr(Path(args.csr).read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{args.csr}: not a readable PEM certificate signing request: {exc}") from None
        if not csr.is_signature_valid:
            raise ConfigError(f"{args.csr}: the CSR's signature does not hold")
        officer_key = None
        public = csr.public_key()
    else:
        if (out / KEY_FILE).exists():
            raise ConfigError(f"{out / KEY_FILE} already exists (choose another --out)")
        officer_key = ec.generate_private_key(ec.SECP256R1())
        public = officer_key.public_key()
    try:
        cert = officer_certificate(key, ca, p256(public, "officer key"), args.name, args.legal_name, args.badge,
                                   folder.organization(ca), args.days)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if officer_key is not None:
        out.mkdir(parents=True, exist_ok=True)
        os.chmod(out, 0o700)
        atomic_write(out / KEY_FILE, officer_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()), mode=0o600)
        target = out / CERT_FILE
        # the issuing CA beside the key: the report's signature carries it, verifiers pass it as --officer-ca
        atomic_write(out / CA_FILE, ca.public_bytes(serialization.Encoding.PEM))
    else:
        target = out if out.suffix == ".pem" else out.with_suffix(".pem")
    _issued(folder, key, cert, target, "officer", args.name, legal_name=args.legal_name, badge=args.badge)
    print(f"give the officer {out} (the `evidence-officer --keys` folder); devices trust {target} in their "
          "officer trust folder")
    return 0


def _cmd_issue_admin(args: argparse.Namespace) -> int:
    from agent.customs.trust.admin import ADMIN_CERT, issue_admin

    folder = _folder(args)
    key, ca = folder.load()
    out = Path(args.out or args.name)
    try:
        cert = issue_admin(key, ca, out, args.name, folder.organization(ca), args.days)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    _issued(folder, key, cert, out / ADMIN_CERT, "admin", args.name)
    print(f"devices trust bundles it signs once provisioned with --trust-admin {out / ADMIN_CERT}; the broker "
          f"lets it write the trust topic once broker-setup has --admin {args.name}")
    return 0


def _cmd_revoke(args: argparse.Namespace) -> int:
    folder = _folder(args)
    since = None
    if args.invalid_since:
        try:
            since = dt.datetime.fromisoformat(args.invalid_since.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"--invalid-since {args.invalid_since!r}: not an ISO 8601 time") from None
        if since.tzinfo is None:
            since = since.replace(tzinfo=dt.UTC)
    done = revoke(folder, args.target, args.reason, since)
    for e in done:
        print(f"revoked serial {e['serial']} ({e.get('identity') or 'unknown identity'}): {e['reason']}")
    if not done:
        print(f"{args.target}: already revoked")
    print(f"publish it: evidence-officer ca crl --dir {folder.path}")
    return 0


def _cmd_crl(args: argparse.Namespace) -> int:
    path, n = publish(_folder(args), Path(args.out) if args.out else None, args.days)
    print(f"wrote {path}: {n} revoked certificate(s), valid {args.days} day(s); give it to the broker (crlfile, "
          "then `systemctl reload mosquitto`), the ingest (--crl), verify (--crl) and the devices' officer trust "
          "folders (crl.pem)")
    return 0


def _cmd_log(args: argparse.Namespace) -> int:
    for entry in _folder(args).log.entries():
        print(json.dumps(entry, sort_keys=True))
    return 0


def register(subparsers: Any) -> None:
    """``evidence-officer ca init|sign-csr|issue-officer|revoke|crl|log [--dir CA_DIR]``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", default=DEFAULT_DIR, help="the CA folder (default $EVIDENCE_CA_DIR or "
                        "./customs-ca; a broker-setup output's ca/ folder works too)")
    ca = subparsers.add_parser("ca", help="the customs CA: sign device CSRs, issue officers, revoke, publish "
                               "the CRL (docs/ca.md)")
    sub = ca.add_subparsers(dest="ca_command", required=True)
    p = sub.add_parser("init", parents=[common], help="create the CA (key 0600 in its folder)")
    p.add_argument("--org", default="Customs", help="organisation (O=) of the CA and its certificates")
    p.add_argument("--name", help="CA common name (default '<org> Evidence CA')")
    p.add_argument("--days", type=int, default=3650, help="CA validity in days (default 3650)")
    p.set_defaults(func=_cmd_init)
    p = sub.add_parser("sign-csr", parents=[common], help="issue a device certificate for its CSR")
    p.add_argument("csr", help="the device's CSR (evidence-agent provision / keys init --csr)")
    p.add_argument("--device", required=True, help="device id: must be the CSR's CN")
    p.add_argument("--site", required=True, help=f"registered site, bound as {SITE_URI_PREFIX}SITE")
    p.add_argument("--days", type=int, default=825, help="validity in days (default 825)")
    p.add_argument("--out", help="certificate file to write (default ./<device>.pem); '-': the certificate and "
                   "the CA chain on stdout (for `evidence-agent provision --enroll-cmd`)")
    p.set_defaults(func=_cmd_sign_csr)
    p = sub.add_parser("issue-officer", parents=[common], help="issue an officer certificate (and key)")
    p.add_argument("name", help="officer id: the certificate CN, broker account and command signer")
    p.add_argument("--legal-name", required=True, help="the officer's legal name (in the certificate)")
    p.add_argument("--badge", required=True, help="badge number (certificate serialNumber attribute)")
    p.add_argument("--csr", help="sign the officer's own CSR instead of creating a key")
    p.add_argument("--out", help="key folder to create (default ./<name>), or the certificate file with --csr")
    p.add_argument("--days", type=int, default=365, help="validity in days (default 365)")
    p.set_defaults(func=_cmd_issue_officer)
    p = sub.add_parser("issue-admin", parents=[common], help="issue the fleet-admin key that signs officer trust "
                       "bundles (evidence-officer trust publish)")
    p.add_argument("name", help="admin account: certificate CN and broker user (e.g. fleet-admin)")
    p.add_argument("--out", help="key folder to create (default ./<name>)")
    p.add_argument("--days", type=int, default=825, help="validity in days (default 825)")
    p.set_defaults(func=_cmd_issue_admin)
    p = sub.add_parser("revoke", parents=[common], help="revoke a certificate (then publish: `ca crl`)")
    p.add_argument("target", help="SERIAL (hex), an identity (device id / officer name: all its "
                   "certificates) or a certificate file this CA issued")
    p.add_argument("--reason", required=True, help=f"one of {', '.join(REASONS)}")
    p.add_argument("--invalid-since", help="ISO 8601 time the key is known or suspected compromised (earlier "
                   "than now: verify distrusts items sealed since then)")
    p.set_defaults(func=_cmd_revoke)
    p = sub.add_parser("crl", parents=[common], help="sign and write the CRL (default <dir>/crl.pem)")
    p.add_argument("--out", help="where to write it (default <dir>/crl.pem)")
    p.add_argument("--days", type=int, default=30, help="nextUpdate in days (default 30); the broker refuses every "
                   "client once it has passed: publish daily (docs/ca.md)")
    p.set_defaults(func=_cmd_crl)
    p = sub.add_parser("log", parents=[common], help="print the issuance log (its hash chain checked)")
    p.set_defaults(func=_cmd_log)
