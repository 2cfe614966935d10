"""Files and folders `evidence-agent provision` writes: explicit modes whatever the umask, a backup before a
change, and the officer trust folder with its ``permissions.json`` (the device grants only what it lists).
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.core.errors import ConfigError
from agent.core.fsutil import atomic_write
from agent.core.vocab import ID_PATTERN
from agent.hostsetup.changes import Change
from agent.wire.commands import PERMISSIONS_FILE


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def _backup(path: Path) -> Path:
    candidate, n = path.with_name(f"{path.name}.bak-{_stamp()}"), 1
    while candidate.exists():
        candidate, n = path.with_name(f"{path.name}.bak-{_stamp()}.{n}"), n + 1
    atomic_write(candidate, path.read_bytes(), mode=path.stat().st_mode & 0o7777)
    return candidate


def put_file(path: Path, data: bytes, *, mode: int = 0o644, note: str = "",
             same: bool | None = None, backup: bool = True) -> Change:
    """Write only when different; keep the previous version as a backup."""
    if path.exists():
        if same if same is not None else path.read_bytes() == data:
            return Change("unchanged", str(path), note)
        if not backup:
            atomic_write(path, data, mode=mode)
            return Change("updated", str(path), note)
        saved = _backup(path)
        atomic_write(path, data, mode=mode)
        return Change("updated", str(path), f"{note}; previous saved as {saved.name}" if note else
                      f"previous saved as {saved.name}")
    atomic_write(path, data, mode=mode)
    return Change("created", str(path), note)


def ensure_dir(path: Path, mode: int) -> Change | None:
    """Create ``path`` (and missing parents, 0755) with exactly ``mode``, whatever the umask; an existing
    folder is only tightened (bits beyond ``mode`` removed), never loosened. None when nothing was done."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for p in reversed(missing):
        p.mkdir()
        os.chmod(p, mode if p == path else 0o755)
    if missing:
        return Change("created", str(path), f"folder, mode {mode:04o}")
    old = stat.S_IMODE(path.stat().st_mode)
    if old & ~mode:
        os.chmod(path, old & mode)
        return Change("updated", str(path), f"mode {old:04o} -> {old & mode:04o}")
    return None


def officer_cert(path: Path) -> tuple[str, bytes]:
    """(officer id = certificate CN, PEM) of an ``--officer`` file; ConfigError naming it otherwise."""
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"--officer {path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"--officer {path}: not a PEM certificate: {exc}") from None
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    officer_id = str(cns[0].value) if cns else None
    if officer_id is None or not re.match(ID_PATTERN, officer_id):
        raise ConfigError(f"--officer {path}: its CN {officer_id!r} is not an officer id "
                          "(evidence-officer keys init writes one)")
    if not isinstance(cert.public_key(), ec.EllipticCurvePublicKey):
        raise ConfigError(f"--officer {path}: not an ECDSA P-256 officer key")
    return officer_id, cert.public_bytes(serialization.Encoding.PEM)


ADMIN_CERT = "fleet-admin.pem"  # beside the config: the key that signs officer trust bundles


def admin_cert(path: Path) -> bytes:
    """The ``--trust-admin`` certificate's PEM; ConfigError naming it when it is not a P-256 certificate."""
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"--trust-admin {path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"--trust-admin {path}: not a PEM certificate: {exc}") from None
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ConfigError(f"--trust-admin {path}: not an ECDSA P-256 key (evidence-officer ca issue-admin makes one)")
    return cert.public_bytes(serialization.Encoding.PEM)


def ensure_officers(folder: Path, certs: list[str]) -> list[Change]:
    """Install each ``--officer`` certificate as ``<id>.pem`` and list it in ``permissions.json`` with every
    command; an officer already listed keeps what the file grants it. The device grants only what this file
    lists (no file: nothing), so it is always written, ``{}`` when no officer is given."""
    changes = []
    perms_path = folder / PERMISSIONS_FILE
    grants: dict[str, Any] = {}
    if perms_path.exists():
        try:
            grants = json.loads(perms_path.read_text())
            if not isinstance(grants, dict):
                raise ValueError("not a JSON object")
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ConfigError(f"{perms_path}: unreadable ({exc}); fix or move it, then re-run") from None
    added = []
    for path in certs:
        officer_id, pem = officer_cert(Path(path))
        changes.append(put_file(folder / f"{officer_id}.pem", pem, note=f"trusted officer {officer_id}"))
        if officer_id not in grants:
            grants[officer_id] = ["*"]
            added.append(officer_id)
    note = (f"grants every command to {', '.join(added)}" if added else
            "grants only what it lists" if grants else
            "grants no command yet: re-run with --officer OFFICER.pem, or list officers in it by hand")
    data = (json.dumps(grants, indent=2, sort_keys=True) + "\n").encode()
    same = perms_path.exists() and json.loads(perms_path.read_text()) == grants
    changes.append(put_file(perms_path, data, note=f"{PERMISSIONS_FILE}: {note}", same=same))
    return changes
