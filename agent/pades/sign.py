"""Add one PAdES signature to a PDF as an incremental update (earlier signatures stay valid).

Each signature is PAdES baseline (``ETSI.CAdES.detached``, SHA-256) with the signer's certificate chain
embedded, and PAdES B-T (an RFC 3161 signature timestamp) when a TSA URL is given. Nothing is fetched but
the TSA the caller names.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from agent.core.errors import SigningError

#: Signature field names: the officer signs first, the enterprise countersigns.
OFFICER_FIELD, ENTERPRISE_FIELD = "OfficerSignature", "EnterpriseSignature"
#: An enterprise's dispute note is the /Reason of its signature, after this prefix (see ``dispute_reason``).
DISPUTE_PREFIX = "DISPUTED: "
MAX_NOTE_CHARS = 4000

for _name in ("pyhanko", "pyhanko_certvalidator"):
    logging.getLogger(_name).setLevel(logging.WARNING)


Box = tuple[int, int, int, int]  # lower-left x, y, upper-right x, y in PDF points


@dataclass(frozen=True)
class Field:
    """A signature field: invisible without ``box``, else a widget on page ``page`` (-1: the last)."""

    name: str
    box: Box | None = None
    page: int = -1


@dataclass(frozen=True)
class SignatureRequest:
    """Who signs which field, and what the signature dictionary says (every PDF reader shows these)."""

    field: str
    name: str
    reason: str
    location: str | None = None
    contact: str | None = None
    #: empty signature fields to create in the same revision (for signers who come later)
    empty_fields: tuple[Field, ...] = ()
    #: where a new field goes (an existing field keeps its own widget)
    box: Box | None = None
    #: the text of a visible signature's appearance (pyHanko stamp; ``%(ts)s`` is the signing time); ASCII
    stamp: str = "Digitally signed (PAdES)\n%(ts)s"


def _asn1(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, cert: x509.Certificate,
          chain: list[x509.Certificate]) -> tuple[object, object, list[object]]:
    from asn1crypto import keys as asn1_keys
    from asn1crypto import x509 as asn1_x509

    der = serialization.Encoding.DER
    k = asn1_keys.PrivateKeyInfo.load(key.private_bytes(der, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    c = asn1_x509.Certificate.load(cert.public_bytes(der))
    others = [asn1_x509.Certificate.load(x.public_bytes(der)) for x in chain if x != cert]
    return k, c, others


def sign_pdf(pdf: bytes, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, cert: x509.Certificate,
             chain: list[x509.Certificate], request: SignatureRequest, *, tsa_url: str | None = None,
             before: Callable[[Any], None] | None = None) -> bytes:
    """``pdf`` with one more PAdES signature in ``request.field`` (an existing empty field, or a new one).

    Raises :class:`SigningError` for a file that is not a PDF, a key that does not match the certificate,
    a field that is already signed, or a TSA that does not answer. ``before(writer)`` may add content (a
    signature page) to the revision being signed.
    """
    import aiohttp
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.sign import fields, signers, timestamps
    from pyhanko.stamp import TextStampStyle
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if cert.public_key().public_bytes(der, spki) != key.public_key().public_bytes(der, spki):
        raise SigningError("the key does not belong to the certificate")
    k, c, others = _asn1(key, cert, chain)
    signer = signers.SimpleSigner(signing_cert=c, signing_key=k,  # type: ignore[arg-type]
                                  cert_registry=SimpleCertificateStore.from_certs(others))  # type: ignore[arg-type,no-untyped-call]
    try:
        w = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
        existing = {name: value for name, value, _ in fields.enumerate_sig_fields(w.prev, filled_status=None)}
        if request.field in existing and existing[request.field] is not None:
            raise SigningError(f"the PDF's {request.field} field is already signed")
        if before is not None:
            before(w)
        for f in request.empty_fields:
            if f.name not in existing:
                fields.append_signature_field(w, fields.SigFieldSpec(sig_field_name=f.name, box=f.box,
                                                                     on_page=f.page))
        meta = signers.PdfSignatureMetadata(
            field_name=request.field, name=request.name, reason=request.reason, location=request.location,
            contact_info=request.contact, subfilter=fields.SigSeedSubFilter.PADES, md_algorithm="sha256")
        stamper = timestamps.HTTPTimeStamper(tsa_url, timeout=30) if tsa_url else None
        spec = None if request.field in existing else fields.SigFieldSpec(
            sig_field_name=request.field, box=request.box, on_page=-1)
        style = TextStampStyle(stamp_text=request.stamp, border_width=1)
        out = signers.PdfSigner(meta, signer=signer, timestamper=stamper, stamp_style=style,
                                new_field_spec=spec).sign_pdf(w)
    except SigningError:
        raise
    except (PdfError, ValueError, KeyError, TypeError) as exc:
        raise SigningError(f"cannot sign the PDF: {exc}") from None
    except (OSError, aiohttp.ClientError, TimeoutError) as exc:  # the TSA: one line, not a traceback
        raise SigningError(f"the TSA {tsa_url} did not time-stamp the signature: {exc or type(exc).__name__}") from None
    data: bytes = out.getvalue()
    return data


def dispute_reason(note: str) -> str:
    """The /Reason of an enterprise signature that disputes the document: the prefix and the note.

    The note lives in the signature dictionary, not in an attachment: the signature covers it, every PDF
    reader shows it in the signature's properties, and a new signature dictionary is a change PDF readers and
    pyHanko allow after the officer's signature (an attachment or annotation added later is not).
    """
    text = note.replace("\r\n", "\n").strip()
    if not text:
        raise SigningError("the dispute note is empty")
    if len(text) > MAX_NOTE_CHARS:
        raise SigningError(f"the dispute note is {len(text)} characters; at most {MAX_NOTE_CHARS}")
    if any(not (ch.isprintable() or ch in "\n\t") for ch in text):
        raise SigningError("the dispute note holds control characters")
    return DISPUTE_PREFIX + text
