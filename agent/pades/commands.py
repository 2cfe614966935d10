"""``evidence-agent countersign`` and ``evidence-agent verify-pdf``: the enterprise's side of the signed report.

verify-pdf exit codes, as ``verify``'s: 0 every signature intact and trusted, 1 problems (changed after a
signature, forged, a required signature missing), 2 bad usage, 3 intact but a signer or timestamp not trusted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from agent.core.errors import ConfigError, SigningError, VerificationError
from agent.core.fsutil import atomic_write
from agent.pades.check import PdfCheck, Signer, check_pdf
from agent.pades.sign import ENTERPRISE_FIELD, OFFICER_FIELD, SignatureRequest, dispute_reason, sign_pdf

if TYPE_CHECKING:
    from agent.signing.revocation import Revocations, Revoked

EXIT_OK, EXIT_PROBLEMS, EXIT_UNTRUSTED = 0, 1, 3


def _certs(path: str, what: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{what} {path}: cannot read a PEM certificate: {exc}") from None
    return certs


def _key(path: str) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"--key {path}: cannot read an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ConfigError(f"--key {path}: an ECDSA or RSA key is needed")
    return key


def _pdf(path: str) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{path}: no such PDF file")
    data = p.read_bytes()
    if not data.startswith(b"%PDF-"):
        raise ConfigError(f"{path}: not a PDF file")
    return data


def cmd_countersign(args: argparse.Namespace) -> int:
    pdf = _pdf(args.report)
    key, cert = _key(args.key), _certs(args.cert, "--cert")[0]
    chain = [cert] + [c for path in args.chain or [] for c in _certs(path, "--chain")]
    out = Path(args.out)
    if out.exists() and not args.force:
        raise ConfigError(f"--out {out} exists (use --force to replace it)")
    note = args.dispute
    if args.dispute_file:
        try:
            note = Path(args.dispute_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--dispute-file {args.dispute_file}: cannot read UTF-8 text: {exc}") from None
    who = Signer.of(cert)
    org = who.organization or who.common_name
    try:
        reason = dispute_reason(note) if note is not None else f"Countersigned and sealed by {org}"
    except SigningError as exc:
        raise ConfigError(f"--dispute: {exc}") from None
    try:
        signed = sign_pdf(pdf, key, cert, chain, SignatureRequest(
            ENTERPRISE_FIELD, who.common_name, reason, location=args.location,
            stamp=("DISPUTED - see the signature's reason" if note is not None
                   else "Enterprise - countersigned and sealed") + "\n%(ts)s"),
                          tsa_url=args.tsa)
    except SigningError as exc:
        raise SigningError(f"{args.report}: {exc}") from None
    atomic_write(out, signed)
    print(f"{out}: {'disputed' if note is not None else 'countersigned'} by {who.subject}"
          + (" with an RFC 3161 timestamp" if args.tsa else ""))
    return EXIT_OK


def cmd_verify_pdf(args: argparse.Namespace) -> int:
    pdf = _pdf(args.report)
    officer = [c for p in args.officer_ca for c in _certs(p, "--officer-ca")]
    enterprise = [c for p in args.enterprise_ca or [] for c in _certs(p, "--enterprise-ca")]
    tsa = [c for p in args.tsa_ca or [] for c in _certs(p, "--tsa-ca")]
    require = [OFFICER_FIELD] + ([ENTERPRISE_FIELD] if enterprise else [])
    revocations = _revocations(args.crl or [], [*officer, *enterprise])
    try:
        report = check_pdf(pdf, officer_roots=officer, enterprise_roots=enterprise, tsa_roots=tsa,
                           require=require, path=args.report, revocations=revocations)
    except VerificationError as exc:
        print(json.dumps({"ok": False, "path": args.report, "problems": [str(exc)]}) if args.json
              else f"{args.report}: FAILED — {exc}")
        return EXIT_PROBLEMS
    code = pdf_exit_code(report)
    if args.json:
        print(json.dumps({**report.to_json(), "exit_code": code}, indent=2))
    else:
        print_pdf_check(report, code)
    return code


def _revocations(paths: list[str], cas: list[x509.Certificate]) -> Revocations | None:
    """``--crl`` files, each signed by an --officer-ca or --enterprise-ca (else a usage error), merged."""
    from agent.signing.revocation import Revocations, load_crls

    if not paths:
        return None
    entries: dict[tuple[bytes, int], Revoked] = {}
    issuers: list[str] = []
    next_updates: list[dt.datetime] = []
    for path in paths:
        try:
            revs = load_crls(Path(path), cas)
        except VerificationError as exc:
            raise ConfigError(f"--crl {exc}") from None
        entries.update(revs.entries)
        issuers += revs.issuers
        next_updates += [revs.next_update] if revs.next_update else []
    return Revocations(entries, tuple(issuers), min(next_updates) if next_updates else None)


def pdf_exit_code(report: PdfCheck) -> int:
    """0 intact and trusted, 1 problems, 3 intact but some signer or timestamp not trusted."""
    if not report.ok:
        return EXIT_PROBLEMS
    return EXIT_OK if report.trusted else EXIT_UNTRUSTED


def print_pdf_check(report: PdfCheck, code: int) -> None:
    verdict = {EXIT_OK: "OK", EXIT_PROBLEMS: "PROBLEMS", EXIT_UNTRUSTED: "INTACT BUT NOT TRUSTED"}[code]
    print(f"{report.path}: {verdict} — {len(report.signatures)} signature(s)")
    for s in report.signatures:
        who = s.signer
        name = "?" if who is None else (f"{who.legal_name} (badge {who.badge}, {who.common_name})"
                                        if who.legal_name else who.subject)
        when = f"time-stamped {s.timestamp}" if s.timestamp else f"signer's clock {s.signed_at} (no timestamp)"
        print(f"  {s.role} [{s.field}]: {name}; {when}; changes after: {s.changes_after}")
        if s.reason:
            print(f"    reason: {s.reason}")
        for p in s.problems:
            print(f"    PROBLEM: {p}")
        for u in s.untrusted:
            print(f"    NOT TRUSTED: {u}")
    for p in report.problems:
        print(f"  PROBLEM: {p}")
    if report.dispute_note is not None:
        print("  the enterprise DISPUTES the report:")
        for line in report.dispute_note.splitlines():
            print(f"    | {line}")


def register(subparsers: Any) -> None:
    """Add ``countersign`` and ``verify-pdf``."""
    c = subparsers.add_parser("countersign", help="the enterprise countersigns and seals a signed inspection "
                              "report PDF (a second PAdES signature), or signs a dispute note instead")
    c.add_argument("report", help="the report PDF the officer signed")
    c.add_argument("--key", required=True, help="the enterprise's private key (PEM, unencrypted; ECDSA or RSA)")
    c.add_argument("--cert", required=True, help="the enterprise's certificate (PEM)")
    c.add_argument("--chain", action="append", help="intermediate/root certificates (PEM); may repeat")
    c.add_argument("--out", required=True, help="the countersigned PDF to write")
    c.add_argument("--force", action="store_true", help="replace an existing --out file")
    c.add_argument("--tsa", metavar="URL", help="RFC 3161 TSA to time-stamp the signature")
    c.add_argument("--location", help="where the enterprise signs (shown by PDF readers)")
    d = c.add_mutually_exclusive_group()
    d.add_argument("--dispute", metavar="TEXT", help="sign a dispute note instead of agreeing")
    d.add_argument("--dispute-file", metavar="FILE", help="the dispute note from a UTF-8 text file")
    c.set_defaults(func=cmd_countersign)

    v = subparsers.add_parser("verify-pdf", help="check the officer's and the enterprise's PAdES signatures on "
                              "a report PDF", epilog="exit codes: 0 intact and trusted, 1 problems found, "
                              "2 bad usage, 3 intact but a signer or timestamp not trusted")
    v.add_argument("report", help="the report PDF")
    v.add_argument("--officer-ca", action="append", required=True, help="the customs CA (PEM); may repeat")
    v.add_argument("--enterprise-ca", action="append",
                   help="the enterprise's CA (PEM); may repeat. Given: the countersignature is required")
    v.add_argument("--tsa-ca", action="append", help="trusted RFC 3161 TSA root (PEM); may repeat")
    v.add_argument("--crl", action="append", help="a CRL signed by an --officer-ca or --enterprise-ca; may repeat. "
                   "A revoked signer is trusted only with a trusted timestamp before the revocation")
    v.add_argument("--json", action="store_true", help="machine-readable report")
    v.set_defaults(func=cmd_verify_pdf)
