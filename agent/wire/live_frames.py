"""Live-frame wire format: framing, signing and the officer-side check (no numpy, no OpenCV).

One MQTT message per frame (QoS 0) on ``evidence/{site}/{device}/live/{session}``::

    b"EVLF" | u8 version (1) | u32 BE header length | header | u16 BE signature length | DER signature | JPEG

The header is RFC 8785 JSON (``typ`` ``evidence-live-frame/1``) binding the officer's command nonce, the
session id, the frame sequence, the capture time (wall + monotonic, integer microseconds: RFC 8785
numbers are doubles), the GPS reading, the time quality and the JPEG's SHA-256; the device key signs the
header bytes. Footage recorded earlier cannot pass as live: it cannot carry the nonce the officer just
chose. The session id is ``sha256(nonce)[:24]`` so the officer can subscribe before asking and lose no
first frame. The last message of a session has ``typ`` ``evidence-live-end/1`` and no JPEG. When a
session ends, its frame hashes are sealed as a "live" item, so what the officer saw is evidence too.

HD live video uses the same framing with ``typ`` ``evidence-live-fragment/1`` and fragmented-MP4 bytes
instead of a JPEG: ``kind`` ``init`` (``ftyp+moov``, once per encoder) or ``media`` (``moof+mdat`` of a
few hundred milliseconds of frames). The header also carries the capture time range, a list of
``[media_time_us, capture_wall_us]`` pairs (so a player can say when each shown frame was captured),
whether it starts with a keyframe, the codec string and ``data_sha256``.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from agent.core.errors import VerificationError
from agent.wire.commands import canonical

MAGIC: Final = b"EVLF"
VERSION: Final = 1
FRAME_TYP: Final = "evidence-live-frame/1"
END_TYP: Final = "evidence-live-end/1"
FRAGMENT_TYP: Final = "evidence-live-fragment/1"
MAX_FRAGMENT_FRAMES: Final = 240  # a signed header never lists more frames than this
_HEAD = struct.Struct(">4sBI")
_SIGLEN = struct.Struct(">H")


def session_id_for(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()[:24]


class Signer(Protocol):
    """What the framing needs of a key: the device's identity, or an officer's key (voice, agent.wire.audio_frames)."""

    def sign(self, data: bytes) -> bytes: ...


def pack_message(header: Mapping[str, Any], signer: Signer, jpeg: bytes = b"") -> bytes:
    head = canonical(header)
    sig = signer.sign(head)
    return b"".join((_HEAD.pack(MAGIC, VERSION, len(head)), head, _SIGLEN.pack(len(sig)), sig, jpeg))


def unpack_message(payload: bytes) -> tuple[bytes, bytes, bytes]:
    """Split into (header bytes, signature, jpeg); VerificationError if the framing is wrong."""
    if len(payload) < _HEAD.size + _SIGLEN.size:
        raise VerificationError("live message too short")
    magic, version, hlen = _HEAD.unpack_from(payload)
    if magic != MAGIC or version != VERSION:
        raise VerificationError("not a live frame (bad magic/version)")
    pos = _HEAD.size + hlen
    if pos + _SIGLEN.size > len(payload):
        raise VerificationError("live header length exceeds the message")
    (slen,) = _SIGLEN.unpack_from(payload, pos)
    end = pos + _SIGLEN.size + slen
    if end > len(payload):
        raise VerificationError("live signature length exceeds the message")
    return payload[_HEAD.size:pos], payload[pos + _SIGLEN.size:end], payload[end:]


@dataclass(frozen=True)
class VerifiedFrame:
    header: dict[str, Any]
    jpeg: bytes  # the JPEG, or the fMP4 bytes of a fragment
    end: bool

    @property
    def data(self) -> bytes:
        return self.jpeg

    @property
    def fragment(self) -> bool:
        return self.header.get("typ") == FRAGMENT_TYP


def verify_message(payload: bytes, device_key: ec.EllipticCurvePublicKey, *, device: str, session: str,
                   nonce: str) -> VerifiedFrame:
    """Officer side: signature, binding to *this* request (nonce, session, device) and JPEG hash."""
    head, sig, jpeg = unpack_message(payload)
    try:
        device_key.verify(sig, head, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise VerificationError("live frame signature does not match") from None
    header = json.loads(head)
    if not isinstance(header, dict) or header.get("typ") not in (FRAME_TYP, FRAGMENT_TYP, END_TYP):
        raise VerificationError("live header has an unknown typ")
    for key, want in (("device", device), ("session", session), ("nonce", nonce)):
        if header.get(key) != want:
            raise VerificationError(f"live frame {key} is {header.get(key)!r}, expected {want!r}")
    end = header["typ"] == END_TYP
    if header["typ"] == FRAGMENT_TYP:
        _check_fragment_header(header)
        if header.get("data_sha256") != hashlib.sha256(jpeg).hexdigest():
            raise VerificationError("fragment bytes do not match the signed hash")
    elif not end and header.get("jpeg_sha256") != hashlib.sha256(jpeg).hexdigest():
        raise VerificationError("JPEG does not match the signed hash")
    return VerifiedFrame(header, jpeg, end)


def _check_fragment_header(h: dict[str, Any]) -> None:
    """Shapes a player relies on: a device could sign nonsense, the officer side must not trust it blindly."""
    if h.get("kind") not in ("init", "media"):
        raise VerificationError(f"fragment kind {h.get('kind')!r} is neither init nor media")
    if not isinstance(h.get("seq"), int) or h["seq"] < 0:
        raise VerificationError("fragment seq is not a non-negative integer")
    if h["kind"] == "init":
        return
    frames = h.get("frames")
    if not isinstance(frames, list) or not 0 < len(frames) <= MAX_FRAGMENT_FRAMES or not all(
            isinstance(f, list) and len(f) == 2 and all(isinstance(x, int) for x in f) for f in frames):
        raise VerificationError(f"fragment frames must be 1..{MAX_FRAGMENT_FRAMES} [media_us, wall_us] pairs")
    start, end = h.get("capture_start_wall_us"), h.get("capture_end_wall_us")
    if not isinstance(start, int) or not isinstance(end, int) or not start <= end:
        raise VerificationError("fragment capture time range is missing or reversed")
    if frames[0][1] != start or frames[-1][1] != end:
        raise VerificationError("fragment capture time range does not match its frames")
