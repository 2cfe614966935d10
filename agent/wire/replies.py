"""Device-signed replies: ``{"alg","key_id","sig","x5c","body"}`` objects that an officer checks.

Wire format shared by the device (which signs replies and live-session parameters) and the customs tools
(which verify them); no device code, no numpy.
"""

from __future__ import annotations

import base64
import binascii
import itertools
from collections.abc import Mapping
from typing import Any, Final, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from agent.core.errors import VerificationError
from agent.wire.commands import canonical

REPLY_TYP: Final = "evidence-reply/1"


class DeviceSigner(Protocol):
    """What the controller needs of agent.signing.keys.DeviceIdentity."""

    @property
    def key_id(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...

    def chain_der(self) -> list[bytes]: ...


def sign_object(signer: DeviceSigner, body: Mapping[str, Any]) -> bytes:
    """``{"alg","key_id","sig","x5c","body"}`` as compact JSON bytes."""
    sig = signer.sign(canonical(body))
    return canonical({"alg": "ES256", "key_id": signer.key_id, "sig": base64.b64encode(sig).decode(),
                      "x5c": [base64.b64encode(c).decode() for c in signer.chain_der()], "body": dict(body)})


def verify_device_object(wire: Mapping[str, Any], *, typ: str, device: str,
                         trusted_cas: list[x509.Certificate] | None = None) -> tuple[dict[str, Any], x509.Certificate]:
    """Check a device-signed object; returns (body, leaf). Raises VerificationError naming the problem.

    With ``trusted_cas`` the x5c chain must lead to one of them; without, the leaf is only
    checked to name ``device`` (trust on first use — the caller should pin it).
    """
    try:
        body, sig = wire["body"], base64.b64decode(wire["sig"], validate=True)
        chain = [x509.load_der_x509_certificate(base64.b64decode(c, validate=True)) for c in wire["x5c"]]
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise VerificationError(f"malformed signed object: {exc}") from None
    if not isinstance(body, dict) or body.get("typ") != typ or not chain:
        raise VerificationError(f"not a {typ} object with a certificate chain")
    leaf = chain[0]
    cns = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    if not cns or cns[0].value != device or body.get("device") != device:
        raise VerificationError(f"signed by {cns[0].value if cns else '?'!r}, expected device {device!r}")
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise VerificationError("device certificate key is not ECDSA")
    try:
        key.verify(sig, canonical(body), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise VerificationError(f"{typ} signature does not match") from None
    if trusted_cas is not None:
        check_chain(chain, trusted_cas)
    return body, leaf


def check_chain(chain: list[x509.Certificate], trusted: list[x509.Certificate]) -> None:
    """Each certificate issued by the next, the last issued by (or equal to) a trusted CA."""
    try:
        for child, parent in itertools.pairwise(chain):
            child.verify_directly_issued_by(parent)
        last = chain[-1]
        if any(last == ca for ca in trusted):
            return
        for ca in trusted:
            try:
                last.verify_directly_issued_by(ca)
                return
            except (ValueError, TypeError, InvalidSignature):
                continue
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise VerificationError(f"device certificate chain is broken: {exc}") from None
    raise VerificationError("device certificate chain does not lead to a trusted CA")
