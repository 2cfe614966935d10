"""Certificate revocation lists (RFC 5280 CRLs) from the customs CA: read, check, look up.

A CRL file holds one or more PEM (or one DER) CRLs. Each must be signed by one of the CA certificates
the caller trusts (its issuer name is that CA's subject and the signature holds under its key); a CRL
nobody trusted signed is an error, never ignored. A certificate is revoked when a CRL of *its issuer*
lists its serial number. The time that counts is the earlier of the entry's revocation date and its
invalidity date (RFC 5280 5.3.2: when the key is known or suspected to have been compromised).

Revocation is never undone here: an expired CRL (past its nextUpdate) is still honoured, with a warning,
and a reloaded file that is broken keeps the revocations of the last good one.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from agent.core.errors import VerificationError

__all__ = ["CrlFile", "Revocations", "Revoked", "load_crls", "parse_crls", "parse_crls_unchecked"]

log = logging.getLogger(__name__)
_PEM_BEGIN = b"-----BEGIN X509 CRL-----"


@dataclass(frozen=True)
class Revoked:
    """One revoked certificate: from ``since`` on, nothing it signs is to be trusted."""

    serial: int
    revoked_at: dt.datetime
    reason: str | None
    invalid_since: dt.datetime | None = None

    @property
    def since(self) -> dt.datetime:
        if self.invalid_since is not None and self.invalid_since < self.revoked_at:
            return self.invalid_since
        return self.revoked_at

    def describe(self) -> str:
        why = f" ({self.reason})" if self.reason else ""
        return f"certificate serial {self.serial:X} revoked from {self.since.isoformat()}{why}"


@dataclass(frozen=True)
class Revocations:
    """Every entry of the trusted CRLs, keyed by (issuer DER, serial)."""

    entries: dict[tuple[bytes, int], Revoked]
    issuers: tuple[str, ...]
    next_update: dt.datetime | None  # the earliest nextUpdate among the lists

    def revoked(self, cert: x509.Certificate) -> Revoked | None:
        """The entry revoking ``cert`` (matched by its issuer and serial), or None."""
        return self.entries.get((cert.issuer.public_bytes(), cert.serial_number))

    def __len__(self) -> int:
        return len(self.entries)

    def stale(self, now: dt.datetime | None = None) -> bool:
        return self.next_update is not None and (now or dt.datetime.now(dt.UTC)) > self.next_update


def _split(data: bytes) -> list[x509.CertificateRevocationList]:
    if _PEM_BEGIN not in data:
        return [x509.load_der_x509_crl(data)]
    out = []
    for part in data.split(_PEM_BEGIN)[1:]:
        out.append(x509.load_pem_x509_crl(_PEM_BEGIN + part))
    return out


def _entry(rev: x509.RevokedCertificate) -> Revoked:
    reason = invalid = None
    for ext in rev.extensions:
        if isinstance(ext.value, x509.CRLReason):
            reason = ext.value.reason.name
        elif isinstance(ext.value, x509.InvalidityDate):
            invalid = ext.value.invalidity_date_utc
    return Revoked(rev.serial_number, rev.revocation_date_utc, reason, invalid)


def parse_crls(data: bytes, anchors: Sequence[x509.Certificate], source: str = "CRL") -> Revocations:
    """Every CRL in ``data``, each checked against ``anchors``; VerificationError names ``source``."""
    if not anchors:
        raise VerificationError(f"{source}: a CRL is only honoured with the CA that signs it (no CA given)")
    return _collect(data, anchors, source)


def parse_crls_unchecked(data: bytes, source: str = "CRL") -> Revocations:
    """Every CRL in ``data`` without a signature check: only for a file trusted as much as the certificates
    beside it (a device's officer trust folder), where a CRL can only take trust away."""
    return _collect(data, None, source)


def _collect(data: bytes, anchors: Sequence[x509.Certificate] | None, source: str) -> Revocations:
    try:
        crls = _split(data)
    except ValueError as exc:
        raise VerificationError(f"{source}: not a PEM or DER certificate revocation list: {exc}") from None
    if not crls:
        raise VerificationError(f"{source}: holds no certificate revocation list")
    entries: dict[tuple[bytes, int], Revoked] = {}
    issuers: list[str] = []
    next_updates: list[dt.datetime] = []
    for crl in crls:
        signer = None if anchors is None else next(
            (ca for ca in anchors if ca.subject == crl.issuer and _signed_by(crl, ca)), None)
        if anchors is not None and signer is None:
            raise VerificationError(f"{source}: the CRL of {crl.issuer.rfc4514_string()!r} is not signed by "
                                    "any CA given (forged, or from another CA)")
        issuer = crl.issuer.public_bytes()
        issuers.append(crl.issuer.rfc4514_string())
        if crl.next_update_utc is not None:
            next_updates.append(crl.next_update_utc)
        try:
            for rev in crl:
                entries[(issuer, rev.serial_number)] = _entry(rev)
        except ValueError as exc:
            raise VerificationError(f"{source}: unreadable CRL entry: {exc}") from None
    return Revocations(entries, tuple(issuers), min(next_updates) if next_updates else None)


def _signed_by(crl: x509.CertificateRevocationList, ca: x509.Certificate) -> bool:
    try:
        return crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return False


def load_crls(path: Path, anchors: Sequence[x509.Certificate]) -> Revocations:
    """A CRL file checked against ``anchors``; VerificationError names the file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise VerificationError(f"{path}: cannot read the CRL: {exc.strerror or exc}") from None
    revs = parse_crls(data, anchors, str(path))
    if revs.stale():
        log.warning("%s: the CRL is past its next update (%s); publish a new one (`evidence-officer ca crl`)",
                    path, revs.next_update)
    return revs


class CrlFile:
    """A CRL file the customs CA republishes: re-read whenever the file changes (one ``stat`` per lookup).

    A new file that cannot be read or checked is logged as an error and the revocations already known are
    kept (a broken publication never un-revokes anybody). Not thread-safe; callers hold their own lock.
    """

    def __init__(self, path: Path, anchors: Iterable[x509.Certificate]) -> None:
        self.path = Path(path)
        self.anchors = list(anchors)
        self._stamp: tuple[int, int, int] | None = None
        self.current = load_crls(self.path, self.anchors)  # the first read must succeed: a usage error
        self._stamp = self._stat()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def revocations(self) -> Revocations:
        stamp = self._stat()
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                fresh = load_crls(self.path, self.anchors)
            except VerificationError as exc:
                log.error("%s; keeping the %d revocation(s) already known", exc, len(self.current))
            else:
                kept = set(self.current.entries) - set(fresh.entries)
                merged = {**{k: self.current.entries[k] for k in kept}, **fresh.entries}
                if kept:
                    log.warning("%s: %d revocation(s) known before are missing from the new CRL; still honoured",
                                self.path, len(kept))
                self.current = Revocations(merged, fresh.issuers, fresh.next_update)
                log.info("%s: %d revoked certificate(s)", self.path, len(self.current))
        return self.current

    def revoked(self, cert: x509.Certificate) -> Revoked | None:
        return self.revocations().revoked(cert)
