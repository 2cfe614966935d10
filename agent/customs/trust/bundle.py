"""What goes into a trust bundle: the CA folder's current officers, their grants, its CRL; the next version.

Officers are read from the CA's issuance log (``issue`` entries with role ``officer``); a certificate revoked
in the log (published in a CRL or not yet) or expired is left out, and of several certificates of one
officer the newest is kept. Versions only grow: the next one is larger than every version this admin folder
published before and than the current Unix time in seconds.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent.core.errors import ConfigError
from agent.core.fsutil import atomic_write
from agent.customs.ca.folder import CaFolder
from agent.customs.trust.admin import AdminKey
from agent.wire.commands import COMMANDS
from agent.wire.trust_bundle import OfficerGrant, sign_bundle

log = logging.getLogger(__name__)

STATE_FILE: Final = "trust-state.json"
PUBLISHED: Final = "published"


def current_officers(ca: CaFolder, now: dt.datetime) -> dict[str, x509.Certificate]:
    """Officer id -> its newest certificate that is neither revoked nor expired."""
    entries = list(ca.log.entries())
    revoked = {e["serial"] for e in entries if e.get("op") == "revoke"}
    best: dict[str, x509.Certificate] = {}
    for e in entries:
        if e.get("op") != "issue" or e.get("role") != "officer" or e.get("serial") in revoked:
            continue
        try:
            cert = x509.load_pem_x509_certificate((ca.path / str(e["file"])).read_bytes())
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"{ca.path}: issued certificate of {e.get('identity')} unreadable: {exc}") from None
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            continue
        name = str(e["identity"])
        if name not in best or cert.not_valid_before_utc > best[name].not_valid_before_utc:
            best[name] = cert
    return best


def load_permissions(path: Path | None) -> dict[str, list[str]]:
    if path is None:
        return {}
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if not isinstance(raw, dict) or not all(isinstance(v, list) and all(isinstance(c, str) for c in v)
                                            for v in raw.values()):
        raise ConfigError(f"{path}: expected an object of officer id -> list of command names")
    for name, cmds in raw.items():
        unknown = set(cmds) - COMMANDS - {"*"}
        if unknown:
            raise ConfigError(f"{path}: {name}: unknown command(s) {sorted(unknown)}; known: {sorted(COMMANDS)}")
    return raw


def next_version(admin: AdminKey) -> int:
    try:
        last = int(json.loads((admin.folder / STATE_FILE).read_text())["version"])
    except FileNotFoundError:
        last = 0
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{admin.folder / STATE_FILE}: unreadable ({exc}); it holds the last published "
                          "version: restore it from the backup") from None
    return max(last + 1, int(time.time()))


def build(admin: AdminKey, ca: CaFolder, *, permissions: Mapping[str, list[str]], default: list[str],
          days: float) -> tuple[int, bytes, dict[str, list[str]]]:
    """(version, signed bytes, granted commands per officer); the version is recorded as used."""
    now = dt.datetime.now(dt.UTC)
    officers = current_officers(ca, now)
    for name in sorted(set(permissions) - set(officers)):
        log.warning("permissions name %s, which has no current officer certificate in %s (left out)",
                    name, ca.path)
    grants = {name: OfficerGrant(name, cert.public_bytes(serialization.Encoding.PEM).decode(),
                                 tuple(permissions.get(name, default)))
              for name, cert in officers.items()}
    try:
        crl = ca.crl_path.read_text()
    except FileNotFoundError:
        crl = None
    version = next_version(admin)
    now_ms = int(now.timestamp() * 1000)
    payload = sign_bundle(admin.key, admin=admin.name, version=version, officers=grants, crl_pem=crl,
                          issued_ms=now_ms, not_after_ms=now_ms + int(days * 86_400_000))
    atomic_write(admin.folder / PUBLISHED / f"v{version}.json", payload)
    atomic_write(admin.folder / STATE_FILE, json.dumps({"version": version}).encode())
    return version, payload, {n: list(g.commands) for n, g in grants.items()}
