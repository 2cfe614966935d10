"""The officer signs the report PDF itself (PAdES), so any PDF reader shows who signed and whether it changed.

The signature names the officer by the legal name (X.520 ``name``) and badge number (``serialNumber``) of
the officer certificate the customs CA issued (``evidence-officer ca issue-officer``); the same revision
creates the empty ``EnterpriseSignature`` field the enterprise fills with ``evidence-agent countersign``.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from agent.customs.legal.page import ENTERPRISE_BOX, OFFICER_BOX, appender, render_signature_page
from agent.pades.check import Signer
from agent.pades.sign import ENTERPRISE_FIELD, OFFICER_FIELD, Field, SignatureRequest, sign_pdf


def officer_request(cert: x509.Certificate, *, location: str | None = None) -> SignatureRequest:
    """The signature dictionary for an officer certificate: /Name = legal name, /Reason names the badge."""
    who = Signer.of(cert)
    name = who.legal_name or who.common_name
    badge = f"badge {who.badge}" if who.badge else "no badge number in the certificate"
    org = f", {who.organization}" if who.organization else ""
    return SignatureRequest(field=OFFICER_FIELD, name=name, location=location, contact=who.common_name,
                            reason=f"Inspection report signed by customs officer {name} ({badge}{org})",
                            empty_fields=(Field(ENTERPRISE_FIELD, ENTERPRISE_BOX),), box=OFFICER_BOX,
                            stamp="Customs officer - digitally signed (PAdES)\n%(ts)s")


def sign_report_pdf(pdf_bytes: bytes, officer_key: ec.EllipticCurvePrivateKey, officer_cert: x509.Certificate,
                    chain: list[x509.Certificate], tsa_url: str | None = None, *,
                    title: str | None = None) -> bytes:
    """The report PDF with the officer's PAdES signature (B-T with an RFC 3161 timestamp when ``tsa_url``).

    ``chain``: the certificates up to the customs CA (the officer certificate may be included or not); they
    are embedded so a reader can build the path. The result is the input plus one incremental update: the
    signature page (``page.py``: the officer's legal name and badge, ``title`` e.g. the case, two boxes), the
    officer's signature in ``OfficerSignature`` and an empty ``EnterpriseSignature`` field for the
    countersignature. Raises ``SigningError`` (one line) for a non-PDF, a key not matching the certificate,
    an already signed report or a TSA that does not answer.
    """
    page = render_signature_page(Signer.of(officer_cert), title)
    return sign_pdf(pdf_bytes, officer_key, officer_cert, [officer_cert, *chain], officer_request(officer_cert),
                    tsa_url=tsa_url, before=appender(page))
