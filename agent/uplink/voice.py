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
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.audio.base import AudioBlock, AudioError, AudioSink, AudioSource, open_sink, open_source
from agent.audio.opus import OpusEncoder
from agent.audio.recorder import SegmentRecorder
from agent.audio.settings import AudioConfig
from agent.core.clock import Clock
from agent.core.errors import VerificationError
from agent.core.model import Moment, SealedItem
from agent.core.threads import Worker, stop_all
from agent.uplink.command_controller import LiveSessionArgs, VoiceStartArgs
from agent.uplink.sessions import DeviceSession, SessionCommands
from agent.uplink.voice_talk import KeyLookup, talk_state
from agent.wire.audio_frames import AUDIO_END_TYP, MAX_MESSAGE, audio_header, pack_audio
from agent.wire.commands import CommandRejected, CommandRequest
from agent.wire.live_frames import session_id_for
from agent.wire.replies import DeviceSigner

log = logging.getLogger(__name__)

WORKER = "voice-site"
SPEAKER = "voice-speaker"


@dataclass(kw_only=True)
class VoiceSession(DeviceSession):
    recorder: SegmentRecorder
    pending: list[tuple[bytes, int, int]] = field(default_factory=list)  # (packet, wall_ns, mono_ns)
    bytes_sent: int = 0
    talk: Any = None  # TalkState: the officer's voice for the site speaker


class VoiceManager(SessionCommands[VoiceSession]):
    """Voice sessions of one device; ``handlers()`` for the command controller, ``restart`` for the supervisor."""

    kind = "voice"
    counted = "messages"
    cfg: AudioConfig

    def __init__(self, cfg: AudioConfig, publish: Callable[..., None], signer: DeviceSigner, *, device_id: str,
                 site_id: str, topic_for: Callable[[str], str], clock: Clock, moment: Callable[[], Moment],
                 seal: Callable[..., SealedItem] | None,
                 source_factory: Callable[[int], AudioSource] | None = None,
                 talk_for: Callable[[str], str] | None = None, subscribe: Callable[..., Any] | None = None,
                 unsubscribe: Callable[..., Any] | None = None, officer_key: KeyLookup | None = None,
                 sink_factory: Callable[[], AudioSink | None] | None = None) -> None:
        self.cfg, self.publish, self.signer, self.clock = cfg, publish, signer, clock
        self.device_id, self.site_id, self.topic_for, self.moment, self.seal = (
            device_id, site_id, topic_for, moment, seal)
        self._source_factory = source_factory or (lambda n: open_source(cfg, clock, n))
        self._sink_factory = sink_factory or (lambda: open_sink(cfg, clock))
        self.talk_for, self._subscribe, self._unsubscribe = talk_for, subscribe, unsubscribe
        self._officer_key = officer_key or (lambda _kid: None)
        self._sink: AudioSink | None = None
        self._talk_q: queue.Queue[tuple[str, bytes]] = queue.Queue(maxsize=100)
        self._speaker: Worker | None = None
        self.talk_dropped = 0
        self._lock = threading.RLock()  # guards sessions, the source and the encoder
        self._sessions: dict[str, VoiceSession] = {}
        self._source: AudioSource | None = None
        self._encoder: OpusEncoder | None = None
        self._worker: Worker | None = None
        self._closed = False
        self.frame_samples = 48_000 * cfg.frame_ms // 1000

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
            s = self._sessions[sid] = VoiceSession(
                session=sid, officer=request.officer, officer_key_id=request.key_id, nonce=request.nonce,
                topic=self.topic_for(sid), seconds=seconds, deadline_mono=now + int(seconds * 1e9),
                last_keepalive_mono=now, recorder=rec)
            if self.talk_for is not None:
                s.talk = talk_state(device=self.device_id, session=sid, nonce=request.nonce, officer=request.officer,
                                    officer_key_id=request.key_id, recorder=SegmentRecorder(
                                        direction="officer", extradata=self._encoder.extradata,
                                        segment_seconds=c.segment_seconds, frame_ms=c.frame_ms, seal=self.seal,
                                        moment=self.moment, extra=extra))
                if self._subscribe is not None:
                    self._subscribe(self.talk_for(sid), lambda msg, sid=sid: self._talk_in(sid, msg), 0)
                self._ensure_speaker()
            self._ensure_worker()
        log.info("voice session %s started for %s: Opus %d kbit/s, %d ms frames, %.0f s", sid, request.officer,
                 c.bitrate_kbps, c.frame_ms, seconds)
        return {"session": sid, "topic": self.topic_for(sid), "codec": "opus", "sample_rate": 48_000,
                "talk_topic": None if self.talk_for is None else self.talk_for(sid),
                "channels": 1, "frame_ms": c.frame_ms, "bitrate_kbps": c.bitrate_kbps,
                "packets_per_message": c.packets_per_message, "seconds": seconds,
                "keepalive_timeout_s": c.keepalive_timeout_s, "key_id": self.signer.key_id}

    def stop(self, request: CommandRequest, args: LiveSessionArgs) -> Mapping[str, Any]:
        s = self._owned(request, args.session)
        items = self._end(s, "stop")
        return {"session": s.session, "messages": s.seq, "sealed": [i.seq for i in items]}

    # ---- the microphone

    def _open(self) -> None:
        source = self._source_factory(self.frame_samples)
        try:
            source.start()
        except AudioError as exc:
            raise CommandRejected("failed", f"the site microphone cannot be opened: {exc}") from None
        self._source = source
        self._encoder = OpusEncoder(self.cfg.bitrate_kbps, self.cfg.frame_ms)
        try:
            self._sink = self._sink_factory()
            if self._sink is not None:
                self._sink.start()
        except AudioError as exc:  # the site still hears nothing of the officer; the officer still hears the site
            log.error("the site speaker cannot be opened (the officer's voice will not be played): %s", exc)
            self._sink = None

    def _release(self) -> None:
        sink, self._sink = self._sink, None
        if sink is not None:
            try:
                sink.close()
            except Exception:
                log.exception("closing the site speaker failed")
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

    def _end(self, s: VoiceSession, reason: str) -> list[SealedItem]:
        """Send what is pending, seal the rest of the recording, then tell the officer what was sealed."""
        with self._lock:
            if self._sessions.pop(s.session, None) is None:
                return []
            self._send(s)
            s.recorder.flush(reason)
            if s.talk is not None:
                s.talk.recorder.flush(reason)
            if not self._sessions:
                self._release()
        if s.talk is not None and self._unsubscribe is not None and self.talk_for is not None:
            try:
                self._unsubscribe(self.talk_for(s.session), None)
            except Exception:
                log.exception("voice %s: unsubscribing from the officer's voice failed", s.session)
        items = sorted([*s.recorder.sealed, *(s.talk.recorder.sealed if s.talk is not None else [])],
                       key=lambda i: i.seq)
        log.info("voice session %s ended (%s) after %d messages; %d audio item(s) sealed%s", s.session, reason,
                 s.seq, len(items), "" if s.talk is None else f"; {s.talk.summary()}")
        tail = {**self._base(s), "typ": AUDIO_END_TYP, "messages": s.seq, "reason": reason,
                "end_wall_us": self.clock.wall_ns() // 1000,
                "sealed": [{"seq": i.seq, "record_hash": i.record_hash} for i in items]}
        self._publish_end(s, tail)
        return items

    # ---- the officer's voice (agent.uplink.voice_talk)

    def _talk_in(self, sid: str, msg: Any) -> None:
        """paho callback: queue, never block; a full queue drops (the speaker stays live)."""
        payload = bytes(msg.payload)
        if len(payload) > MAX_MESSAGE:
            self.talk_dropped += 1
            return
        try:
            self._talk_q.put_nowait((sid, payload))
        except queue.Full:
            self.talk_dropped += 1

    def _ensure_speaker(self) -> None:
        if self._speaker is None:
            self._speaker = Worker(SPEAKER, self._run_speaker)
            self._speaker.start()

    def _run_speaker(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            try:
                sid, payload = self._talk_q.get(timeout=0.2)
            except queue.Empty:
                with self._lock:
                    if not self._sessions:
                        if self._speaker is not None and self._speaker.stopping is stopping:
                            self._speaker = None
                        return
                continue
            self.hear(sid, payload)

    def hear(self, sid: str, payload: bytes) -> None:
        """Check, play and record one message of the officer's voice (the speaker worker; tests call it)."""
        with self._lock:
            s = self._sessions.get(sid)
            if s is None or s.talk is None:
                return
            try:
                s.talk.take(payload, self._officer_key(s.officer_key_id), self.clock, self._sink)
            except (VerificationError, AudioError, ValueError) as exc:
                s.talk.refused += 1
                if s.talk.refused <= 5 or s.talk.refused % 100 == 0:
                    log.warning("voice %s: officer audio refused (%d so far): %s", sid, s.talk.refused, exc)

    # ---- supervision and shutdown

    def restart(self) -> None:
        """After the worker died: end its sessions (sealed, reason ``audio_failed``); the next start reopens."""
        with self._lock:
            sessions = list(self._sessions.values())
            self._worker = None
            self._speaker = None
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
        self._end_all("shutdown")
        with self._lock:
            workers = [w for w in (self._worker, self._speaker) if w is not None]
            self._worker = self._speaker = None
            self._release()
        stop_all(workers, 5)
