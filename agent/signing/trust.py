"""The one place that decides whether a certificate chain and a signature are to be believed.

Chain building is cryptography's X.509 verification API (``PolicyBuilder`` + ``ClientVerifier``): every
issuer must be CA:TRUE with keyCertSign, names and validity periods must nest, and the path must end in a
trust anchor the caller supplied. We only relax one web-PKI rule for the leaf: a device certificate has no
subjectAltName (identity is the subject CN), so the SAN extension is optional on end-entity certificates.

Identity binding: **a device's identity is the subject CN of its leaf certificate**; that is what
``evidence-agent keys init`` and ``provision`` issue, and what Mosquitto's ``use_identity_as_username``
turns into the MQTT user name the broker ACL checks. Every caller that names the device it expects
(ingest: the topic; verify: the record's ``device_id``; ``evidence-officer cmd``: the addressed device)
passes it as ``device`` and a mismatch is refused here.

Everything raises :class:`VerificationError` naming the problem; nothing returns False.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import verification as xv
from cryptography.x509.oid import NameOID

from agent.core.errors import VerificationError

__all__ = ["TrustedChain", "device_id_of", "load_anchors", "verify_chain", "verify_key_signature", "verify_signature"]

#: The leaf may carry a SAN (the web-PKI default demands one); CA certificates keep the web-PKI rules.
_EE_POLICY = xv.ExtensionPolicy.webpki_defaults_ee().may_be_present(
    x509.SubjectAlternativeName, xv.Criticality.AGNOSTIC, None)
_CA_POLICY = xv.ExtensionPolicy.webpki_defaults_ca()


@dataclass(frozen=True)
class TrustedChain:
    """What a verified chain proves: whose key it is, and (when ``trusted``) who vouches for it."""

    device_id: str
    leaf: x509.Certificate
    chain: tuple[x509.Certificate, ...]  # leaf first, ending at the anchor used
    trusted: bool  # False: the chain is internally consistent but ends at a CA nobody supplied
    issuer: str  # RFC 4514 subject of the anchor the chain ends at


def _subject(cert: x509.Certificate) -> str:
    try:
        return cert.subject.rfc4514_string()
    except ValueError:
        return "(unreadable subject)"


def device_id_of(cert: x509.Certificate) -> str:
    """The identity a certificate claims: its one subject CN."""
    try:
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError as exc:
        raise VerificationError(f"certificate subject unreadable: {exc}") from None
    if len(cns) != 1 or not isinstance(cns[0].value, str) or not cns[0].value:
        raise VerificationError(f"certificate {_subject(cert)} must have exactly one subject CN (the device id)")
    return cns[0].value


def load_anchors(paths: Iterable[Path]) -> list[x509.Certificate]:
    """PEM CA certificates from files; VerificationError names the file that is not one."""
    out: list[x509.Certificate] = []
    for p in paths:
        try:
            certs = x509.load_pem_x509_certificates(Path(p).read_bytes())
        except (OSError, ValueError) as exc:
            raise VerificationError(f"{p}: cannot read a PEM CA certificate: {exc}") from None
        out.extend(certs)
    return out


def verify_key_signature(key: object, signature: bytes, data: bytes) -> None:
    """ECDSA P-256/SHA-256 signature by ``key`` over ``data`` (DER signature, as openssl makes)."""
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise VerificationError("key is not ECDSA P-256")
    try:
        key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise VerificationError("signature is invalid (data altered or signed by another key)") from None


def verify_signature(cert: x509.Certificate, signature: bytes, data: bytes) -> None:
    """ECDSA P-256/SHA-256 signature by the certificate's key over ``data``."""
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise VerificationError(f"certificate public key unreadable: {exc}") from None
    verify_key_signature(key, signature, data)


def _self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
        return True
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False


def verify_chain(certs: Sequence[x509.Certificate], anchors: Sequence[x509.Certificate], *,
                 at: dt.datetime | None = None, device: str | None = None) -> TrustedChain:
    """Build and check the path ``certs[0]`` (leaf) .. a trust anchor, at time ``at`` (default now).

    With ``anchors`` the path must end in one of them (``trusted=True``). Without, the chain is checked
    against its own self-signed top certificate (``trusted=False``): that proves the certificates fit
    together, not that anyone vouches for them. ``device`` is the identity the caller expects.
    """
    if not certs:
        raise VerificationError("no certificate chain")
    leaf = certs[0]
    ident = device_id_of(leaf)
    if device is not None and ident != device:
        raise VerificationError(f"certificate is for {ident!r}, not {device!r} (identity is the subject CN)")
    when = at or dt.datetime.now(dt.UTC)
    try:
        valid = leaf.not_valid_before_utc <= when <= leaf.not_valid_after_utc
    except ValueError as exc:
        raise VerificationError(f"signing certificate unreadable: {exc}") from None
    if not valid:
        raise VerificationError(f"time {when.isoformat()} is outside the signing certificate's validity")
    trusted = bool(anchors)
    store_certs = list(anchors)
    if not trusted:
        top = certs[-1]
        if len(certs) < 2 or not _self_signed(top):
            raise VerificationError("certificate chain does not end in a self-signed CA (and no trusted CA given)")
        store_certs = [top]
    try:
        verifier = (xv.PolicyBuilder().store(xv.Store(store_certs)).time(when)
                    .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY).build_client_verifier())
        result = verifier.verify(leaf, list(certs[1:]))
    except xv.VerificationError as exc:
        what = "does not lead to a trusted CA" if trusted else "is broken"
        raise VerificationError(f"certificate chain {what}: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise VerificationError(f"certificate chain unreadable: {exc}") from None
    chain = tuple(result.chain)
    return TrustedChain(ident, leaf, chain, trusted, _subject(chain[-1]))
