"""Validate every PAdES signature in a PDF with pyHanko's validator: who signed, unchanged since, trusted.

Each signature is checked against the trust roots of its role (the officer field against the customs CA,
the enterprise field against the enterprise's CA), with no network access (no OCSP, CRL or AIA fetching).
A signature is *ok* when its CMS signature holds over the signed revision (intact and valid), everything
appended later is only form filling or signing (pyHanko's default diff policy), and its timestamp, if any,
is intact. It is *trusted* when its chain ends at a root of its role and its timestamp (if any) at a
``tsa_roots`` certificate. The officer's certificate must also be an officer certificate: one that carries
the legal name (X.520 ``name``) and the badge number (``serialNumber``), which the customs CA's device
certificates do not.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from agent.core.errors import VerificationError
from agent.pades.sign import DISPUTE_PREFIX, ENTERPRISE_FIELD, OFFICER_FIELD

if TYPE_CHECKING:
    from agent.signing.revocation import Revocations

LEGAL_NAME_OID = x509.ObjectIdentifier("2.5.4.41")
ROLES = {OFFICER_FIELD: "officer", ENTERPRISE_FIELD: "enterprise"}


@dataclass(frozen=True)
class Signer:
    """What the signer's certificate says (the legal name and badge of an officer certificate)."""

    common_name: str
    legal_name: str | None
    badge: str | None
    organization: str | None
    subject: str

    @classmethod
    def of(cls, cert: x509.Certificate) -> Signer:
        def one(oid: x509.ObjectIdentifier) -> str | None:
            values = cert.subject.get_attributes_for_oid(oid)
            return str(values[0].value) if values else None

        return cls(one(NameOID.COMMON_NAME) or "", one(LEGAL_NAME_OID), one(NameOID.SERIAL_NUMBER),
                   one(NameOID.ORGANIZATION_NAME), cert.subject.rfc4514_string())


@dataclass(frozen=True)
class SignatureCheck:
    """One signature: its role (by field), signer, times, and what is wrong with it."""

    field: str
    role: str
    signer: Signer | None
    signed_at: str | None
    timestamp: str | None
    intact: bool
    trusted: bool
    changes_after: str
    reason: str | None
    problems: tuple[str, ...] = ()
    untrusted: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class PdfCheck:
    """The whole document: every signature in signing order, the dispute note if any, overall problems."""

    path: str
    signatures: tuple[SignatureCheck, ...]
    dispute_note: str | None
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems and all(s.ok for s in self.signatures)

    @property
    def trusted(self) -> bool:
        return all(s.trusted for s in self.signatures)

    def to_json(self) -> dict[str, object]:
        from dataclasses import asdict

        return {"path": self.path, "ok": self.ok, "trusted": self.trusted, "problems": list(self.problems),
                "dispute_note": self.dispute_note, "signatures": [asdict(s) for s in self.signatures]}


def _context(roots: Sequence[x509.Certificate]) -> object:
    from asn1crypto import x509 as asn1_x509
    from pyhanko_certvalidator import ValidationContext

    der = [asn1_x509.Certificate.load(c.public_bytes(Encoding.DER)) for c in roots]
    return ValidationContext(trust_roots=der, allow_fetching=False, revocation_mode="soft-fail")


def check_pdf(data: bytes, *, officer_roots: Sequence[x509.Certificate],
              enterprise_roots: Sequence[x509.Certificate], tsa_roots: Sequence[x509.Certificate] = (),
              require: Sequence[str] = (OFFICER_FIELD,), path: str = "PDF",
              revocations: Revocations | None = None) -> PdfCheck:
    """Check every signature in ``data``; ``require`` names the fields that must be signed.

    With ``revocations`` (CRLs checked against the CAs), a signature by a revoked certificate is trusted only
    when a trusted RFC 3161 timestamp dates it before the revocation (the signer's own clock does not count).
    """
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation.errors import SignatureValidationError

    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        sigs = list(reader.embedded_signatures)
    except (PdfError, ValueError, KeyError, TypeError) as exc:
        raise VerificationError(f"{path}: not a readable PDF: {exc}") from None
    problems = [f"the {f} field is not signed" for f in require
                if f not in {s.field_name for s in sigs}]
    if not sigs:
        problems.append("the PDF carries no signature")
    checks = []
    for sig in sigs:
        try:
            checks.append(_check_one(sig, officer_roots, enterprise_roots, tsa_roots, revocations))
        except (SignatureValidationError, PdfError, ValueError, KeyError, TypeError) as exc:
            checks.append(SignatureCheck(sig.field_name, ROLES.get(sig.field_name, "other"), None, None, None,
                                         False, False, "unknown", None, (f"cannot be validated: {exc}",)))
    note = next((c.reason[len(DISPUTE_PREFIX):] for c in checks
                 if c.role == "enterprise" and c.reason and c.reason.startswith(DISPUTE_PREFIX)), None)
    return PdfCheck(path, tuple(checks), note, tuple(problems))


def _check_one(sig: object, officer_roots: Sequence[x509.Certificate], enterprise_roots: Sequence[x509.Certificate],
               tsa_roots: Sequence[x509.Certificate], revocations: Revocations | None) -> SignatureCheck:
    from pyhanko.sign.diff_analysis import ModificationLevel
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.status import SignatureCoverageLevel

    name: str = sig.field_name  # type: ignore[attr-defined]
    role = ROLES.get(name, "other")
    roots = {"officer": officer_roots, "enterprise": enterprise_roots}.get(role,
                                                                          [*officer_roots, *enterprise_roots])
    st = validate_pdf_signature(sig, _context(roots), ts_validation_context=_context(tsa_roots))  # type: ignore[arg-type]
    problems, untrusted = [], []
    if not (st.intact and st.valid):
        problems.append("the signature does not match the signed revision (content changed or forged)")
    level = st.modification_level
    if st.coverage == SignatureCoverageLevel.ENTIRE_FILE:
        changes = "none"
    elif level is None or st.coverage is None or st.coverage < SignatureCoverageLevel.ENTIRE_REVISION:
        changes = "unknown"
        problems.append("the signature does not cover a whole revision of the file")
    else:
        changes = {ModificationLevel.LTA_UPDATES: "validation data only", ModificationLevel.FORM_FILLING:
                   "later signatures or form filling only"}.get(level, level.name.lower())
        if level > ModificationLevel.FORM_FILLING or not st.docmdp_ok:
            problems.append(f"the document was changed after this signature ({level.name.lower()})")
    if not st.trusted:
        untrusted.append(f"the signer's certificate does not chain to the {role} CA given"
                         if role != "other" else "the signer's certificate chains to no CA given")
    ts = st.timestamp_validity
    if ts is not None:
        if not (ts.intact and ts.valid):
            problems.append("the RFC 3161 timestamp does not match the signature")
        elif not ts.trusted:
            untrusted.append("the RFC 3161 timestamp's TSA does not chain to a --tsa-ca")
    if role == "other":
        problems.append(f"an unexpected signature field {name!r} (expected {OFFICER_FIELD} or {ENTERPRISE_FIELD})")
    cert = x509.load_der_x509_certificate(st.signing_cert.dump())
    signer = Signer.of(cert)
    if role == "officer" and not (signer.legal_name and signer.badge):
        untrusted.append("the signer's certificate is not an officer certificate (no legal name or badge number: "
                         "a device's or another certificate of the customs CA)")
    if revocations is not None and (rev := revocations.revoked(cert)) is not None:
        vouched: dt.datetime | None = ts.timestamp if ts is not None and ts.trusted and ts.intact else None
        if vouched is None:
            untrusted.append(f"the signer's {rev.describe()}, and no trusted timestamp dates the signature before")
        elif vouched >= rev.since:
            untrusted.append(f"the signer's {rev.describe()}; the signature is time-stamped {vouched.isoformat()}")
    sig_obj = sig.sig_object  # type: ignore[attr-defined]
    reason = sig_obj.get("/Reason")
    return SignatureCheck(
        field=name, role=role, signer=signer,
        signed_at=st.signer_reported_dt.isoformat() if st.signer_reported_dt else None,
        timestamp=ts.timestamp.isoformat() if ts is not None else None,
        intact=bool(st.intact and st.valid), trusted=not untrusted, changes_after=changes,
        reason=str(reason) if reason is not None else None, problems=tuple(problems), untrusted=tuple(untrusted))


def signed_bytes(data: bytes, field: str = OFFICER_FIELD) -> bytes | None:
    """The file exactly as the signer of ``field`` signed it (the prefix its /ByteRange ends at), or None.

    A countersigned report is the officer's signed file plus incremental updates, so this is what a manifest
    that hashed the officer-signed ``report.pdf`` is compared with. Only meaningful after ``check_pdf`` found
    that signature intact (otherwise the prefix is not vouched for).
    """
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        for sig in PdfFileReader(io.BytesIO(data), strict=False).embedded_signatures:
            if sig.field_name == field:
                _, _, start2, len2 = (int(x) for x in sig.byte_range)
                return data[:start2 + len2] if start2 + len2 <= len(data) else None
    except (PdfError, ValueError, KeyError, TypeError):
        return None
    return None
