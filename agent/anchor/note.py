"""C2SP signed-note and tlog-checkpoint.

The device signs checkpoints with its ECDSA P-256 key using signature type 0x02 of c2sp.org/signed-note (the
transparency-dev/witness convention): key ID = SHA-256(SPKI DER)[:4], signature = DER ECDSA/SHA-256 over the
note text. Ed25519 (type 0x01, key ID = SHA-256(name || 0x0A || 0x01 || key)[:4]) is verified too, so the
spec's and Go's published vectors check this code and other logs' notes can be read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from agent.core.errors import SigningError, VerificationError

SIG_ED25519 = 0x01
SIG_ECDSA = 0x02
_EM_DASH = "\u2014 "
MAX_SIGNATURES = 16


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: int
    sig: bytes  # without the 4-byte key ID


@dataclass(frozen=True)
class Note:
    text: str
    sigs: tuple[NoteSignature, ...]


def _valid_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def parse_note(data: bytes | str) -> Note:
    """Split a signed note into text and signature lines (no verification)."""
    try:
        s = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise VerificationError("signed note: not valid UTF-8") from exc
    if any(ord(c) < 0x20 and c != "\n" for c in s):
        raise VerificationError("signed note: contains control characters")
    if not s.endswith("\n"):
        raise VerificationError("signed note: does not end in a newline")
    cut = s.rfind("\n\n")
    if cut < 0:
        raise VerificationError("signed note: no blank line before the signatures")
    text, sig_block = s[: cut + 1], s[cut + 2 :]
    sigs: list[NoteSignature] = []
    for line in sig_block.split("\n")[:-1]:
        if not line.startswith(_EM_DASH):
            raise VerificationError(f"signed note: malformed signature line {line[:40]!r}")
        name, sep, b64 = line[len(_EM_DASH) :].partition(" ")
        if not sep or not _valid_name(name):
            raise VerificationError(f"signed note: malformed key name in {line[:40]!r}")
        try:
            raw = base64.b64decode(b64, validate=True)
        except binascii.Error as exc:
            raise VerificationError(f"signed note: signature of {name} is not base64") from exc
        if len(raw) < 5:
            raise VerificationError(f"signed note: signature of {name} too short")
        sigs.append(NoteSignature(name, struct.unpack(">I", raw[:4])[0], raw[4:]))
    if not sigs:
        raise VerificationError("signed note: no signatures")
    if len(sigs) > MAX_SIGNATURES:
        raise VerificationError("signed note: too many signatures")
    return Note(text, tuple(sigs))


def format_note(text: str, sigs: Sequence[NoteSignature]) -> str:
    if not text.endswith("\n"):
        raise SigningError("signed note: text must end in a newline")
    lines = [
        f"{_EM_DASH}{s.name} {base64.b64encode(struct.pack('>I', s.key_id) + s.sig).decode()}\n" for s in sigs
    ]
    return text + "\n" + "".join(lines)


# --- keys -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NoteVerifier:
    """A trusted key: name, key ID, and how to check a signature."""

    name: str
    key_id: int
    check: Callable[[bytes, bytes], bool]


def ecdsa_key_id(public_key: ec.EllipticCurvePublicKey) -> int:
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return int(struct.unpack(">I", hashlib.sha256(spki).digest()[:4])[0])


def ecdsa_verifier(name: str, public_key: ec.EllipticCurvePublicKey) -> NoteVerifier:
    def check(msg: bytes, sig: bytes) -> bool:
        try:
            public_key.verify(sig, msg, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True

    return NoteVerifier(name, ecdsa_key_id(public_key), check)


def ed25519_key_id(name: str, raw_public: bytes) -> int:
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([SIG_ED25519]) + raw_public).digest()
    return int(struct.unpack(">I", digest[:4])[0])


def parse_verifier_key(vkey: str) -> NoteVerifier:
    """``<name>+<hex key ID>+<base64(type || key)>``: Ed25519 (0x01) or ECDSA SPKI DER (0x02)."""
    name, _, rest = vkey.partition("+")
    hex_id, _, b64 = rest.partition("+")
    try:
        key_id = int(hex_id, 16)
        raw = base64.b64decode(b64, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise VerificationError(f"verifier key {vkey[:40]!r} is malformed") from exc
    if len(hex_id) != 8 or not _valid_name(name) or not raw:
        raise VerificationError(f"verifier key {vkey[:40]!r} is malformed")
    if raw[0] == SIG_ED25519 and len(raw) == 33:
        if ed25519_key_id(name, raw[1:]) != key_id:
            raise VerificationError(f"verifier key {name}: key ID does not match the key")
        pub = ed25519.Ed25519PublicKey.from_public_bytes(raw[1:])

        def check(msg: bytes, sig: bytes) -> bool:
            try:
                pub.verify(sig, msg)
            except InvalidSignature:
                return False
            return True

        return NoteVerifier(name, key_id, check)
    if raw[0] == SIG_ECDSA:
        key = serialization.load_der_public_key(raw[1:])
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise VerificationError(f"verifier key {name}: type 0x02 needs an ECDSA key")
        v = ecdsa_verifier(name, key)
        if v.key_id != key_id:
            raise VerificationError(f"verifier key {name}: key ID does not match the key")
        return v
    raise VerificationError(f"verifier key {name}: unsupported signature type {raw[0]:#04x}")


def ecdsa_verifier_key(name: str, public_key: ec.EllipticCurvePublicKey) -> str:
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    b64 = base64.b64encode(bytes([SIG_ECDSA]) + spki).decode()
    return f"{name}+{ecdsa_key_id(public_key):08x}+{b64}"


@dataclass(frozen=True)
class NoteSigner:
    """Signs note text as ``name``. ``sign`` is e.g. DeviceIdentity.sign (DER ECDSA P-256/SHA-256)."""

    name: str
    key_id: int
    sign: Callable[[bytes], bytes]

    @classmethod
    def ecdsa(cls, name: str, public_key: ec.EllipticCurvePublicKey, sign: Callable[[bytes], bytes]) -> NoteSigner:
        if not _valid_name(name):
            raise SigningError(f"signed note: invalid key name {name!r}")
        return cls(name, ecdsa_key_id(public_key), sign)

    @classmethod
    def from_private_key(cls, name: str, key: ec.EllipticCurvePrivateKey) -> NoteSigner:
        return cls.ecdsa(name, key.public_key(), lambda m: key.sign(m, ec.ECDSA(hashes.SHA256())))


def sign_note(text: str, signer: NoteSigner) -> str:
    sig = signer.sign(text.encode("utf-8"))
    return format_note(text, [NoteSignature(signer.name, signer.key_id, sig)])


def open_note(data: bytes | str, verifiers: Sequence[NoteVerifier]) -> Note:
    """Parse and verify: every signature by a known key must verify and at least one must exist."""
    note = parse_note(data)
    known = {(v.name, v.key_id): v for v in verifiers}
    msg = note.text.encode("utf-8")
    good = 0
    for s in note.sigs:
        v = known.get((s.name, s.key_id))
        if v is None:
            continue
        if not v.check(msg, s.sig):
            raise VerificationError(f"signed note: signature by {s.name}+{s.key_id:08x} is invalid")
        good += 1
    if not good:
        names = ", ".join(f"{s.name}+{s.key_id:08x}" for s in note.sigs)
        raise VerificationError(f"signed note: no signature from a trusted key (found {names})")
    return note


# --- checkpoint body ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Checkpoint:
    """c2sp.org/tlog-checkpoint body: origin, tree size, root hash."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def body(self) -> str:
        ext = "".join(f"{e}\n" for e in self.extensions)
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n{ext}"


def parse_checkpoint(text: str) -> Checkpoint:
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise VerificationError("checkpoint: needs origin, size and root lines ending in a newline")
    origin, size_s, root_s, *ext = lines[:-1]
    if not origin:
        raise VerificationError("checkpoint: empty origin")
    if not size_s.isdigit() or (size_s != "0" and size_s.startswith("0")):
        raise VerificationError(f"checkpoint: bad tree size {size_s!r}")
    try:
        root = base64.b64decode(root_s, validate=True)
    except binascii.Error as exc:
        raise VerificationError("checkpoint: root hash is not base64") from exc
    if len(root) != 32:
        raise VerificationError("checkpoint: root hash is not 32 bytes")
    if any(not e for e in ext):
        raise VerificationError("checkpoint: empty extension line")
    return Checkpoint(origin, int(size_s), root, tuple(ext))


def open_checkpoint(data: bytes | str, verifiers: Sequence[NoteVerifier], origin: str | None = None) -> Checkpoint:
    cp = parse_checkpoint(open_note(data, verifiers).text)
    if origin is not None and cp.origin != origin:
        raise VerificationError(f"checkpoint: origin {cp.origin!r}, expected {origin!r}")
    return cp
