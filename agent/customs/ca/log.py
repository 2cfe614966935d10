"""The CA's issuance log: ``issued.jsonl``, one JSON object a line, append-only and hash-chained.

Every operation (init, issue, revoke, crl) appends one entry; each entry carries ``prev``, the SHA-256 of
the previous line's bytes, so an edited, removed or reordered line breaks the chain, and ``sig``, the CA
key's ECDSA signature over the entry without it, so even the last line cannot be edited without the key
(``entries`` names the first bad line).
Lines are appended with O_APPEND and fsynced before the operation reports success. The log is the
auditable record; revocation and the CRL are computed from it.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from agent.core.errors import ConfigError, VerificationError
from agent.signing.keys import sign_with
from agent.signing.trust import verify_key_signature

GENESIS = "0" * 64
LOG_FILE = "issued.jsonl"


def _canonical(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class IssuanceLog:
    """Append and read the log of one CA folder."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LOG_FILE
        self.ca_path = Path(folder) / "ca.pem"

    def _check_sig(self, n: int, entry: dict[str, Any], key: object) -> None:
        body = {k: v for k, v in entry.items() if k != "sig"}
        try:
            verify_key_signature(key, base64.b64decode(str(entry.get("sig")), validate=True), _canonical(body))
        except (VerificationError, binascii.Error, ValueError):
            raise ConfigError(f"{self.path}:{n}: not signed by this CA (the line was edited)") from None

    def entries(self) -> Iterator[dict[str, Any]]:
        """Every entry, checked against the chain; ConfigError names the first bad line."""
        prev = GENESIS
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return
        try:
            key = x509.load_pem_x509_certificate(self.ca_path.read_bytes()).public_key()
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.ca_path}: cannot read the CA certificate to check the log: {exc}") from None
        for n, line in enumerate(lines, 1):
            try:
                entry = json.loads(line)
            except ValueError:
                raise ConfigError(f"{self.path}:{n}: not a JSON line (the log was edited)") from None
            if not isinstance(entry, dict) or entry.get("prev") != prev:
                raise ConfigError(f"{self.path}:{n}: breaks the hash chain (a line was edited, removed or "
                                  "reordered)")
            self._check_sig(n, entry, key)
            prev = hashlib.sha256(line).hexdigest()
            yield entry

    def _last_hash(self) -> str:
        last = GENESIS
        for _ in self.entries():  # checks the whole chain before anything is added to it
            pass
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return last
        return hashlib.sha256(lines[-1]).hexdigest() if lines else last

    def append(self, op: str, signer: ec.EllipticCurvePrivateKey, **fields: Any) -> dict[str, Any]:
        """Add one entry (its time, the previous line's hash, the CA's signature), durable before returning."""
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # one operation at a time: the chain has one end
            entry = {"op": op, "time": _now(), **fields, "prev": self._last_hash()}
            entry["sig"] = base64.b64encode(sign_with(signer, _canonical(entry))).decode()
            line = _canonical(entry) + b"\n"
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        return entry
