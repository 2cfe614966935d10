"""The CPU side of storing a record, done before the store lock so that ``--share`` workers run it in parallel.

A record's checks need nothing stored: its size, its canonical JSON, seq/kind/media, that the topic's
device and site are the record's, its ES256 signature, and that its certificate chains to a trusted CA.
Together they were ~70 % of a record's cost (RFC 8785 in pure Python, ECDSA); the canonical form is now
checked by ``agent.signing.canonical`` (C ``json`` where it is byte-identical to RFC 8785). The
ingest runs them for a whole batch first, then takes the store lock (shared by every worker of a group)
only for the decisions that need stored state: duplicate, fork, pinned certificate, chain neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography import x509

from agent.core.errors import VerificationError
from agent.customs.guard import Limits, Refused, check_json_size, check_kind, check_media, check_seq
from agent.signing.keys import key_id_of
from agent.signing.records import SignedRecord, parse_sidecar
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
            signed = parse_sidecar(msg.payload, "record")
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
