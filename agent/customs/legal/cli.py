"""``evidence-officer sign-pdf``: the officer's PAdES signature on a report PDF, from the officer key folder.

The report build signs its PDF itself (``sign_report_pdf``); this command signs one already rendered (a
report built before signing was wired in, or a PDF made elsewhere). Exit 0 signed, 2 a usage error (one line).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cryptography import x509

from agent.core.errors import ConfigError
from agent.core.fsutil import atomic_write
from agent.customs.keys import load_officer
from agent.customs.legal.officer import sign_report_pdf
from agent.pades.check import Signer


def _cmd_sign_pdf(args: argparse.Namespace) -> int:
    src, out = Path(args.report), Path(args.out)
    if not src.is_file():
        raise ConfigError(f"{src}: no such PDF file")
    pdf = src.read_bytes()
    if not pdf.startswith(b"%PDF-"):
        raise ConfigError(f"{src}: not a PDF file")
    if out.exists() and not args.force:
        raise ConfigError(f"--out {out} exists (use --force to replace it)")
    officer = load_officer(Path(args.keys))
    chain: list[x509.Certificate] = []
    for path in args.chain or []:
        try:
            chain += x509.load_pem_x509_certificates(Path(path).read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--chain {path}: cannot read a PEM certificate: {exc}") from None
    signed = sign_report_pdf(pdf, officer.private_key, officer.cert, chain, tsa_url=args.tsa, title=args.title)
    atomic_write(out, signed)
    who = Signer.of(officer.cert)
    print(f"{out}: signed by {who.legal_name or who.common_name}"
          + (f" (badge {who.badge})" if who.badge else " (no legal name or badge in the certificate)")
          + (" with an RFC 3161 timestamp" if args.tsa else ""))
    return 0


def register(subparsers: Any) -> None:
    """Add ``sign-pdf``."""
    p = subparsers.add_parser("sign-pdf", help="sign a report PDF as the officer (PAdES; the enterprise then "
                              "runs `evidence-agent countersign`)")
    p.add_argument("report", help="the report PDF")
    p.add_argument("--keys", required=True, help="the officer key folder (officer.key, officer.pem)")
    p.add_argument("--chain", action="append", help="the customs CA certificate(s) to embed (PEM); may repeat")
    p.add_argument("--tsa", metavar="URL", help="RFC 3161 TSA to time-stamp the signature")
    p.add_argument("--title", help="a line on the signature page, e.g. the case number")
    p.add_argument("--out", required=True, help="the signed PDF to write")
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    p.set_defaults(func=_cmd_sign_pdf)
