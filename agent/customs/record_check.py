"""The CPU side of storing a record, done before the store lock so that ``--share`` workers run it in parallel.

A record's checks need nothing stored: its size, its canonical JSON, seq/kind/media, that the topic's
device and site are the record's, its ES256 signature, and that its certificate chains to a trusted CA.
Together they were ~70 % of a record's cost (RFC 8785 in pure Python, ECDSA); the canonical form is now
checked by :func:`is_canonical` (C ``json`` plus the few cases where it and RFC 8785 may differ). The
ingest runs them for a whole batch first, then takes the store lock (shared by every worker of a group)
only for the decisions that need stored state: duplicate, fork, pinned certificate, chain neighbours.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from typing import Any

import rfc8785
from cryptography import x509

from agent.core.errors import VerificationError
from agent.customs.guard import Limits, Refused, check_json_size, check_kind, check_media, check_seq
from agent.signing.keys import key_id_of
from agent.signing.records import ALG, SignedRecord, parse_sidecar
from agent.signing.trust import verify_chain, verify_signature
from agent.wire.mqtt import Inbound
from agent.wire.topics import parse_device_topic

CERT_CACHE = 4096  # distinct certificate chains kept parsed (one per device in a region, with room)


@dataclass(frozen=True)
class CheckedRecord:
    """A record that passed every check that needs nothing stored."""

    site: str
    device: str
    signed: SignedRecord
    certs: tuple[x509.Certificate, ...]
    seq: int
    kind: str
    media: dict[str, Any] | None


class RecordChecker:
    """Stateless checks plus a cache of certificate chains already verified (a device sends the same one)."""

    def __init__(self, cas: list[x509.Certificate], limits: Limits) -> None:
        self.cas = cas
        self.limits = limits
        self._trusted: set[tuple[str, tuple[bytes, ...]]] = set()
        self._certs: dict[tuple[bytes, ...], tuple[list[x509.Certificate], str]] = {}

    def check(self, site: str, device: str, msg: Inbound) -> CheckedRecord:
        """Every check of one whole record message; raises Refused with the reason."""
        check_json_size(msg.payload, self.limits.max_record_bytes, self.limits, "record")
        try:
            signed = fast_sidecar(msg.payload, "record")
            record = signed.record
        except (VerificationError, ValueError) as exc:
            raise Refused(str(exc)) from exc
        seq, kind = check_seq(record.get("seq")), check_kind(record.get("kind"))
        media = check_media(record, seq, kind, self.limits)
        if record.get("device_id") != device or record.get("site_id") != site:
            raise Refused(f"record says device {str(record.get('device_id'))[:64]!r} at site "
                          f"{str(record.get('site_id'))[:64]!r} but came on the topic of {device} at {site}",
                          0x87, "wrong_device")
        if msg.prop("item") not in (None, signed.hash):
            raise Refused("record hash does not match the message's item property")
        try:
            certs, key_id = self._parsed(signed.x5c)
            verify_signature(certs[0], signed.sig, signed.body)
            if key_id != signed.key_id:
                raise VerificationError("record key_id is not the certificate's key")
        except (VerificationError, ValueError) as exc:
            raise Refused(f"record of {device}: {exc}", 0x83, "bad_signature") from exc
        chain_key = (device, signed.x5c)
        if chain_key not in self._trusted:
            try:
                verify_chain(certs, self.cas, device=device)
            except VerificationError as exc:
                raise Refused(f"record of {device}: {exc}", 0x87, "untrusted") from exc
            self._trusted.add(chain_key)
        return CheckedRecord(site, device, signed, tuple(certs), seq, kind, media)

    def _parsed(self, x5c: tuple[bytes, ...]) -> tuple[list[x509.Certificate], str]:
        """The envelope's certificates and the leaf's key id, parsed once per distinct chain (a bounded cache:
        a device sends the same chain every time; junk from an attacker only cycles it)."""
        hit = self._certs.get(x5c)
        if hit is None:
            certs = [x509.load_der_x509_certificate(der) for der in x5c]
            if not certs:
                raise VerificationError("record envelope carries no certificate")
            hit = (certs, key_id_of(certs[0].public_key()))  # type: ignore[arg-type]
            if len(self._certs) >= CERT_CACHE:
                self._certs.pop(next(iter(self._certs)))
            self._certs[x5c] = hit
        return hit

    def precheck(self, msg: Inbound) -> CheckedRecord | Refused | None:
        """For a whole record message: its result (or its refusal); None for anything checked under the lock
        (other channels, chunked records, and a failure that is not the record's fault)."""
        try:
            site, device, channel = parse_device_topic(msg.topic)
        except ValueError:
            return None
        if channel != "record" or msg.prop("index") is not None:
            return None
        try:
            return self.check(site, device, msg)
        except Refused as exc:
            return exc
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            return Refused(f"{type(exc).__name__}: {exc}", 0x99)
        except Exception:
            return None


# -- the canonical-form check without re-serialising in pure Python ---------------------------------------
_INT_MAX = 2**53 - 1  # RFC 8785 (I-JSON): integers beyond an IEEE double's exact range are refused
_ASTRAL = re.compile(rb"[\xf0-\xf4]")  # a UTF-8 lead byte of a code point above U+FFFF


class _Undecided(Exception):
    """The fast path cannot tell; rfc8785 decides."""


def _int(text: str) -> int:
    value = int(text)
    if not -_INT_MAX <= value <= _INT_MAX:
        raise _Undecided
    return value


def _float(text: str) -> float:
    value = float(text)
    try:  # the literal must be what RFC 8785 writes for it (json.dumps writes repr, which may differ)
        same = rfc8785.dumps(value) == text.encode()
    except (rfc8785.CanonicalizationError, ValueError):
        same = False
    if not same:
        raise _Undecided
    return value


_DECODER = json.JSONDecoder(parse_int=_int, parse_float=_float)
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False).encode


def _fast(body: bytes) -> Any:
    """The parsed value when ``body`` is certainly RFC 8785 canonical; raises _Undecided otherwise.

    C ``json.dumps`` (sorted keys, no spaces, UTF-8) writes the same bytes as RFC 8785 for strings (the
    same escapes: ``\\b \\f \\n \\r \\t \\" \\\\``, other controls as lowercase ``\\u00xx``),
    for integers within 2^53 and for ``true``/``false``/``null``. It may differ for floats (checked one
    by one as they are parsed), integers beyond 2^53 (RFC 8785 refuses them), lone surrogates (not
    encodable) and key order when a key holds a code point above U+FFFF (RFC 8785 sorts UTF-16 units,
    Python code points): all of those are left to rfc8785.
    """
    if not body.isascii() and _ASTRAL.search(body):
        raise _Undecided
    try:
        value = _DECODER.decode(body.decode("utf-8"))
        out = _ENCODE(value).encode("utf-8")
    except (ValueError, RecursionError, UnicodeError) as exc:
        raise _Undecided from exc
    if out != body:
        raise _Undecided
    return value


def is_canonical(body: bytes) -> bool:
    """True exactly when ``body`` is the RFC 8785 form of the JSON it holds (``rfc8785.dumps(json.loads(body))
    == body``), decided mostly without the pure-Python serialiser."""
    try:
        _fast(body)
        return True
    except _Undecided:
        pass
    try:
        return bool(rfc8785.dumps(json.loads(body)) == body)
    except (ValueError, RecursionError, UnicodeError, TypeError):
        return False


def fast_sidecar(data: bytes, where: str) -> SignedRecord:
    """``parse_sidecar`` for the usual, well-formed sidecar with the fast canonical check; anything else
    (and every refusal, so its message is the same) goes through ``parse_sidecar`` itself."""
    lines = data.split(b"\n")
    if len(lines) in (2, 3) and not any(lines[2:]):
        try:
            record = _fast(lines[0])
            envelope = json.loads(lines[1])
            if isinstance(record, dict) and isinstance(envelope, dict) and envelope.get("alg") == ALG:
                signed = SignedRecord(body=lines[0], sig=base64.b64decode(envelope["sig"], validate=True),
                                      key_id=str(envelope["key_id"]),
                                      x5c=tuple(base64.b64decode(c, validate=True) for c in envelope.get("x5c", [])))
                signed.__dict__["record"] = record  # parsed once (cached_property's slot)
                return signed
        except (_Undecided, ValueError, KeyError, TypeError, RecursionError):
            pass
    return parse_sidecar(data, where)
