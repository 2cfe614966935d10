"""What the service needs before it starts, checked without starting it.

`check-config` (and so systemd's ExecStartPre), `selftest` and `run` itself use these checks, so a
technician's mistake -- a missing or unreadable file, a certificate for another key or another device,
one without the extended key usages mutual TLS and C2PA need, an expired one -- is one line naming the
file and what is wrong, before the service restart-loops on it.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.core.errors import AgentError
from agent.device.config import AgentConfig
from agent.signing.keys import CA_FILE, CERT_FILE, KEY_FILE, key_id_of, load_p256_key

EXPIRY_WARN_DAYS = 30
EKU_NAMES = {ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth (mutual TLS to the broker)",
             ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection (C2PA Content Credentials)"}


@dataclass(frozen=True)
class Problem:
    """One finding; ``fatal`` ones stop check-config (exit 2), selftest (FAIL) and run (exit 2)."""

    fatal: bool
    text: str


def _readable(path: Path, what: str) -> Problem | None:
    if not path.exists():
        return Problem(True, f"{what} {path} does not exist")
    if not path.is_file():
        return Problem(True, f"{what} {path} is not a file")
    if not os.access(path, os.R_OK):
        return Problem(True, f"{what} {path} is not readable by this user (uid {os.getuid()})")
    return None


def _load_cert(path: Path, what: str) -> tuple[x509.Certificate | None, Problem | None]:
    missing = _readable(path, what)
    if missing is not None:
        return None, missing
    try:
        return x509.load_pem_x509_certificate(path.read_bytes()), None
    except ValueError as exc:
        return None, Problem(True, f"{what} {path} is not a PEM certificate: {exc}")


def check_certificate(cert: x509.Certificate, path: Path, device_id: str, *, c2pa: bool,
                      now: dt.datetime | None = None) -> list[Problem]:
    """CN equals device.id, the EKUs the device needs, and the validity period."""
    out: list[Problem] = []
    cns = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if cns != [device_id]:
        out.append(Problem(True, f"certificate {path} is for CN={','.join(cns) or '(none)'} but device.id is "
                                 f"{device_id!r}: the broker would refuse every item (Not authorized)"))
    try:
        ekus = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        ekus = set()
    needed = [ExtendedKeyUsageOID.CLIENT_AUTH] + ([ExtendedKeyUsageOID.EMAIL_PROTECTION] if c2pa else [])
    lacking = [EKU_NAMES[o] for o in needed if o not in ekus]
    if lacking:
        out.append(Problem(True, f"certificate {path} lacks the extended key usage {' and '.join(lacking)}; "
                                 "ask the customs CA for a device certificate with it"))
    now = now or dt.datetime.now(dt.UTC)
    if cert.not_valid_after_utc <= now:
        out.append(Problem(True, f"certificate {path} expired on {cert.not_valid_after_utc:%Y-%m-%d}"))
    elif cert.not_valid_before_utc > now:
        out.append(Problem(True, f"certificate {path} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} "
                                 "UTC (is the clock right?)"))
    elif (cert.not_valid_after_utc - now).days < EXPIRY_WARN_DAYS:
        out.append(Problem(False, f"certificate {path} expires on {cert.not_valid_after_utc:%Y-%m-%d}: renew it"))
    return out


def check_identity_files(cfg: AgentConfig) -> list[Problem]:
    """device.key, device.pem, ca.pem: present, readable, the certificate is for this key and device."""
    key_dir = cfg.identity.key_dir
    key_path, cert_path = key_dir / KEY_FILE, key_dir / CERT_FILE
    out = [p for p in (_readable(key_path, "device key"), _readable(key_dir / CA_FILE, "CA chain")) if p]
    cert, problem = _load_cert(cert_path, "device certificate")
    if problem is not None:
        out.append(problem)
    if out or cert is None:
        return out
    try:
        key = load_p256_key(key_path)
    except AgentError as exc:
        return [Problem(True, str(exc))]
    if key_id_of(cert.public_key()) != key_id_of(key.public_key()):  # type: ignore[arg-type]
        return [Problem(True, f"certificate {cert_path} does not match the key {key_path}")]
    c2pa = cfg.video.enabled and cfg.video.c2pa.enabled and (cfg.video.c2pa.video or cfg.video.c2pa.stills)
    return check_certificate(cert, cert_path, cfg.device.id, c2pa=c2pa)


def check_other_files(cfg: AgentConfig) -> list[Problem]:
    """TLS files of the uplink, the TSA roots, a camera or GPS replay file."""
    out: list[Problem] = []
    if cfg.uplink is not None and cfg.uplink.enabled and cfg.uplink.mqtt.tls is not None:
        tls = cfg.uplink.mqtt.tls
        out += [p for p in (_readable(Path(tls.ca_file), "uplink.mqtt.tls.ca_file"),) if p]
        if tls.cert_file is not None and tls.key_file is not None:
            cert, problem = _load_cert(Path(tls.cert_file), "uplink.mqtt.tls.cert_file")
            key_problem = _readable(Path(tls.key_file), "uplink.mqtt.tls.key_file")
            out += [p for p in (problem, key_problem) if p]
            if cert is not None and key_problem is None:
                try:
                    key = load_p256_key(Path(tls.key_file), "uplink.mqtt.tls.key_file")
                    if key_id_of(cert.public_key()) != key_id_of(key.public_key()):  # type: ignore[arg-type]
                        out.append(Problem(True, f"uplink.mqtt.tls.cert_file {tls.cert_file} does not match "
                                                 f"uplink.mqtt.tls.key_file {tls.key_file}"))
                except AgentError as exc:
                    out.append(Problem(True, str(exc)))
    admin = cfg.uplink.commands.trust_admin if cfg.uplink is not None and cfg.uplink.enabled else None
    if admin is not None:  # officer trust bundles: without this certificate no officer is ever trusted
        out += [p for p in (_load_cert(Path(admin), "uplink.commands.trust_admin")[1],) if p]
    if cfg.anchor.enabled and cfg.anchor.tsa.ca_file is not None:
        out += [p for p in (_readable(cfg.anchor.tsa.ca_file, "anchor.tsa.ca_file"),) if p]
    src = cfg.capture.source
    if cfg.capture.backend in ("opencv", "pyav") and isinstance(src, str) and not src.isdigit() and "://" not in src \
            and not src.startswith("/dev/video"):
        out += [p for p in (_readable(Path(src), "capture.source"),) if p]
    if cfg.gps.source == "file" and cfg.gps.file is not None:
        out += [p for p in (_readable(cfg.gps.file, "gps.file"),) if p]
    return out


def preflight(cfg: AgentConfig) -> list[Problem]:
    """Every check, fatal ones first."""
    found = check_identity_files(cfg) + check_other_files(cfg)
    return sorted(found, key=lambda p: not p.fatal)
