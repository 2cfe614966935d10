"""Officer trust bundles: the fleet administrator's signed list of officers, their permissions and the CRL.

Wire format (UTF-8 JSON, retained on :data:`TRUST_TOPIC`, which only fleet-admin accounts may write)::

    {"alg": "ES256", "key_id": <hex SHA-256 of the admin SPKI DER>, "sig": <base64 DER>,
     "body": {"typ": "evidence-trust/1", "admin": .., "version": <int>, "issued_ms": ..,
              "not_before_ms": .., "not_after_ms": ..,
              "officers": {<officer id>: {"cert": <PEM>, "commands": [..]}}, "crl": <PEM> | null}}

The signature covers the RFC 8785 canonical bytes of ``body`` (``typ`` separates it from commands the same
kind of key signs). A device accepts a bundle only if the fleet-admin certificate it was provisioned with
verifies it, it is inside its validity period, and its version is newer than the one it holds.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from agent.core.errors import VerificationError
from agent.core.vocab import ID_RE
from agent.signing.keys import key_id_of
from agent.signing.revocation import parse_crls_unchecked
from agent.wire.commands import ALG, COMMANDS, CRL_FILE, canonical
from agent.wire.topics import TRUST_TOPIC as TRUST_TOPIC  # re-exported: the topic of these bundles

TRUST_TYP: Final = "evidence-trust/1"
MAX_BUNDLE_BYTES: Final = 1 << 20
MAX_OFFICERS: Final = 2000
MAX_VERSION: Final = (1 << 53) - 1
_BODY_KEYS: Final = frozenset({"typ", "admin", "version", "issued_ms", "not_before_ms", "not_after_ms",
                               "officers", "crl"})
_WIRE_KEYS: Final = frozenset({"alg", "key_id", "sig", "body"})


class BundleRejected(VerificationError):
    """A trust bundle the device refuses; ``code`` is the short reason (logged and shown in its status)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


@dataclass(frozen=True)
class OfficerGrant:
    officer_id: str
    cert_pem: str
    commands: tuple[str, ...]


@dataclass(frozen=True)
class TrustBundle:
    """A verified bundle; ``payload`` is the exact signed message (kept beside what it installed)."""

    admin: str
    version: int
    issued_ms: int
    not_before_ms: int
    not_after_ms: int
    officers: tuple[OfficerGrant, ...]
    crl_pem: str | None
    payload: bytes

    def permissions(self) -> dict[str, list[str]]:
        return {o.officer_id: list(o.commands) for o in self.officers}


def sign_bundle(key: ec.EllipticCurvePrivateKey, *, admin: str, version: int, officers: Mapping[str, OfficerGrant],
                crl_pem: str | None, issued_ms: int, not_after_ms: int) -> bytes:
    """The signed wire bytes of a bundle (``evidence-officer trust publish``; tests)."""
    body = {"typ": TRUST_TYP, "admin": admin, "version": version, "issued_ms": issued_ms,
            "not_before_ms": issued_ms - 300_000, "not_after_ms": not_after_ms,
            "officers": {name: {"cert": g.cert_pem, "commands": list(g.commands)}
                         for name, g in sorted(officers.items())},
            "crl": crl_pem}
    sig = key.sign(canonical(body), ec.ECDSA(hashes.SHA256()))
    wire = {"alg": ALG, "key_id": key_id_of(key.public_key()), "sig": base64.b64encode(sig).decode(), "body": body}
    return json.dumps(wire, sort_keys=True).encode()


def _int(body: Mapping[str, Any], name: str, low: int = 0) -> int:
    v = body.get(name)
    if not isinstance(v, int) or isinstance(v, bool) or not low <= v <= MAX_VERSION:
        raise BundleRejected("malformed", f"{name} must be an integer in [{low}, 2^53)")
    return v


def verify_bundle(payload: bytes, admin_cert: x509.Certificate, now_ms: int) -> TrustBundle:
    """Check everything before anything is installed; :class:`BundleRejected` says what is wrong."""
    if len(payload) > MAX_BUNDLE_BYTES:
        raise BundleRejected("too_large", f"{len(payload)} bytes (limit {MAX_BUNDLE_BYTES})")
    try:
        wire = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BundleRejected("malformed", f"not JSON: {exc}") from None
    if not isinstance(wire, dict) or set(wire) != _WIRE_KEYS or not isinstance(wire["body"], dict):
        raise BundleRejected("malformed", f"expected exactly the keys {sorted(_WIRE_KEYS)}")
    if wire["alg"] != ALG:
        raise BundleRejected("malformed", f"alg must be {ALG}")
    public = admin_cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise BundleRejected("untrusted", "the fleet-admin certificate does not hold an EC key")
    if wire["key_id"] != key_id_of(public):
        raise BundleRejected("untrusted", f"signed by key {str(wire['key_id'])[:16]}…, not by the fleet-admin "
                                          "key this device was provisioned to trust")
    try:
        sig = base64.b64decode(str(wire["sig"]), validate=True)
        public.verify(sig, canonical(wire["body"]), ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature):
        raise BundleRejected("bad_signature", "the fleet-admin signature does not verify") from None
    na_cert = int(admin_cert.not_valid_after_utc.timestamp() * 1000)
    nb_cert = int(admin_cert.not_valid_before_utc.timestamp() * 1000)
    if now_ms < nb_cert:
        raise BundleRejected("not_yet_valid", "the fleet-admin certificate is not valid yet (this device's clock?)")
    if now_ms > na_cert:
        raise BundleRejected("expired", "the fleet-admin certificate has expired (re-provision with a new one)")
    body = wire["body"]
    if set(body) != _BODY_KEYS or body.get("typ") != TRUST_TYP:
        raise BundleRejected("malformed", f"body must be a {TRUST_TYP} with exactly {sorted(_BODY_KEYS)}")
    version = _int(body, "version", 1)
    nb, na, issued = _int(body, "not_before_ms"), _int(body, "not_after_ms"), _int(body, "issued_ms")
    if now_ms < nb:
        raise BundleRejected("not_yet_valid", f"version {version} is valid only from {nb} ms")
    if now_ms > na:
        raise BundleRejected("expired", f"version {version} expired at {na} ms (publish a new one)")
    admin = body["admin"]
    if not isinstance(admin, str) or not ID_RE.match(admin):
        raise BundleRejected("malformed", "admin must be a plain identifier")
    officers = body["officers"]
    if not isinstance(officers, dict) or len(officers) > MAX_OFFICERS:
        raise BundleRejected("malformed", f"officers must be an object of at most {MAX_OFFICERS} entries")
    grants = tuple(_grant(name, entry) for name, entry in sorted(officers.items()))
    crl = body["crl"]
    if crl is not None:
        if not isinstance(crl, str):
            raise BundleRejected("malformed", "crl must be PEM text or null")
        try:
            parse_crls_unchecked(crl.encode(), "the bundle's crl")
        except VerificationError as exc:
            raise BundleRejected("malformed", str(exc)) from None
    return TrustBundle(admin, version, issued, nb, na, grants, crl, payload)


def _grant(name: object, entry: object) -> OfficerGrant:
    if not isinstance(name, str) or not ID_RE.match(name):
        raise BundleRejected("malformed", f"officer id {str(name)[:80]!r} is not a plain identifier")
    if f"{name}.pem" == CRL_FILE:  # its file would be the folder's CRL
        raise BundleRejected("malformed", f"officer id {name!r} is reserved")
    if not isinstance(entry, dict) or set(entry) != {"cert", "commands"} or not isinstance(entry["cert"], str):
        raise BundleRejected("malformed", f"officer {name}: expected {{cert, commands}}")
    commands = entry["commands"]
    if not isinstance(commands, list) or not all(isinstance(c, str) and (c in COMMANDS or c == "*")
                                                 for c in commands):
        raise BundleRejected("malformed", f"officer {name}: commands must be names from {sorted(COMMANDS)} or '*'")
    try:
        cert = x509.load_pem_x509_certificate(entry["cert"].encode())
    except ValueError as exc:
        raise BundleRejected("malformed", f"officer {name}: not a PEM certificate ({exc})") from None
    cns = [str(a.value) for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    if cns != [name]:
        raise BundleRejected("malformed", f"officer {name}: the certificate's CN is {cns}")
    return OfficerGrant(name, entry["cert"], tuple(commands))
