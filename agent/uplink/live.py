"""Live view: signed JPEG frames or H.264 fMP4 fragments for an officer, from the shared frame hub.

Recording goes on untouched: live view has its own subscription to the hub and its own encoder
(``agent.uplink.live_video`` for H.264). Either way the camera's aspect is kept (the requested size is a
box to fit in) and the burn-in overlay is drawn when it is on.

Each frame or fragment is one signed message (QoS 0) on ``evidence/{site}/{device}/live/{session}``, bound
to the officer's command nonce (the wire format is :mod:`agent.wire.live_frames`). The last message of a
session has ``typ`` ``evidence-live-end/1``. When a session ends, its frame hashes are sealed as a "live"
item, so what the officer saw is evidence too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent.capture.pixels import encode_jpeg
from agent.core.clock import Clock
from agent.core.model import Frame, Moment, SealedItem
from agent.core.threads import Worker
from agent.uplink.command_controller import LiveSessionArgs, LiveStartArgs
from agent.uplink.live_video import VideoChannel, VideoSender, VideoState
from agent.uplink.sessions import DeviceSession, SessionCommands
from agent.uplink.settings_commands import LiveConfig
from agent.video.live_encoder import fit_size
from agent.wire.commands import CommandRejected, CommandRequest
from agent.wire.live_frames import (  # noqa: F401
    END_TYP,
    FRAME_TYP,
    MAGIC,
    VERSION,
    VerifiedFrame,
    pack_message,
    session_id_for,
    unpack_message,
    verify_message,
)
from agent.wire.replies import DeviceSigner

log = logging.getLogger(__name__)

LivePublisher = Callable[..., None]  # (topic, payload, qos, on_done=None)
Overlay = Callable[[Frame, Moment], Frame]


# --------------------------------------------------------------------------- frame fan-out


class FrameSubscriptionLike(Protocol):
    def get(self, timeout: float | None = None) -> Frame | None: ...


class FrameSource(Protocol):
    """What live view needs of agent.device.pipeline.FrameHub: its own bounded queue of the camera's frames."""

    def subscribe(self, name: str, maxsize: int = 4) -> Any: ...

    def unsubscribe(self, sub: Any) -> None: ...


def newest(sub: FrameSubscriptionLike, timeout: float) -> Frame | None:
    """Wait for a frame, then skip to the newest queued one: live view wants now, not a backlog."""
    frame = sub.get(timeout=timeout)
    while frame is not None:
        nxt = sub.get(timeout=0)
        if nxt is None:
            break
        frame = nxt
    return frame


# --------------------------------------------------------------------------- device side sessions


@dataclass(kw_only=True)
class LiveSession(DeviceSession):
    width: int
    height: int
    fps: float
    quality: int
    start: Moment
    command: Mapping[str, Any]
    next_due_mono: int = 0
    hashes: list[dict[str, Any]] = field(default_factory=list)
    codec: str = "jpeg"
    bitrate_kbps: int = 0
    video: VideoState = field(default_factory=VideoState)
    channel: tuple[int, int, float] | None = None


class LiveManager(SessionCommands[LiveSession]):
    """Runs live sessions on one named thread; handlers for live.start / live.stop / live.keepalive."""

    kind = "live"
    counted = "frames"
    cfg: LiveConfig

    def __init__(self, cfg: LiveConfig, frames: FrameSource, publish: LivePublisher, signer: DeviceSigner,
                 *, device_id: str, site_id: str, topic_for: Callable[[str], str], clock: Clock,
                 moment: Callable[[], Moment], seal: Callable[..., SealedItem] | None = None,
                 threaded: bool = True, on_active: Callable[[bool], None] | None = None,
                 overlay: Overlay | None = None) -> None:
        self.cfg, self.frames, self.publish, self.signer = cfg, frames, publish, signer
        self.device_id, self.site_id, self.topic_for, self.clock = device_id, site_id, topic_for, clock
        self.moment, self.seal = moment, seal
        self._lock = threading.Lock()  # guards _sessions
        self._send_lock = threading.RLock()  # one of: a streaming step, or ending a session
        self._sessions: dict[str, LiveSession] = {}
        self._sub: Any = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: Worker | None = None
        self._threaded = threaded  # False: the caller drives step() (tests, benchmarks)
        self._on_active = on_active  # e.g. the status LED: True when the first session starts, False after the last
        self._listeners: list[Callable[[bool], None]] = []  # more of the same (the digital zoom's reset)
        self.sealed: list[SealedItem] = []
        self.overlay = overlay
        self._channels: dict[tuple[int, int, float], VideoChannel] = {}  # guarded by _send_lock
        self._video = VideoSender(signer, publish, clock, device_id=device_id, site_id=site_id)

    # ---- handlers (called on the command worker thread)

    def start(self, request: CommandRequest, args: LiveStartArgs) -> Mapping[str, Any]:
        c = self.cfg
        if not c.enabled:
            raise CommandRejected("unauthorized", "live view is disabled on this device")
        if self._stop.is_set():
            raise CommandRejected("busy", "the device is shutting down")
        if args.codec == "h264" and not c.h264:
            raise CommandRejected("bad_args", "codec: this device offers JPEG live view only (live.h264 is off)")
        sid = session_id_for(request.nonce)
        now = self.clock.mono_ns()
        seconds = min(float(args.seconds or c.default_seconds), c.max_seconds)
        video = args.codec == "h264"
        width = min(args.width or (c.video_width if video else c.default_width), c.max_width)
        height = min(args.height or (c.video_height if video else c.default_height), c.max_height)
        scaled = int(c.bitrate_kbps * width * height / (1280 * 720))
        bitrate = max(c.min_bitrate_kbps, min(args.bitrate_kbps or scaled, 4 * c.bitrate_kbps))
        s = LiveSession(
            session=sid, officer=request.officer, officer_key_id=request.key_id, nonce=request.nonce,
            topic=self.topic_for(sid), width=width, height=height, codec=args.codec, bitrate_kbps=bitrate,
            fps=min(float(args.fps or c.default_fps), c.max_fps),
            quality=max(c.min_quality, min(args.quality or c.default_quality, c.max_quality)),
            seconds=seconds, start=self.moment(), deadline_mono=now + int(seconds * 1e9),
            last_keepalive_mono=now, command=request.wire, next_due_mono=now)
        with self._lock:
            if len(self._sessions) >= c.max_sessions:
                raise CommandRejected("busy", f"{c.max_sessions} live sessions already running")
            self._sessions[sid] = s
            first = len(self._sessions) == 1
        if video:
            with self._send_lock:
                key = (s.width, s.height, s.fps)
                channel = self._channels.get(key)
                if channel is None:
                    channel = self._channels[key] = VideoChannel(c, (s.width, s.height), s.fps, bitrate)
                s.channel = key
                channel.attach(s)
        if first:
            self._notify(True)
        self._ensure_thread()
        self._wake.set()
        log.info("live session %s started for %s: %s %dx%d@%.1f q%d %.0fs", sid, s.officer, s.codec, s.width,
                 s.height, s.fps, s.quality, seconds)
        return {"session": sid, "topic": s.topic, "width": s.width, "height": s.height, "fps": s.fps,
                "quality": s.quality, "seconds": seconds, "keepalive_timeout_s": c.keepalive_timeout_s,
                "key_id": self.signer.key_id, "codec": s.codec,
                "bitrate_kbps": s.bitrate_kbps if video else None, "fragment_ms": c.fragment_ms if video else None}

    def stop(self, request: CommandRequest, args: LiveSessionArgs) -> Mapping[str, Any]:
        s = self._owned(request, args.session)
        item = self._end(s, "stop")
        return {"session": s.session, "frames": s.seq, "seq": None if item is None else item.seq}

    # ---- streaming

    def step(self, frame: Frame | None) -> None:
        """One iteration: end sessions that ran out, then send ``frame`` to every session it is due for."""
        with self._send_lock:  # an ending session never gets a frame after its end message
            self._step(frame)

    def _step(self, frame: Frame | None) -> None:
        now = self.clock.mono_ns()
        self._expire()
        if frame is None:
            return
        with self._lock:
            sessions = [s for s in self._sessions.values() if s.codec == "jpeg"]
        # a quarter period of slack, so camera jitter around the due time does not halve the rate
        due = [s for s in sessions if frame.mono_ns + int(2.5e8 / s.fps) >= s.next_due_mono]
        channels = [ch for ch in self._channels.values() if ch.sessions and ch.due(frame)]
        if not due and not channels:
            return
        gps = self.moment()
        if self.overlay is not None:
            frame = self.overlay(frame, gps)
        for ch in channels:
            self._video.stream(ch, frame, gps, now)
        encoded: dict[tuple[int, int, int], bytes] = {}
        for s in due:
            period = int(1e9 / s.fps)
            s.next_due_mono = max(s.next_due_mono + period, frame.mono_ns + period // 2)
            key = (s.width, s.height, s.quality)
            if key not in encoded:
                encoded[key] = _encode(frame, s.width, s.height, s.quality)
            self._send(s, frame, encoded[key], gps)

    def _send(self, s: LiveSession, frame: Frame, jpeg: bytes, moment: Moment) -> None:
        width, height = fit_size(frame.width, frame.height, s.width, s.height)
        header = {
            "typ": FRAME_TYP, "device": self.device_id, "site": self.site_id, "session": s.session,
            "nonce": s.nonce, "officer": s.officer, "seq": s.seq, "frame_index": frame.index,
            "capture_wall_us": frame.wall_ns // 1000, "capture_mono_us": frame.mono_ns // 1000,
            "gps": moment.gps.as_record(), "time": moment.time.as_record(),
            "width": width, "height": height, "jpeg_sha256": hashlib.sha256(jpeg).hexdigest(),
            "view": None if frame.view is None else frame.view.as_record(),  # the digital zoom shown
        }
        msg = pack_message(header, self.signer, jpeg)
        s.hashes.append({"seq": s.seq, "capture_wall_us": frame.wall_ns // 1000, "frame_index": frame.index,
                         "jpeg_sha256": header["jpeg_sha256"],
                         "message_sha256": hashlib.sha256(msg).hexdigest()})
        s.seq += 1
        try:
            self.publish(s.topic, msg, 0)
        except Exception:  # a lost live frame must not end the session
            log.exception("live frame publish failed on %s", s.topic)

    def _end(self, s: LiveSession, reason: str) -> SealedItem | None:
        """Seal the session, then tell the officer (the end message names the sealed record)."""
        with self._send_lock:
            with self._lock:
                if self._sessions.pop(s.session, None) is None:
                    return None  # someone else ended it
                last = not self._sessions
            ch = self._channels.get(s.channel) if s.channel is not None else None
            if ch is not None and s.channel is not None:
                ch.sessions.pop(s.session, None)
                if not ch.sessions:
                    self._channels.pop(s.channel, None)
                    ch.close()
            if last:
                self._notify(False)
            end = self.moment()
            log.info("live session %s ended (%s) after %d frames", s.session, reason, s.seq)
            item = self._seal(s, end, reason)
            tail = {"typ": END_TYP, "device": self.device_id, "site": self.site_id, "session": s.session,
                    "nonce": s.nonce, "officer": s.officer, "frames": s.seq, "reason": reason,
                    "end_wall_us": end.wall_ns // 1000,
                    "sealed": None if item is None else {"seq": item.seq, "record_hash": item.record_hash}}
            self._publish_end(s, tail)
            return item

    def add_listener(self, on_active: Callable[[bool], None]) -> None:
        """Also call ``on_active(True)`` when the first session starts and ``(False)`` after the last ends."""
        self._listeners.append(on_active)

    def _notify(self, active: bool) -> None:
        for hook in ([self._on_active] if self._on_active is not None else []) + self._listeners:
            try:
                hook(active)
            except Exception:  # an LED (or a zoom reset) must not break live view
                log.exception("live on_active callback failed")

    def _seal(self, s: LiveSession, end: Moment, reason: str) -> SealedItem | None:
        if self.seal is None:
            return None
        media = "".join(json.dumps(h, sort_keys=True, separators=(",", ":")) + "\n" for h in s.hashes).encode()
        try:
            item = self.seal("live", s.start, media=media, media_type="application/x-ndjson", ext="jsonl",
                             end=end, extra={
                                 "session": s.session, "officer": s.officer, "officer_key_id": s.officer_key_id,
                                 "nonce": s.nonce, "topic": s.topic, "width": s.width, "height": s.height,
                                 "fps": s.fps, "quality": s.quality, "requested_seconds": s.seconds,
                                 "frames": s.seq, "stop_reason": reason, "command": dict(s.command)})
        except Exception:  # logged loudly; the frames themselves were already delivered
            log.exception("could not seal live session %s", s.session)
            return None
        self.sealed.append(item)
        return item

    # ---- thread

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._threaded and self._thread is None and not self._stop.is_set():
                self._thread = Worker("live-streamer", self._run, stopping=self._stop)
                self._thread.start()

    def _run(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            if not self.active():
                if self._sub is not None:
                    self.frames.unsubscribe(self._sub)
                    self._sub = None
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            if self._sub is None:
                self._sub = self.frames.subscribe("live", maxsize=2)
            try:
                self.step(newest(self._sub, 0.1))
            except Exception:  # keep serving the other sessions
                log.exception("live streamer step failed")
        if self._sub is not None:
            self.frames.unsubscribe(self._sub)
            self._sub = None

    def close(self) -> None:
        """End every session (sealed, reason "shutdown") and join the thread; idempotent."""
        self._end_all("shutdown")
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.stop(5)


def _encode(frame: Frame, width: int, height: int, quality: int) -> bytes:
    width, height = fit_size(frame.width, frame.height, width, height)  # keep the camera's aspect
    return encode_jpeg(frame, quality, size=(width, height))
