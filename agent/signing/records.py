"""Signed evidence records and their sidecar file format.

A sidecar (``*.rec``) holds two lines:

1. the record as canonical JSON (RFC 8785, agent.signing.canonical) — exactly the bytes that are signed and hashed;
2. an envelope ``{"alg":"ES256","key_id":..,"sig":<base64 DER>,"x5c":[<base64 DER cert>, ..]}``.

Keeping the signed bytes on a line of their own lets a third party check a record with
``head -n1``, ``sha256sum`` and ``openssl dgst`` alone (see docs/evidence-format.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

from cryptography import x509

from agent.core.errors import VerificationError
from agent.signing.canonical import canonical, load_canonical, load_line
from agent.signing.keys import DeviceIdentity

__all__ = ["ALG", "GENESIS_PREV", "RECORD_VERSION", "SignedRecord", "canonical", "parse_sidecar", "sha256_hex",
           "sign_record"]

RECORD_VERSION = 1
ALG = "ES256"
GENESIS_PREV = "0" * 64


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class SignedRecord:
    """A record body with its signature and the certificates needed to check it."""

    body: bytes
    sig: bytes
    key_id: str
    x5c: tuple[bytes, ...]

    @cached_property
    def record(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data

    @cached_property
    def hash(self) -> str:
        """The record hash: chain links and Merkle leaves are computed over the signed bytes."""
        return sha256_hex(self.body)

    def certificates(self) -> list[x509.Certificate]:
        return [x509.load_der_x509_certificate(der) for der in self.x5c]

    def to_sidecar(self) -> bytes:
        envelope = {
            "alg": ALG,
            "key_id": self.key_id,
            "sig": base64.b64encode(self.sig).decode(),
            "x5c": [base64.b64encode(c).decode() for c in self.x5c],
        }
        # The envelope is not signed, so plain compact JSON will do (RFC 8785 costs ~0.1 ms per seal here).
        return self.body + b"\n" + json.dumps(envelope, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def sign_record(record: Mapping[str, Any], identity: DeviceIdentity) -> SignedRecord:
    body = canonical(record)
    return SignedRecord(body=body, sig=identity.sign(body), key_id=identity.key_id,
                        x5c=tuple(identity.chain_der()))


@lru_cache(maxsize=16)
def _der(text: str) -> bytes:
    """A certificate's base64 text decoded (each run meets the same few chains again and again)."""
    return base64.b64decode(text, validate=True)


def _certificate_der(text: Any) -> bytes:
    """Cached for certificate-sized text only: the cache holds at most 16 x 4 KiB whatever the evidence says."""
    if type(text) is str and len(text) <= 4096:
        return _der(text)
    return base64.b64decode(text, validate=True)


def parse_sidecar(data: bytes, where: str) -> SignedRecord:
    """Parse a sidecar; every malformation raises VerificationError naming ``where``."""
    lines = data.split(b"\n")
    if len(lines) < 2 or (len(lines) > 2 and any(lines[2:])):
        raise VerificationError(f"{where}: sidecar must hold exactly two lines (record, envelope)")
    body, env_line = lines[0], lines[1]
    try:
        record, in_form = load_canonical(body)
        envelope = load_line(env_line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise VerificationError(f"{where}: sidecar is not valid JSON: {exc}") from exc
    except RecursionError:
        raise VerificationError(f"{where}: sidecar JSON is nested too deeply") from None
    except ValueError as exc:  # parsed, but RFC 8785 cannot express it
        raise VerificationError(f"{where}: {exc}") from exc
    if not isinstance(record, dict) or not isinstance(envelope, dict):
        raise VerificationError(f"{where}: record and envelope must be JSON objects")
    if not in_form:
        raise VerificationError(f"{where}: record line is not in canonical (RFC 8785) form")
    if envelope.get("alg") != ALG:
        raise VerificationError(f"{where}: unsupported signature algorithm {envelope.get('alg')!r}")
    try:
        sig = base64.b64decode(envelope["sig"], validate=True)
        x5c = tuple(_certificate_der(c) for c in envelope.get("x5c", []))
        key_id = str(envelope["key_id"])
    except (KeyError, TypeError, ValueError) as exc:  # binascii.Error, and non-ASCII text in a base64 field
        raise VerificationError(f"{where}: envelope is malformed ({exc})") from exc
    signed = SignedRecord(body=body, sig=sig, key_id=key_id, x5c=x5c)
    signed.__dict__["record"] = record  # the cached_property, filled with what was just parsed and checked
    return signed
