"""Device-signed replies: ``{"alg","key_id","sig","x5c","body"}`` objects that an officer checks.

Wire format shared by the device (which signs replies and live-session parameters) and the customs tools
(which verify them); no device code, no numpy.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, Final, Protocol

from cryptography import x509

from agent.core.errors import VerificationError
from agent.signing.trust import verify_chain, verify_signature
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

    The leaf must be ``device``'s (subject CN, see agent.signing.trust) and its chain must be intact; with
    ``trusted_cas`` it must also lead to one of them. Without, the caller gets trust on first use and
    should pin the leaf.
    """
    try:
        body, sig = wire["body"], base64.b64decode(wire["sig"], validate=True)
        chain = [x509.load_der_x509_certificate(base64.b64decode(c, validate=True)) for c in wire["x5c"]]
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise VerificationError(f"malformed signed object: {exc}") from None
    if not isinstance(body, dict) or body.get("typ") != typ or not chain:
        raise VerificationError(f"not a {typ} object with a certificate chain")
    if body.get("device") != device:
        raise VerificationError(f"{typ} body names device {body.get('device')!r}, expected device {device!r}")
    try:
        data = canonical(body)
    except (ValueError, TypeError) as exc:
        raise VerificationError(f"{typ} body cannot be canonicalised: {exc}") from None
    verify_chain(chain, trusted_cas or [], device=device)
    try:
        verify_signature(chain[0], sig, data)
    except VerificationError:
        raise VerificationError(f"{typ} signature does not match") from None
    return body, chain[0]
