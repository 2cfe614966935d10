"""Voice wire format: signed groups of Opus packets, bound to one voice session (no numpy).

The framing is the live-frame one (:mod:`agent.wire.live_frames`: ``EVLF`` | version | header | signature |
data) on the session's own topic ``evidence/{site}/{device}/live/{session}``, where the session id is
``sha256(nonce)[:24]`` of the officer's ``voice.start`` nonce. The RFC 8785 header (``typ``
``evidence-audio/1``) binds device, site, session, nonce and officer, and carries the sequence number, the
direction (``site``: the site's microphone), the codec parameters, the capture time of the first sample
(wall and monotonic, integer microseconds), the byte length of each Opus packet and the SHA-256 of their
concatenation (the data). The device key signs the header bytes. The last message has ``typ``
``evidence-audio-end/1`` and names the sealed audio items.

Every value is checked against fixed limits before anything is decoded: packet count and sizes (RFC 6716
caps one Opus packet at 1275 bytes), frame duration, sample rate, channels and message size.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from agent.core.errors import VerificationError
from agent.core.vocab import AUDIO_DIRECTIONS
from agent.wire.live_frames import Signer, pack_message, unpack_message

AUDIO_TYP: Final = "evidence-audio/1"
AUDIO_END_TYP: Final = "evidence-audio-end/1"
#: The officer's voice for the site speaker, signed by the officer's key (via the console) on ``talk/{session}``.
TALK_TYP: Final = "evidence-talk/1"
CODEC: Final = "opus"
SAMPLE_RATE: Final = 48_000
FRAME_MS: Final = (10, 20, 40, 60)  # Opus frame durations a session may use
MAX_OPUS_PACKET: Final = 1275  # RFC 6716 section 3.2.1
MAX_PACKETS: Final = 50  # per message: at most a second of 20 ms frames
MAX_HEADER: Final = 4096
MAX_MESSAGE: Final = MAX_HEADER + 128 + MAX_PACKETS * MAX_OPUS_PACKET


def pack_audio(header: Mapping[str, Any], signer: Signer, packets: list[bytes]) -> bytes:
    """Sign ``header`` (which must already carry ``packets`` lengths and ``data_sha256``) with the data."""
    return pack_message(header, signer, b"".join(packets))


def audio_header(base: Mapping[str, Any], packets: list[bytes], *, seq: int, frame_ms: int, bitrate_kbps: int,
                 capture_wall_us: int, capture_mono_us: int, direction: str = "site") -> dict[str, Any]:
    data = b"".join(packets)
    return {**base, "typ": AUDIO_TYP, "seq": seq, "direction": direction, "codec": CODEC,
            "sample_rate": SAMPLE_RATE, "channels": 1, "frame_ms": frame_ms, "bitrate_kbps": bitrate_kbps,
            "capture_wall_us": capture_wall_us, "capture_mono_us": capture_mono_us,
            "packets": [len(p) for p in packets], "data_sha256": hashlib.sha256(data).hexdigest()}


@dataclass(frozen=True)
class VerifiedAudio:
    header: dict[str, Any]
    packets: list[bytes]
    end: bool


def verify_audio(payload: bytes, key: ec.EllipticCurvePublicKey, *, device: str, session: str,
                 nonce: str, typ: str = AUDIO_TYP) -> VerifiedAudio:
    """Size, signature, binding to this session, then the shape and the data hash. ``typ``: AUDIO_TYP (the
    officer checks the device's audio; an AUDIO_END_TYP message too) or TALK_TYP (the device checks the
    officer's voice; no end message)."""
    if len(payload) > MAX_MESSAGE:
        raise VerificationError(f"audio message of {len(payload)} bytes exceeds {MAX_MESSAGE}")
    head, sig, data = unpack_message(payload)
    if len(head) > MAX_HEADER:
        raise VerificationError(f"audio header of {len(head)} bytes exceeds {MAX_HEADER}")
    try:
        key.verify(sig, head, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise VerificationError("audio signature does not match") from None
    try:
        header = json.loads(head)
    except ValueError:
        raise VerificationError("audio header is not JSON") from None
    allowed = (AUDIO_TYP, AUDIO_END_TYP) if typ == AUDIO_TYP else (typ,)
    if not isinstance(header, dict) or header.get("typ") not in allowed:
        raise VerificationError("audio header has an unknown typ")
    for name, want in (("device", device), ("session", session), ("nonce", nonce)):
        if header.get(name) != want:
            raise VerificationError(f"audio {name} is {str(header.get(name))[:80]!r}, expected {want!r}")
    if header["typ"] == AUDIO_END_TYP:
        if data:
            raise VerificationError("an audio end message carries no data")
        return VerifiedAudio(header, [], True)
    return VerifiedAudio(header, split_packets(header, data), False)


class Pacing:
    """Refuses audio arriving faster than real time beyond a burst allowance (a flood is refused, not queued).

    Times are the receiver's monotonic microseconds."""

    def __init__(self, burst_s: float = 2.0) -> None:
        self.burst_us = int(burst_s * 1e6)
        self._audio_us = 0
        self._first_us: int | None = None

    def admit(self, audio_us: int, now_mono_us: int) -> None:
        if self._first_us is None:
            self._first_us = now_mono_us
        total = self._audio_us + audio_us
        if total > now_mono_us - self._first_us + self.burst_us:
            raise VerificationError("more audio than real time: flood refused")
        self._audio_us = total


def check_fresh(capture_wall_us: int, now_wall_us: int, max_age_s: float, max_skew_s: float) -> float:
    """Age in seconds of audio captured at ``capture_wall_us``; VerificationError when not live."""
    age_s = (now_wall_us - capture_wall_us) / 1e6
    if age_s > max_age_s:
        raise VerificationError(f"audio captured {age_s:.1f} s ago: not live")
    if age_s < -max_skew_s:
        raise VerificationError(f"audio capture time is {-age_s:.1f} s in the future")
    return age_s


def split_packets(h: dict[str, Any], data: bytes) -> list[bytes]:
    """Check the signed shape against the limits and cut ``data`` into its Opus packets."""
    if not _int(h.get("seq")) or h["seq"] < 0:
        raise VerificationError("audio seq is not a non-negative integer")
    if h.get("codec") != CODEC or h.get("sample_rate") != SAMPLE_RATE or h.get("channels") != 1:
        raise VerificationError("audio must be mono Opus at 48 kHz")
    if h.get("frame_ms") not in FRAME_MS:
        raise VerificationError(f"audio frame_ms must be one of {FRAME_MS}")
    if h.get("direction") not in AUDIO_DIRECTIONS:
        raise VerificationError(f"audio direction must be one of {AUDIO_DIRECTIONS}")
    for name in ("capture_wall_us", "capture_mono_us"):
        if not _int(h.get(name)) or h[name] < 0:
            raise VerificationError(f"audio {name} is not a non-negative integer")
    sizes = h.get("packets")
    if not isinstance(sizes, list) or not 0 < len(sizes) <= MAX_PACKETS:
        raise VerificationError(f"audio message must list 1..{MAX_PACKETS} packets")
    if not all(_int(n) and 0 < n <= MAX_OPUS_PACKET for n in sizes):
        raise VerificationError(f"audio packet sizes must be 1..{MAX_OPUS_PACKET} bytes")
    if sum(sizes) != len(data):
        raise VerificationError(f"audio packets add up to {sum(sizes)} bytes, the message carries {len(data)}")
    if h.get("data_sha256") != hashlib.sha256(data).hexdigest():
        raise VerificationError("audio bytes do not match the signed hash")
    out: list[bytes] = []
    pos = 0
    for n in sizes:
        packet = data[pos:pos + n]
        if opus_duration_us(packet) != h["frame_ms"] * 1000:
            raise VerificationError(f"audio packet {len(out)} is not one {h['frame_ms']} ms Opus packet")
        out.append(packet)
        pos += n
    return out


_FRAME_US = (10_000, 20_000, 40_000, 60_000) * 3 + (10_000, 20_000) * 2 + (2_500, 5_000, 10_000, 20_000) * 4


def opus_duration_us(packet: bytes) -> int | None:
    """The duration an Opus packet's TOC byte declares (RFC 6716 section 3.1), None when it is malformed."""
    if not packet:
        return None
    toc = packet[0]
    frame, code = _FRAME_US[toc >> 3], toc & 3
    if code == 0:
        return frame
    if code in (1, 2):
        return 2 * frame if len(packet) >= 2 else None
    if len(packet) < 2:
        return None
    count = packet[1] & 0x3F
    return count * frame if count > 0 and count * frame <= 120_000 else None


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)
