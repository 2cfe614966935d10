"""Badge lines: what a check established, in words an officer can repeat, computed from what it compared."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

_NIST_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def signature_scheme(key: ec.EllipticCurvePublicKey) -> str:
    """The scheme a signature by ``key`` was checked with: live frames, replies and records all use ECDSA with
    SHA-256 (``verify_message``, ``verify_signature``); the curve is the key's own."""
    return f"ECDSA {_NIST_CURVES.get(key.curve.name, key.curve.name)} / SHA-256"


def chain_line(leaf: x509.Certificate, device: str, trusted: bool) -> str:
    """What the chain check (``verify_chain``, with the device CAs when ``trusted``) established for ``leaf``."""
    issuer = leaf.issuer.rfc4514_string()[:120]
    if trusted:
        return f"{device}'s certificate (issued by {issuer}) chains to the configured device CA"
    return (f"{device}'s certificate chain is intact but ends at a CA nobody configured ({issuer}): "
            "no device CA vouches for it")
