"""Two-way voice on the device: voice.start / voice.stop / voice.keepalive, the site's microphone to the officer.

A session is started by a signed ``voice.start``; its id is ``sha256(nonce)[:24]`` and its audio goes to
``evidence/{site}/{device}/live/{session}`` (the device's own live topics, so the broker ACL needs nothing
new) as signed groups of Opus packets (:mod:`agent.wire.audio_frames`), bound to the officer's nonce. The
microphone is opened when the first session starts and closed after the last; one worker thread
(``voice-site``, supervised: a death ends the sessions, sealed, and the worker is restarted) reads it,
encodes once and signs per session. Everything the officer hears is also recorded and sealed as ``audio``
items (:class:`agent.audio.recorder.SegmentRecorder`). A session ends on ``voice.stop``, when keepalives stop
(the officer's page is gone), when its time is up, or at shutdown; its end message names the sealed items.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.audio.base import AudioBlock, AudioError, AudioSource, open_source
from agent.audio.opus import OpusEncoder
from agent.audio.recorder import SegmentRecorder
from agent.audio.settings import AudioConfig
from agent.core.clock import Clock
from agent.core.model import Moment, SealedItem
from agent.core.threads import Worker
from agent.uplink.command_controller import Handler, LiveSessionArgs, VoiceStartArgs
from agent.wire.audio_frames import AUDIO_END_TYP, audio_header, pack_audio
from agent.wire.commands import CommandRejected, CommandRequest
from agent.wire.live_frames import pack_message, session_id_for
from agent.wire.replies import DeviceSigner

log = logging.getLogger(__name__)

WORKER = "voice-site"


@dataclass
class VoiceSession:
    session: str
    officer: str
    officer_key_id: str
    nonce: str
    topic: str
    seconds: float
    deadline_mono: int
    last_keepalive_mono: int
    recorder: SegmentRecorder
    seq: int = 0
    pending: list[tuple[bytes, int, int]] = field(default_factory=list)  # (packet, wall_ns, mono_ns)
    bytes_sent: int = 0


class VoiceManager:
    """Voice sessions of one device; ``handlers()`` for the command controller, ``restart`` for the supervisor."""

    def __init__(self, cfg: AudioConfig, publish: Callable[..., None], signer: DeviceSigner, *, device_id: str,
                 site_id: str, topic_for: Callable[[str], str], clock: Clock, moment: Callable[[], Moment],
                 seal: Callable[..., SealedItem] | None,
                 source_factory: Callable[[int], AudioSource] | None = None) -> None:
        self.cfg, self.publish, self.signer, self.clock = cfg, publish, signer, clock
        self.device_id, self.site_id, self.topic_for, self.moment, self.seal = (
            device_id, site_id, topic_for, moment, seal)
        self._source_factory = source_factory or (lambda n: open_source(cfg, clock, n))
        self._lock = threading.RLock()  # guards sessions, the source and the encoder
        self._sessions: dict[str, VoiceSession] = {}
        self._source: AudioSource | None = None
        self._encoder: OpusEncoder | None = None
        self._worker: Worker | None = None
        self._closed = False
        self.frame_samples = 48_000 * cfg.frame_ms // 1000

    def handlers(self) -> dict[str, Handler]:
        return {"voice.start": self.start, "voice.stop": self.stop, "voice.keepalive": self.keepalive}

    # ---- commands (the command worker's thread)

    def start(self, request: CommandRequest, args: VoiceStartArgs) -> Mapping[str, Any]:
        c = self.cfg
        if not c.enabled:
            raise CommandRejected("unauthorized", "voice is disabled on this device ([audio] enabled = false)")
        sid = session_id_for(request.nonce)
        seconds = min(float(args.seconds or c.default_seconds), c.max_seconds)
        now = self.clock.mono_ns()
        with self._lock:
            if self._closed:
                raise CommandRejected("busy", "the device is shutting down")
            if len(self._sessions) >= c.max_sessions:
                raise CommandRejected("busy", f"{c.max_sessions} voice session(s) already running")
            if self._source is None:
                self._open()
            assert self._encoder is not None
            extra = {"session": sid, "officer": request.officer, "officer_key_id": request.key_id,
                     "nonce": request.nonce, "command": dict(request.wire)}
            rec = SegmentRecorder(direction="site", extradata=self._encoder.extradata,
                                  segment_seconds=c.segment_seconds, frame_ms=c.frame_ms, seal=self.seal,
                                  moment=self.moment, extra=extra)
            self._sessions[sid] = VoiceSession(
                session=sid, officer=request.officer, officer_key_id=request.key_id, nonce=request.nonce,
                topic=self.topic_for(sid), seconds=seconds, deadline_mono=now + int(seconds * 1e9),
                last_keepalive_mono=now, recorder=rec)
            self._ensure_worker()
        log.info("voice session %s started for %s: Opus %d kbit/s, %d ms frames, %.0f s", sid, request.officer,
                 c.bitrate_kbps, c.frame_ms, seconds)
        return {"session": sid, "topic": self.topic_for(sid), "codec": "opus", "sample_rate": 48_000,
                "channels": 1, "frame_ms": c.frame_ms, "bitrate_kbps": c.bitrate_kbps,
                "packets_per_message": c.packets_per_message, "seconds": seconds,
                "keepalive_timeout_s": c.keepalive_timeout_s, "key_id": self.signer.key_id}

    def stop(self, request: CommandRequest, args: LiveSessionArgs) -> Mapping[str, Any]:
        s = self._owned(request, args.session)
        items = self._end(s, "stop")
        return {"session": s.session, "messages": s.seq, "sealed": [i.seq for i in items]}

    def keepalive(self, request: CommandRequest, args: LiveSessionArgs) -> Mapping[str, Any]:
        s = self._owned(request, args.session)
        s.last_keepalive_mono = self.clock.mono_ns()
        return {"session": s.session, "messages": s.seq}

    def _owned(self, request: CommandRequest, sid: str) -> VoiceSession:
        with self._lock:
            s = self._sessions.get(sid)
        if s is None:
            raise CommandRejected("bad_args", f"no voice session {sid!r} is running")
        if s.officer_key_id != request.key_id:
            raise CommandRejected("unauthorized", f"voice session {sid} belongs to another officer")
        return s

    def active(self) -> list[str]:
        with self._lock:
            return list(self._sessions)

    # ---- the microphone

    def _open(self) -> None:
        source = self._source_factory(self.frame_samples)
        try:
            source.start()
        except AudioError as exc:
            raise CommandRejected("failed", f"the site microphone cannot be opened: {exc}") from None
        self._source = source
        self._encoder = OpusEncoder(self.cfg.bitrate_kbps, self.cfg.frame_ms)

    def _release(self) -> None:
        source, self._source, self._encoder = self._source, None, None
        if source is not None:
            try:
                source.close()
            except Exception:  # closing a failed device must not keep the session open
                log.exception("closing the site microphone failed")

    def _ensure_worker(self) -> None:
        if self._worker is None:
            self._worker = Worker(WORKER, self._run)
            self._worker.start()

    def _run(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            with self._lock:
                source = self._source
                if source is None:  # the last session ended; the next voice.start starts a new worker
                    if self._worker is not None and self._worker.stopping is stopping:
                        self._worker = None
                    return
            block = source.read(0.2)
            self._expire()
            if block is not None:
                self.step(block)

    def step(self, block: AudioBlock) -> None:
        """Encode one block once, then record it and send every full packet group, per session."""
        with self._lock:
            if self._encoder is None:
                return
            packets = self._encoder.encode(block.pcm)
            for s in list(self._sessions.values()):
                for p in packets:
                    s.pending.append((p, block.wall_ns, block.mono_ns))
                    s.recorder.add(p, block.wall_ns, block.mono_ns)
                if len(s.pending) >= self.cfg.packets_per_message:
                    self._send(s)
                    if s.recorder.full:
                        s.recorder.flush("segment")

    def _send(self, s: VoiceSession) -> None:
        if not s.pending:
            return
        packets = [p for p, _, _ in s.pending]
        _, wall, mono = s.pending[0]
        s.pending = []
        header = audio_header(self._base(s), packets, seq=s.seq, frame_ms=self.cfg.frame_ms,
                              bitrate_kbps=self.cfg.bitrate_kbps, capture_wall_us=wall // 1000,
                              capture_mono_us=mono // 1000)
        msg = pack_audio(header, self.signer, packets)
        s.recorder.message_sent(hashlib.sha256(msg).hexdigest())
        s.seq += 1
        s.bytes_sent += len(msg)
        try:
            self.publish(s.topic, msg, 0)
        except Exception:  # a lost packet group must not end the conversation
            log.exception("voice publish failed on %s", s.topic)

    def _base(self, s: VoiceSession) -> dict[str, Any]:
        return {"device": self.device_id, "site": self.site_id, "session": s.session, "nonce": s.nonce,
                "officer": s.officer}

    def _expire(self) -> None:
        now = self.clock.mono_ns()
        keepalive_ns = int(self.cfg.keepalive_timeout_s * 1e9)
        with self._lock:
            sessions = list(self._sessions.values())
        for s in sessions:
            if now >= s.deadline_mono:
                self._end(s, "duration")
            elif now - s.last_keepalive_mono > keepalive_ns:
                self._end(s, "keepalive")

    def _end(self, s: VoiceSession, reason: str) -> list[SealedItem]:
        """Send what is pending, seal the rest of the recording, then tell the officer what was sealed."""
        with self._lock:
            if self._sessions.pop(s.session, None) is None:
                return []
            self._send(s)
            s.recorder.flush(reason)
            if not self._sessions:
                self._release()
        items = s.recorder.sealed
        log.info("voice session %s ended (%s) after %d messages; %d audio item(s) sealed", s.session, reason, s.seq,
                 len(items))
        tail = {**self._base(s), "typ": AUDIO_END_TYP, "messages": s.seq, "reason": reason,
                "end_wall_us": self.clock.wall_ns() // 1000,
                "sealed": [{"seq": i.seq, "record_hash": i.record_hash} for i in items]}
        try:
            self.publish(s.topic, pack_message(tail, self.signer), 1)
        except Exception:  # the officer's page times out on its own
            log.exception("voice end message publish failed on %s", s.topic)
        return items

    # ---- supervision and shutdown

    def restart(self) -> None:
        """After the worker died: end its sessions (sealed, reason ``audio_failed``); the next start reopens."""
        with self._lock:
            sessions = list(self._sessions.values())
            self._worker = None
        for s in sessions:
            self._end(s, "audio_failed")
        with self._lock:
            self._release()

    def health(self) -> str | None:
        """Unhealthy while sessions run without a live worker (the supervisor's restart clears it)."""
        with self._lock:
            w = self._worker
            if self._sessions and (w is None or not w.is_alive()):
                return "voice sessions without a running audio worker"
        return None

    def close(self) -> None:
        """End every session (sealed, reason ``shutdown``) and join the worker; idempotent."""
        with self._lock:
            self._closed = True
            sessions = list(self._sessions.values())
        for s in sessions:
            self._end(s, "shutdown")
        with self._lock:
            worker, self._worker = self._worker, None
            self._release()
        if worker is not None:
            worker.stop(5)
