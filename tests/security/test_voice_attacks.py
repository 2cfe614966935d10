"""Attacks on the voice stream, written first: nothing but this device's signed audio for this session plays."""

from __future__ import annotations

import hashlib
import json
import secrets

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from agent.core.clock import ManualClock
from agent.core.errors import VerificationError
from agent.customs.console.voice import AudioChecker
from agent.signing.keys import DeviceIdentity
from agent.wire.audio_frames import MAX_MESSAGE, MAX_OPUS_PACKET, MAX_PACKETS, audio_header, pack_audio, verify_audio
from agent.wire.live_frames import pack_message, session_id_for, unpack_message
from tests.support.voice import DEVICE, Sent, speak, start, tone, voice_manager


def device_key(identity: DeviceIdentity) -> ec.EllipticCurvePublicKey:
    key = identity.cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


@pytest.fixture
def stream(identity: DeviceIdentity, manual_clock: ManualClock) -> tuple[str, list[bytes]]:
    """(nonce, the signed audio messages of one real session)."""
    sent = Sent()
    mgr = voice_manager(identity, manual_clock, sent)
    req, _ = start(mgr)
    speak(mgr, manual_clock, tone(440, 1.0))
    return req.nonce, [m for _, m, _ in sent.msgs]


def checker(identity: DeviceIdentity, nonce: str, **kw: float) -> AudioChecker:
    return AudioChecker(DEVICE, session_id_for(nonce), nonce, device_key(identity), **kw)  # type: ignore[arg-type]


def now_us(clock: ManualClock) -> int:
    return clock.wall_ns() // 1000


def test_genuine_stream_passes(identity: DeviceIdentity, manual_clock: ManualClock,
                               stream: tuple[str, list[bytes]]) -> None:
    nonce, msgs = stream
    c = checker(identity, nonce)
    assert len(msgs) == 10  # 1 s of 20 ms frames, 5 per message
    for i, m in enumerate(msgs):
        verdict, h, packets = c.check(m, now_us(manual_clock), 10_000_000 + i * 100_000)
        assert verdict == "pass" and len(packets) == 5 and h["seq"] == i


def test_forged_and_unsigned_audio_refused(identity: DeviceIdentity, manual_clock: ManualClock,
                                           stream: tuple[str, list[bytes]]) -> None:
    nonce, msgs = stream
    head, sig, data = unpack_message(msgs[0])
    other = ec.generate_private_key(ec.SECP256R1())

    class Forger:
        key_id = "f" * 64

        def sign(self, data: bytes) -> bytes:
            from cryptography.hazmat.primitives import hashes
            return other.sign(data, ec.ECDSA(hashes.SHA256()))

    forged = pack_message(json.loads(head), Forger(), data)  # type: ignore[arg-type]
    with pytest.raises(VerificationError, match="signature"):
        checker(identity, nonce).check(forged, now_us(manual_clock), 0)
    unsigned = msgs[0].replace(sig, b"\x00" * len(sig))
    with pytest.raises(VerificationError):
        checker(identity, nonce).check(unsigned, now_us(manual_clock), 0)
    tampered = msgs[0][:-1] + bytes([msgs[0][-1] ^ 1])  # one Opus bit changed: the signed hash no longer matches
    with pytest.raises(VerificationError, match="hash"):
        checker(identity, nonce).check(tampered, now_us(manual_clock), 0)


def test_audio_of_another_session_refused(identity: DeviceIdentity, manual_clock: ManualClock,
                                          stream: tuple[str, list[bytes]]) -> None:
    _nonce, msgs = stream
    mine = secrets.token_hex(16)
    with pytest.raises(VerificationError, match=r"session|nonce"):
        checker(identity, mine).check(msgs[0], now_us(manual_clock), 0)


def test_replayed_and_old_audio_refused(identity: DeviceIdentity, manual_clock: ManualClock,
                                        stream: tuple[str, list[bytes]]) -> None:
    nonce, msgs = stream
    c = checker(identity, nonce)
    c.check(msgs[1], now_us(manual_clock), 1_000_000)
    with pytest.raises(VerificationError, match="replayed"):
        c.check(msgs[0], now_us(manual_clock), 1_100_000)
    with pytest.raises(VerificationError, match="not live"):
        checker(identity, nonce).check(msgs[2], now_us(manual_clock) + 60_000_000, 0)


def test_flood_faster_than_real_time_refused(identity: DeviceIdentity, manual_clock: ManualClock,
                                             stream: tuple[str, list[bytes]]) -> None:
    nonce, msgs = stream
    c = checker(identity, nonce, burst_s=0.25)
    refused = 0
    for m in msgs:  # one second of audio delivered at one instant
        try:
            c.check(m, now_us(manual_clock), 5_000_000)
        except VerificationError as exc:
            assert "flood" in str(exc)
            refused += 1
    assert c.passed <= 3 and refused >= 7


def _signed(identity: DeviceIdentity, nonce: str, opus: list[bytes], **changes: object) -> bytes:
    base = {"device": DEVICE, "site": "test-site", "session": session_id_for(nonce), "nonce": nonce,
            "officer": "officer-alice"}
    h = audio_header(base, opus, seq=0, frame_ms=20, bitrate_kbps=24, capture_wall_us=1, capture_mono_us=1)
    h.update(changes)
    return pack_audio(h, identity, opus)


def test_garbage_and_oversized_opus_refused_even_when_signed(identity: DeviceIdentity) -> None:
    """A compromised device could sign anything: the shape is still checked before any decoder sees it."""
    nonce = secrets.token_hex(16)
    key, sid = device_key(identity), session_id_for(nonce)

    def verify(msg: bytes) -> None:
        verify_audio(msg, key, device=DEVICE, session=sid, nonce=nonce)

    silk_20ms = bytes([0x08]) + b"\x00" * 30  # config 1: SILK NB 20 ms, one frame
    verify(_signed(identity, nonce, [silk_20ms]))  # the shape itself is fine
    with pytest.raises(VerificationError, match="not one 20 ms"):
        verify(_signed(identity, nonce, [bytes([0x18]) + b"\x00" * 30]))  # a 60 ms TOC in a 20 ms session
    with pytest.raises(VerificationError, match="not one 20 ms"):
        verify(_signed(identity, nonce, [bytes([0x0B, 0x00])]))  # code 3 with zero frames
    with pytest.raises(VerificationError, match="packet sizes"):
        verify(_signed(identity, nonce, [silk_20ms + b"\x00" * MAX_OPUS_PACKET]))
    with pytest.raises(VerificationError, match=r"1\.\.50 packets"):
        verify(_signed(identity, nonce, [silk_20ms] * (MAX_PACKETS + 1)))
    with pytest.raises(VerificationError, match="add up"):
        verify(_signed(identity, nonce, [silk_20ms], packets=[10]))
    with pytest.raises(VerificationError, match="mono Opus"):
        verify(_signed(identity, nonce, [silk_20ms], sample_rate=8000))
    with pytest.raises(VerificationError, match="seq"):
        verify(_signed(identity, nonce, [silk_20ms], seq=True))
    with pytest.raises(VerificationError, match="exceeds"):
        verify(b"EVLF" + b"\x00" * MAX_MESSAGE)
    with pytest.raises(VerificationError):
        verify(b"EVLF\x01\xff\xff\xff\xff")  # header length beyond the message


def test_video_fragment_is_not_audio(identity: DeviceIdentity) -> None:
    nonce = secrets.token_hex(16)
    h = {"typ": "evidence-live-fragment/1", "device": DEVICE, "session": session_id_for(nonce), "nonce": nonce,
         "data_sha256": hashlib.sha256(b"x").hexdigest()}
    with pytest.raises(VerificationError, match="unknown typ"):
        verify_audio(pack_message(h, identity, b"x"), device_key(identity), device=DEVICE,
                     session=session_id_for(nonce), nonce=nonce)
