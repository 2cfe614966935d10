"""Revocation and the published CRL.

``revoke`` appends a ``revoke`` entry to the issuance log (serial, identity, reason, optional invalidity
date); ``publish`` signs a CRL (X.509 v2, CRLNumber, AuthorityKeyIdentifier, nextUpdate) listing every
revoked serial in the log and writes it atomically, so a broker, an ingest or a device reading the file
never sees half of it. Readers: agent/signing/revocation.py.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from agent.core.errors import ConfigError
from agent.core.fsutil import atomic_write
from agent.customs.ca.folder import CaFolder, serial_hex

REASONS = tuple(r.name for r in x509.ReasonFlags if r.name != "remove_from_crl")
_HEX = re.compile(r"^(0x)?[0-9A-Fa-f:]{1,64}$")


def reason_of(text: str) -> x509.ReasonFlags:
    """``key_compromise``, ``keyCompromise`` or ``key-compromise``; ConfigError lists the valid ones."""
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", text.strip()).replace("-", "_").lower()
    if snake not in REASONS:
        raise ConfigError(f"--reason {text!r}: one of {', '.join(REASONS)}")
    return x509.ReasonFlags[snake]


def _issued(folder: CaFolder) -> list[dict[str, Any]]:
    return [e for e in folder.log.entries() if e.get("op") == "issue"]


def _revoked(folder: CaFolder) -> dict[str, dict[str, Any]]:
    return {e["serial"]: e for e in folder.log.entries() if e.get("op") == "revoke"}


def targets(folder: CaFolder, target: str) -> list[tuple[str, str | None]]:
    """(serial, identity) to revoke for ``target``: an identity from the log (all its certificates), a
    certificate file this CA issued, or a serial number in hex."""
    issued = _issued(folder)
    by_id = [(e["serial"], e["identity"]) for e in issued if e.get("identity") == target]
    if by_id:
        return by_id
    path = Path(target)
    if path.is_file():
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except ValueError as exc:
            raise ConfigError(f"{path}: not a PEM certificate: {exc}") from None
        _, ca = folder.load()
        if cert.issuer != ca.subject:
            raise ConfigError(f"{path} was not issued by this CA ({ca.subject.rfc4514_string()})")
        cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        return [(serial_hex(cert.serial_number), str(cns[0].value) if cns else None)]
    if _HEX.match(target):
        serial = serial_hex(int(target.replace(":", "").removeprefix("0x"), 16))
        ident = next((e.get("identity") for e in issued if e["serial"] == serial), None)
        return [(serial, ident)]
    raise ConfigError(f"{target!r}: no certificate issued to that identity in {folder.log.path}, and not a "
                      "certificate file or a hexadecimal serial number")


def revoke(folder: CaFolder, target: str, reason: str, invalid_since: dt.datetime | None = None
           ) -> list[dict[str, Any]]:
    """Log the revocation of every certificate ``target`` names (those already revoked are skipped)."""
    flag = reason_of(reason)
    key, _ = folder.load()  # only the CA's operator revokes: the key must be here
    done = _revoked(folder)
    out = []
    for serial, ident in targets(folder, target):
        if serial in done:
            continue
        fields: dict[str, Any] = {"serial": serial, "identity": ident, "reason": flag.name}
        if invalid_since is not None:
            fields["invalid_since"] = invalid_since.isoformat()
        out.append(folder.log.append("revoke", key, **fields))
    return out


def publish(folder: CaFolder, out: Path | None = None, days: int = 30) -> tuple[Path, int]:
    """Sign and write the CRL (default ``<ca>/crl.pem``); returns (path, revoked count)."""
    key, ca = folder.load()
    now = dt.datetime.now(dt.UTC)
    revoked = _revoked(folder)
    number = 1 + sum(1 for e in folder.log.entries() if e.get("op") == "crl")
    b = (x509.CertificateRevocationListBuilder().issuer_name(ca.subject)
         .last_update(now - dt.timedelta(minutes=1)).next_update(now + dt.timedelta(days=days))
         .add_extension(x509.CRLNumber(number), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False))
    for serial, e in sorted(revoked.items()):
        entry = (x509.RevokedCertificateBuilder().serial_number(int(serial, 16))
                 .revocation_date(dt.datetime.fromisoformat(e["time"].replace("Z", "+00:00")))
                 .add_extension(x509.CRLReason(x509.ReasonFlags[e["reason"]]), critical=False))
        if e.get("invalid_since"):
            entry = entry.add_extension(x509.InvalidityDate(
                dt.datetime.fromisoformat(e["invalid_since"]).replace(tzinfo=None)), critical=False)
        b = b.add_revoked_certificate(entry.build())
    crl = b.sign(key, hashes.SHA256())
    path = out or folder.crl_path
    atomic_write(path, crl.public_bytes(serialization.Encoding.PEM), mode=0o644)
    folder.log.append("crl", key, number=number, revoked=len(revoked), path=str(path.resolve()),
                      next_update=(now + dt.timedelta(days=days)).isoformat())
    return path, len(revoked)
