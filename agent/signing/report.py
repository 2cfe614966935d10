"""The signed inspection report that travels inside an evidence bundle, and its check.

A bundle may hold ``report/``: the rendered report (``report.pdf``, ``report.html``) and
``report/manifest.json``, an officer-signed envelope ``{"body": {...}, "alg", "key_id", "sig", "x5c"}``.
The body (``typ`` ``evidence-report/1``) names the case, the device, the officer, the SHA-256 of each
rendered file and every evidence item the report relies on (seq, kind, record hash, media hash). The
signature is ECDSA P-256 over the RFC 8785 bytes of the body, like a device record, so it can be checked
with ``openssl dgst`` too. The device seals the SHA-256 of ``manifest.json`` (a ``report`` record), so
the chain itself vouches that this report existed when that record was sealed.

``report_checker()`` plugs into :func:`agent.signing.verify.check`: the signature must hold, every file
must match its hash and every listed item must be present in the evidence with the same record hash.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.core.errors import SigningError
from agent.signing.keys import key_id_of, sign_with, verify_with
from agent.signing.records import canonical

REPORT_TYP: Final = "evidence-report/1"
REPORT_DIR: Final = "report"
MANIFEST: Final = "manifest.json"
MAX_REPORT_FILE: Final = 256 * 1024 * 1024


def sign_report(body: Mapping[str, Any], key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> bytes:
    """The manifest file's bytes: the body with the officer's signature and certificate."""
    if body.get("typ") != REPORT_TYP:
        raise ValueError(f"report body must have typ {REPORT_TYP}")
    data = canonical(body)
    envelope = {"body": body, "alg": "ES256", "key_id": key_id_of(key.public_key()),
                "sig": base64.b64encode(sign_with(key, data)).decode(),
                "x5c": [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]}
    return json.dumps(envelope, indent=1, sort_keys=True).encode() + b"\n"


def file_entry(data: bytes) -> dict[str, Any]:
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


@dataclass
class ReportCheck:
    """What the check found; ``problems`` are (where, what) pairs."""

    case: str | None = None
    officer: str | None = None
    officer_key_id: str | None = None
    signature_valid: bool = False
    officer_trusted: bool | None = None  # None: no officer CA was given
    manifest_sha256: str | None = None
    items_listed: int = 0
    items_present: int = 0
    files: dict[str, bool] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    sealed_at_seq: int | None = None

    def summary(self) -> dict[str, Any]:
        return {"case": self.case, "officer": self.officer, "officer_key_id": self.officer_key_id,
                "signature_valid": self.signature_valid, "officer_trusted": self.officer_trusted,
                "manifest_sha256": self.manifest_sha256, "items_listed": self.items_listed,
                "items_present": self.items_present, "files": self.files, "sealed_at_seq": self.sealed_at_seq}


def _officer_of(cert: x509.Certificate) -> str | None:
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else None


def _check_signature(envelope: Mapping[str, Any], out: ReportCheck,
                     trusted: Sequence[x509.Certificate]) -> dict[str, Any] | None:
    where = f"{REPORT_DIR}/{MANIFEST}"
    body = envelope.get("body")
    if not isinstance(body, dict) or body.get("typ") != REPORT_TYP:
        out.problems.append((where, f"not an {REPORT_TYP} manifest"))
        return None
    try:
        sig = base64.b64decode(str(envelope["sig"]), validate=True)
        cert = x509.load_der_x509_certificate(base64.b64decode(str(envelope["x5c"][0]), validate=True))
        pub = cert.public_key()
    except (KeyError, IndexError, TypeError, ValueError, UnsupportedAlgorithm) as exc:
        out.problems.append((where, f"signature envelope malformed ({exc})"))
        return None
    if not isinstance(pub, ec.EllipticCurvePublicKey) or key_id_of(pub) != envelope.get("key_id"):
        out.problems.append((where, "the certificate does not hold the signing key"))
        return None
    out.officer, out.officer_key_id = _officer_of(cert), key_id_of(pub)
    try:
        verify_with(pub, sig, canonical(body))
    except (SigningError, ValueError):
        out.problems.append((where, "report signature is invalid (manifest altered or signed by another key)"))
        return None
    if body.get("officer") != out.officer:
        out.problems.append((where, f"manifest names officer {body.get('officer')!r} but is signed by "
                                    f"{out.officer!r}"))
    out.signature_valid = True
    if trusted:
        out.officer_trusted = any(_issued_by(cert, ca) for ca in trusted)
        if not out.officer_trusted:
            out.problems.append((where, "officer certificate does not lead to a trusted officer CA"))
    return body


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    if cert.public_bytes(serialization.Encoding.DER) == ca.public_bytes(serialization.Encoding.DER):
        return True
    try:
        cert.verify_directly_issued_by(ca)
        return True
    except Exception:  # InvalidSignature, ValueError, TypeError: not this CA
        return False


def check_report(files: Mapping[str, bytes], records: Mapping[int, tuple[str, dict[str, Any]]], *,
                 trusted_officers: Sequence[x509.Certificate] = ()) -> ReportCheck:
    """Check a report's files against the evidence ``records`` (seq -> (record hash, record))."""
    out = ReportCheck()
    raw = files.get(MANIFEST)
    if raw is None:
        out.problems.append((REPORT_DIR, f"report folder without {MANIFEST}"))
        return out
    out.manifest_sha256 = hashlib.sha256(raw).hexdigest()
    try:
        envelope = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        out.problems.append((f"{REPORT_DIR}/{MANIFEST}", f"not JSON ({exc})"))
        return out
    body = _check_signature(envelope, out, trusted_officers) if isinstance(envelope, dict) else None
    if body is None:
        if not isinstance(envelope, dict):
            out.problems.append((f"{REPORT_DIR}/{MANIFEST}", "not a JSON object"))
        return out
    out.case = str(body.get("case"))
    for name, meta in sorted((body.get("files") or {}).items()):
        data = files.get(str(name))
        ok = (data is not None and isinstance(meta, dict) and hashlib.sha256(data).hexdigest() == meta.get("sha256")
              and len(data) == meta.get("size"))
        out.files[str(name)] = ok
        if not ok:
            out.problems.append((f"{REPORT_DIR}/{name}", "missing" if data is None else
                                 "does not match the signed manifest (report altered or replaced)"))
    listed = body.get("items") or []
    out.items_listed = len(listed)
    for entry in listed:
        seq = entry.get("seq") if isinstance(entry, dict) else None
        if not isinstance(seq, int):
            out.problems.append((f"{REPORT_DIR}/{MANIFEST}", f"malformed item entry {str(entry)[:80]}"))
            continue
        found = records.get(seq)
        if found is None:
            out.problems.append((f"seq {seq}", "listed in the report but missing from the evidence"))
        elif found[0] != entry.get("record_hash"):
            out.problems.append((f"seq {seq}", "differs from the item the report lists (record replaced)"))
        else:
            out.items_present += 1
            media = found[1].get("media") or {}
            if entry.get("media_sha256") not in (None, media.get("sha256")):
                out.problems.append((f"seq {seq}", "media hash differs from the one the report lists"))
    for seq, (_hash, rec) in sorted(records.items()):
        extra = rec.get("extra") or {}
        if rec.get("kind") == "report" and extra.get("sha256") == out.manifest_sha256:
            out.sealed_at_seq = seq
    if out.sealed_at_seq is None:
        out.warnings.append((f"{REPORT_DIR}/{MANIFEST}", "no device record seals this report's hash"))
    return out


def _report_files(source: Any) -> dict[str, bytes] | None:
    """``report/*`` of a bundle (zip) or an evidence folder; None when there is no report."""
    prefix = REPORT_DIR + "/"
    if hasattr(source, "members"):
        found = {n[len(prefix):]: b for n, b in source.members(prefix).items()}
        return found or None
    root = getattr(source, "root", None)
    folder = None if root is None else Path(root) / REPORT_DIR
    if folder is None or not folder.is_dir() or source.mode == "single":
        return None
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())
            if p.is_file() and p.stat().st_size <= MAX_REPORT_FILE}


def report_checker(trusted_officers: Sequence[x509.Certificate] = ()) -> Callable[[Any], None]:
    """A checker for ``agent.signing.verify.check(path, checkers=[report_checker()])``."""

    def check(ctx: Any) -> None:
        files = _report_files(ctx.source)
        if files is None:
            return
        records = {it.seq: (it.signed.hash, it.record) for it in ctx.items}
        result = check_report(files, records, trusted_officers=trusted_officers)
        for where, what in result.problems:
            ctx.report.problem(where, what)
        for where, what in result.warnings:
            ctx.report.warn(where, what)
        ctx.report.sections["report"] = result.summary()

    return check


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
