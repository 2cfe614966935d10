"""Signed officer commands: envelope format, trust store, replay cache.

Wire format (UTF-8 JSON on the device's command topic)::

    {"alg": "ES256", "key_id": <hex SHA-256 of the officer SPKI DER>, "sig": <base64 DER>,
     "body": {"typ": "evidence-command/1", "command": .., "args": {..}, "device": .., "officer": ..,
              "issued_ms": .., "expires_ms": .., "nonce": <hex>}}

The signature covers the RFC 8785 canonical bytes of ``body``; ``typ`` separates these signatures from
every other thing the same key might sign. The broker's ACL decides who may publish; this envelope decides
who may *command*: a key must be in the device's trust store, the body must name this device and that
officer, be fresh, and carry a nonce the device has never accepted (the replay cache survives restarts).
The dispatching controller lives in :mod:`agent.uplink.command_controller`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import rfc8785
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.core.clock import Clock
from agent.core.errors import CommandError, VerificationError
from agent.core.vocab import ID_RE as _ID_RE
from agent.core.vocab import NOTICE_COMMAND, VOICE_COMMANDS, ZOOM_COMMAND
from agent.signing.keys import key_id_of
from agent.signing.revocation import parse_crls_unchecked
from agent.signing.trust import verify_key_signature
from agent.wire.replay import ReplayCache as ReplayCache  # the verifier's store, re-exported

log = logging.getLogger(__name__)

COMMAND_TYP: Final = "evidence-command/1"
ALG: Final = "ES256"
COMMANDS: Final = frozenset(
    {"snapshot", "mark", "live.start", "live.stop", "live.keepalive", "status", "selftest",
     "inspection.start", "inspection.end", "inspection.decision", "inspection.report",
     NOTICE_COMMAND, ZOOM_COMMAND}) | frozenset(VOICE_COMMANDS)
LIVE_SESSION: Final = frozenset({"live.keepalive", "live.stop"})
VOICE_SESSION: Final = frozenset({"voice.keepalive", "voice.stop"})
_NONCE_RE = re.compile(r"^[0-9a-f]{32,128}$")
_HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
_BODY_KEYS: Final = frozenset(
    {"typ", "command", "args", "device", "officer", "issued_ms", "expires_ms", "nonce"})
_WIRE_KEYS: Final = frozenset({"alg", "key_id", "sig", "body"})
CRL_FILE: Final = "crl.pem"  # in the officer trust folder: the customs CA's CRL


class CommandRejected(CommandError):
    """A command the device refuses; ``code`` is the machine-readable reason sent back to the officer."""

    CODES: Final = frozenset({
        "too_large", "malformed", "unsigned", "untrusted", "bad_signature", "unauthorized", "wrong_device",
        "expired", "not_yet_valid", "bad_expiry", "replay", "unknown_command", "bad_args", "failed", "busy",
        "conflict",
    })

    def __init__(self, code: str, message: str) -> None:
        assert code in self.CODES, code
        super().__init__(f"{code}: {message}")
        self.code = code
        self.detail = message
        self.verified: VerifiedFields | None = None  # set once the officer's signature checked out


@dataclass(frozen=True)
class VerifiedFields:
    """Fields of a refused command whose signature verified: a reply may name them (never unverified ones)."""

    command: str
    nonce: str
    officer: str


def canonical(obj: Mapping[str, Any]) -> bytes:
    return rfc8785.dumps(obj)


# --------------------------------------------------------------------------- officer side: build and sign


def sign_command(
    private_key: ec.EllipticCurvePrivateKey, *, officer: str, device: str, command: str,
    args: Mapping[str, Any] | None, now_ms: int, ttl_s: float = 60.0, nonce: str | None = None,
) -> dict[str, Any]:
    """Build the wire object of a command (used by the officer CLI and by tests)."""
    body = {
        "typ": COMMAND_TYP, "command": command, "args": dict(args or {}), "device": device,
        "officer": officer, "issued_ms": now_ms, "expires_ms": now_ms + int(ttl_s * 1000),
        "nonce": nonce or secrets.token_hex(16),
    }
    sig = private_key.sign(canonical(body), ec.ECDSA(hashes.SHA256()))
    return {"alg": ALG, "key_id": key_id_of(private_key.public_key()),
            "sig": base64.b64encode(sig).decode(), "body": body}


# --------------------------------------------------------------------------- trust store


PERMISSIONS_FILE: Final = "permissions.json"


@dataclass(frozen=True)
class Officer:
    """One trusted officer key and the commands ``permissions.json`` grants it (empty: none).

    ``denied`` says why a command outside ``commands`` is refused, in words a technician can act on.
    """

    officer_id: str
    key_id: str
    public_key: ec.EllipticCurvePublicKey
    source: str
    not_before_ms: int | None = None
    not_after_ms: int | None = None
    commands: frozenset[str] = frozenset()
    denied: str = "not granted by the device's permissions.json"


class Permissions:
    """``permissions.json``: officer id (or ``"*"``: every trusted officer) -> list of command names.

    It grants only what it lists: an officer who is not listed (and no ``"*"`` entry) may send nothing;
    the command name ``"*"`` grants every command, and ``live.start`` brings the session's own
    ``live.keepalive``/``live.stop`` (``voice.start`` likewise its ``voice.keepalive``/``voice.stop``).
    A missing, unreadable or invalid file grants nothing,
    and ``problem`` says so in a line a technician can act on (``refusal``: the shorter words sent back to
    the officer).
    """

    def __init__(self, grants: Mapping[str, frozenset[str]], problem: str | None = None,
                 refusal: str | None = None) -> None:
        self.grants, self.problem, self.refusal = dict(grants), problem, refusal or problem

    @classmethod
    def load(cls, directory: Path) -> Permissions:
        path = directory / PERMISSIONS_FILE
        example = '{"officer-alice": ["*"], "officer-bob": ["status", "snapshot"]}'
        if not path.exists():
            return cls({}, f"this device has no {PERMISSIONS_FILE} in its officer trust store {directory}: "
                           f"it grants no command; list the officers there, e.g. {example}",
                       f"this device has no {PERMISSIONS_FILE}, so it grants no command (its technician lists "
                       f"officers in {PERMISSIONS_FILE} beside their certificates)")
        try:
            raw = json.loads(path.read_text(), object_pairs_hook=_no_duplicates)
            if not isinstance(raw, dict) or not all(
                isinstance(v, list) and all(isinstance(c, str) for c in v) for v in raw.values()
            ):
                raise ValueError("expected an object of officer id -> list of command names")
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            return cls({}, f"{path} is invalid ({exc}): it grants no command until it is fixed, e.g. {example}",
                       f"the device's {PERMISSIONS_FILE} is invalid, so it grants no command (its technician "
                       "fixes it)")
        grants: dict[str, frozenset[str]] = {}
        for officer_id, names in raw.items():
            unknown = set(names) - COMMANDS - {"*"}
            if unknown:
                log.warning("%s: %s lists unknown command(s) %s (ignored); known: %s", path, officer_id,
                            sorted(unknown), sorted(COMMANDS))
            granted = COMMANDS if "*" in names else frozenset(names) & COMMANDS
            if "live.start" in granted:  # a session needs its keepalives and stop (they act on own sessions only)
                granted |= LIVE_SESSION
            if "voice.start" in granted:  # the same for a voice session
                granted |= VOICE_SESSION
            grants[str(officer_id)] = granted
        return cls(grants)

    def for_officer(self, officer_id: str) -> tuple[frozenset[str], str]:
        """(granted commands, why anything else is refused)."""
        if self.refusal is not None:
            return frozenset(), self.refusal
        if officer_id in self.grants:
            return self.grants[officer_id], f"not granted to {officer_id} by the device's {PERMISSIONS_FILE}"
        if "*" in self.grants:
            return self.grants["*"], f"not granted by the \"*\" entry of the device's {PERMISSIONS_FILE}"
        return frozenset(), (f"{officer_id} is not listed in the device's {PERMISSIONS_FILE}: it grants only what "
                             "it lists; the technician adds the officer there")


class TrustStore:
    """A directory of officer certificates or public keys (``*.pem``) and its ``permissions.json``.

    A certificate's officer id is its subject CN; a bare public key's is its file stem. What each officer
    may send comes from :class:`Permissions` (fail closed: no file, no command). A ``crl.pem`` (the customs
    CA's CRL, trusted as the folder is: it only takes trust away) removes every officer certificate it lists;
    an unreadable one trusts no officer until it is fixed. The files are re-read whenever their names or
    contents change (checked at each lookup; a few small files), so revoking an officer is deleting or
    overwriting a file, and editing permissions.json takes effect. Extend it by overriding ``_admit``: it
    sees each loaded officer and may drop it.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()
        self._stamp: str | None = None
        self._by_key: dict[str, Officer] = {}
        self.problem: str | None = None  # why the store grants less than it could (for start-up logs)
        self._revoked: dict[str, str] = {}  # key id -> why that officer is no longer trusted

    def revoked(self, key_id: str) -> str | None:
        """Why a key found in the folder is not trusted (its certificate is on crl.pem), or None."""
        with self._lock:
            self._reload_if_changed()
            return self._revoked.get(key_id)

    def lookup(self, key_id: str) -> Officer | None:
        with self._lock:
            self._reload_if_changed()
            return self._by_key.get(key_id)

    def officers(self) -> list[Officer]:
        with self._lock:
            self._reload_if_changed()
            return list(self._by_key.values())

    def _files(self) -> list[Path]:
        """The files whose change reloads the store (a subclass may add its own)."""
        return [*self.directory.glob("*.pem"), self.directory / PERMISSIONS_FILE]

    def _fingerprint(self) -> str:
        """Digest of every file's name and content: an edit in place (same folder mtime) is a change too."""
        digest = hashlib.sha256()
        for path in sorted(self._files()):
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            digest.update(path.name.encode() + b"\0" + hashlib.sha256(data).digest())
        return digest.hexdigest()

    def _reload_if_changed(self) -> None:
        try:
            if not self.directory.is_dir():
                raise NotADirectoryError(str(self.directory))
            stamp = self._fingerprint()
        except OSError:
            if self._stamp is not None or self._by_key:
                log.warning("officer trust store %s is unreadable: trusting no officer", self.directory)
            self._stamp, self._by_key = None, {}
            self.problem = f"officer trust store {self.directory} is missing or unreadable: trusting no officer"
            return
        if stamp == self._stamp:
            return
        self._stamp = stamp
        perms = Permissions.load(self.directory)
        loaded: dict[str, Officer] = {}
        for path in sorted(self.directory.glob("*.pem")):
            if path.name == CRL_FILE:
                continue
            try:
                officer = self._admit(_load_officer(path, perms))
            except (OSError, ValueError) as exc:
                log.warning("officer trust store: skipping %s: %s", path, exc)
                continue
            if officer is None:
                continue
            if not officer.commands:
                log.warning("officer trust store: %s (%s) may send no command: %s", officer.officer_id, path.name,
                            officer.denied)
            loaded[officer.key_id] = officer
        self._by_key, self._revoked = _drop_revoked(self.directory / CRL_FILE, loaded)
        self.problem = perms.problem
        if perms.problem:
            log.error("%s", perms.problem)
        log.info("officer trust store %s: %d key(s)", self.directory, len(loaded))

    def _admit(self, officer: Officer) -> Officer | None:
        """Hook for further checks on a loaded officer (None drops it); the base store admits everyone."""
        return officer


def _drop_revoked(crl_path: Path, loaded: dict[str, Officer]) -> tuple[dict[str, Officer], dict[str, str]]:
    """(officers still trusted, key id -> why not) under the folder's crl.pem; fails closed on a bad one."""
    try:
        data = crl_path.read_bytes()
    except FileNotFoundError:
        return loaded, {}
    except OSError as exc:
        data = str(exc).encode()
    try:
        revs = parse_crls_unchecked(data, str(crl_path))
    except VerificationError as exc:
        log.warning("officer trust store: %s: trusting no officer until it is fixed", exc)
        return {}, {k: f"{crl_path} is unreadable: no officer is trusted" for k in loaded}
    kept: dict[str, Officer] = {}
    gone: dict[str, str] = {}
    for key_id, officer in loaded.items():
        entry = None
        try:
            data = Path(officer.source).read_bytes()
            if b"BEGIN CERTIFICATE" in data:
                entry = revs.revoked(x509.load_pem_x509_certificate(data))
        except (OSError, ValueError) as exc:  # changed under us: the next lookup reloads; trust it not now
            gone[key_id] = f"{officer.source} could not be checked against {crl_path}: {exc}"
            continue
        if entry is None:
            kept[key_id] = officer
        else:
            gone[key_id] = f"certificate of {officer.officer_id!r} was revoked ({entry.describe()})"
            log.warning("officer trust store: %s", gone[key_id])
    return kept, gone


def _load_officer(path: Path, perms: Permissions) -> Officer:
    data = path.read_bytes()
    nb = na = None
    if b"BEGIN CERTIFICATE" in data:
        cert = x509.load_pem_x509_certificate(data)
        cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        if not cns:
            raise ValueError("certificate has no subject CN (the officer id)")
        officer_id = str(cns[0].value)
        key = cert.public_key()
        nb = int(cert.not_valid_before_utc.timestamp() * 1000)
        na = int(cert.not_valid_after_utc.timestamp() * 1000)
    else:
        key = serialization.load_pem_public_key(data)  # type: ignore[assignment]
        officer_id = path.stem
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("not an ECDSA P-256 key")
    if not _ID_RE.match(officer_id):
        raise ValueError(f"officer id {officer_id!r} is not a plain identifier")
    allowed, denied = perms.for_officer(officer_id)
    return Officer(officer_id, key_id_of(key), key, str(path), nb, na, allowed, denied)


# --------------------------------------------------------------------------- device side: parse and verify


@dataclass(frozen=True)
class CommandRequest:
    """A verified, fresh, authorized command (everything a handler may rely on)."""

    command: str
    args: Mapping[str, Any]
    device: str
    officer: str
    key_id: str
    issued_ms: int
    expires_ms: int
    nonce: str
    wire: Mapping[str, Any]  # the verified envelope, kept so a "mark" can seal the officer's own words


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_wire(payload: bytes, max_bytes: int = 16_384) -> dict[str, Any]:
    """Decode the JSON object of an envelope, strictly; raises CommandRejected, nothing else."""
    if not isinstance(payload, bytes | bytearray):
        raise CommandRejected("malformed", "payload is not bytes")
    if len(payload) > max_bytes:
        raise CommandRejected("too_large", f"{len(payload)} bytes > limit {max_bytes}")
    try:
        obj = json.loads(bytes(payload).decode("utf-8"), object_pairs_hook=_no_duplicates,
                         parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CommandRejected("malformed", f"not a JSON object: {exc}") from None
    if not isinstance(obj, dict):
        raise CommandRejected("malformed", "envelope is not a JSON object")
    return obj


def _body_fields(body: Any) -> tuple[str, dict[str, Any], str, str, int, int, str]:
    if not isinstance(body, dict):
        raise CommandRejected("malformed", "body is not an object")
    missing, extra = _BODY_KEYS - body.keys(), body.keys() - _BODY_KEYS
    if missing or extra:
        raise CommandRejected("malformed",
                              f"body keys: missing {sorted(missing)}, unexpected {sorted(extra)}")
    if body["typ"] != COMMAND_TYP:
        raise CommandRejected("malformed", f"typ must be {COMMAND_TYP!r}")
    cmd, args, dev, off, iss, exp, nonce = (body[k] for k in
                                            ("command", "args", "device", "officer", "issued_ms",
                                             "expires_ms", "nonce"))
    for name, val in (("command", cmd), ("device", dev), ("officer", off), ("nonce", nonce)):
        if not isinstance(val, str):
            raise CommandRejected("malformed", f"{name} must be a string")
    if not isinstance(args, dict):
        raise CommandRejected("malformed", "args must be an object")
    for name, val in (("issued_ms", iss), ("expires_ms", exp)):
        if not isinstance(val, int) or isinstance(val, bool) or not 0 <= val < 2**53:
            raise CommandRejected("malformed", f"{name} must be a non-negative integer (ms since epoch)")
    if not _NONCE_RE.match(nonce):
        raise CommandRejected("malformed", "nonce must be 32-128 lowercase hex characters")
    return cmd, args, dev, off, iss, exp, nonce


class CommandVerifier:
    """Turns raw bytes into a CommandRequest or a CommandRejected with a precise code."""

    def __init__(self, device_id: str, trust: TrustStore, replay: ReplayCache, clock: Clock, *,
                 max_ttl_s: float = 300.0, skew_s: float = 30.0, max_bytes: int = 16_384) -> None:
        self.device_id, self.trust, self.replay, self.clock = device_id, trust, replay, clock
        self.max_ttl_ms, self.skew_ms, self.max_bytes = int(max_ttl_s * 1000), int(skew_s * 1000), max_bytes

    def verify(self, payload: bytes) -> CommandRequest:
        wire = parse_wire(payload, self.max_bytes)
        if "sig" not in wire or "key_id" not in wire:
            raise CommandRejected("unsigned", "envelope has no sig/key_id")
        if wire.keys() - _WIRE_KEYS or "body" not in wire:
            raise CommandRejected("malformed", f"envelope keys must be {sorted(_WIRE_KEYS)}")
        if wire.get("alg") != ALG:
            raise CommandRejected("malformed", f"alg must be {ALG!r}")
        key_id, sig_b64 = wire["key_id"], wire["sig"]
        if not isinstance(key_id, str) or not _HEX64_RE.match(key_id) or not isinstance(sig_b64, str):
            raise CommandRejected("malformed", "key_id must be 64 hex characters and sig a base64 string")
        cmd, args, dev, off, iss, exp, nonce = _body_fields(wire["body"])
        officer = self.trust.lookup(key_id)
        if officer is None:
            raise CommandRejected("untrusted", self.trust.revoked(key_id)
                                  or f"key {key_id[:16]}… is not in the officer trust store")
        try:
            sig = base64.b64decode(sig_b64, validate=True)
            signed = canonical(wire["body"])
        except (binascii.Error, ValueError, rfc8785.CanonicalizationError) as exc:
            raise CommandRejected("malformed", f"cannot check signature: {exc}") from None
        try:
            verify_key_signature(officer.public_key, sig, signed)
        except VerificationError:
            raise CommandRejected("bad_signature", "signature does not match the body") from None
        try:
            self._check(officer, cmd, dev, off, iss, exp, nonce, key_id)
        except CommandRejected as exc:
            if off == officer.officer_id:  # the signature verified and the key is this officer's
                exc.verified = VerifiedFields(cmd, nonce, off)
            raise
        return CommandRequest(cmd, args, dev, off, key_id, iss, exp, nonce, wire)

    def _check(self, officer: Officer, cmd: str, dev: str, off: str, iss: int, exp: int, nonce: str,
               key_id: str) -> None:
        """Everything after the signature: identity, validity, device, lifetime, permission, nonce."""
        now = self.clock.wall_ns() // 1_000_000
        if off != officer.officer_id:
            raise CommandRejected("unauthorized",
                                  f"key belongs to {officer.officer_id!r}, body names {off!r}")
        if (officer.not_before_ms is not None and now < officer.not_before_ms - self.skew_ms) or (
                officer.not_after_ms is not None and now > officer.not_after_ms):
            raise CommandRejected("untrusted", f"certificate of {off!r} is not valid now")
        if dev != self.device_id:
            raise CommandRejected("wrong_device", f"command is for {dev!r}, this is {self.device_id!r}")
        if exp <= iss or exp - iss > self.max_ttl_ms:
            raise CommandRejected("bad_expiry", f"lifetime must be in (0, {self.max_ttl_ms}] ms")
        if now > exp + self.skew_ms:
            raise CommandRejected("expired", f"expired {(now - exp) / 1000:.1f} s ago")
        if iss > now + self.skew_ms:
            raise CommandRejected("not_yet_valid", f"issued {(iss - now) / 1000:.1f} s in the future")
        if cmd not in COMMANDS:
            raise CommandRejected("unknown_command", f"{cmd[:40]!r} is not one of {sorted(COMMANDS)}")
        if cmd not in officer.commands:
            raise CommandRejected("unauthorized", f"{off} may not send {cmd}: {officer.denied}")
        if not self.replay.claim(nonce, key_id, exp, now, self.clock.mono_ns()):
            raise CommandRejected("replay", f"nonce {nonce[:16]}… was already used, or the command expires before "
                                            "commands this device has already forgotten (send a new one)")
