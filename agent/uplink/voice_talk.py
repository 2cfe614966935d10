"""The officer's voice on the site speaker: officer-signed Opus packet groups, checked, played and sealed.

The console signs each group for its officer (``typ`` ``evidence-talk/1``) and publishes it on
``evidence/{site}/{device}/talk/{session}``. The device accepts a message only if it is signed by the key of
the officer who started this voice session (looked up in the officer trust store), names this device, session
and nonce, comes after every one accepted, is live (captured at most 15 s ago) and keeps to real time; then
it decodes the packets, plays them and records them (direction ``officer``): one sealed item per
push-to-talk spurt, or per ``segment_seconds``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec

from agent.audio.base import AudioSink
from agent.audio.opus import OpusDecoder
from agent.audio.recorder import SegmentRecorder
from agent.core.clock import Clock
from agent.core.errors import VerificationError
from agent.wire.audio_frames import TALK_TYP, Pacing, check_fresh, verify_audio

log = logging.getLogger(__name__)

MAX_AGE_S = 15.0
MAX_SKEW_S = 5.0
GAP_FRAMES = 5  # a pause longer than this many frames closes the sealed spurt


@dataclass
class TalkState:
    """One session's incoming officer voice."""

    device: str
    session: str
    nonce: str
    officer: str
    officer_key_id: str
    recorder: SegmentRecorder
    decoder: OpusDecoder = field(default_factory=OpusDecoder)
    pacing: Pacing = field(default_factory=Pacing)
    last_seq: int = -1
    next_wall_us: int | None = None
    accepted: int = 0
    refused: int = 0
    latencies_ms: list[float] = field(default_factory=list)

    def take(self, payload: bytes, key: ec.EllipticCurvePublicKey | None, clock: Clock,
             sink: AudioSink | None) -> None:
        """Check, play and record one message; VerificationError says why it is refused."""
        if key is None:
            raise VerificationError(f"officer key {self.officer_key_id[:12]}… is no longer trusted")
        v = verify_audio(payload, key, device=self.device, session=self.session, nonce=self.nonce, typ=TALK_TYP)
        h = v.header
        if h.get("key_id") != self.officer_key_id or h.get("officer") != self.officer:
            raise VerificationError("talk is not from the officer of this voice session")
        if h.get("direction") != "officer":
            raise VerificationError("talk direction must be officer")
        if h["seq"] <= self.last_seq:
            raise VerificationError(f"talk {h['seq']} replayed (already had up to {self.last_seq})")
        now_wall_us, now_mono_us = clock.wall_ns() // 1000, clock.mono_ns() // 1000
        check_fresh(h["capture_wall_us"], now_wall_us, MAX_AGE_S, MAX_SKEW_S)
        frame_us = h["frame_ms"] * 1000
        self.pacing.admit(len(v.packets) * frame_us, now_mono_us)
        pcm = [self.decoder.decode(p) for p in v.packets]  # libopus refusing a packet refuses the message
        self.last_seq = h["seq"]
        start = h["capture_wall_us"]
        if self.next_wall_us is not None and start - self.next_wall_us > GAP_FRAMES * frame_us:
            self.recorder.flush("pause")
        if self.recorder.full:
            self.recorder.flush("segment")
        for i, p in enumerate(v.packets):
            wall_us = start + i * frame_us
            self.recorder.add(p, wall_us * 1000, (now_mono_us - (now_wall_us - wall_us)) * 1000)
        self.recorder.message_sent(hashlib.sha256(payload).hexdigest())
        self.next_wall_us = start + len(v.packets) * frame_us
        if sink is not None:
            for block in pcm:
                sink.write(block)
        self.accepted += 1
        self.latencies_ms.append((clock.wall_ns() // 1000 - start) / 1000)
        if len(self.latencies_ms) > 10_000:
            del self.latencies_ms[:5000]

    def summary(self) -> str:
        lat = sorted(self.latencies_ms)
        if not lat:
            return f"officer voice: {self.accepted} message(s), {self.refused} refused"
        p50, p95 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.95))]
        return (f"officer voice: {self.accepted} message(s), {self.refused} refused, capture->speaker p50 "
                f"{p50:.0f} ms p95 {p95:.0f} ms")


def talk_state(*, device: str, session: str, nonce: str, officer: str, officer_key_id: str,
               recorder: SegmentRecorder) -> TalkState:
    return TalkState(device, session, nonce, officer, officer_key_id, recorder)


KeyLookup = Callable[[str], "ec.EllipticCurvePublicKey | None"]
