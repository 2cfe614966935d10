"""Continuous recording: frames -> H.264 in fragmented MP4 segments, plus stills from the same frames.

The recorder is fed :class:`agent.core.model.Frame` values by any capture backend and never seals
anything itself: each closed segment, still and analytics event is handed, as a frozen value, to
callbacks (normally :class:`agent.video.sealing.MediaSealer`, whose worker thread signs and seals), so
neither C2PA signing nor disk syncs stall the frame loop. Segments are fragmented MP4 written
straight into the vault's staging area: after a kill -9 the open file is readable up to its last
fragment and the vault lists it as an orphan in the next restart record.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from agent.core.errors import CaptureError
from agent.core.model import Frame, GpsReading, Moment, SealedItem
from agent.core.threads import Worker, join_or_raise
from agent.video.analytics import Analyzer, VideoEvent
from agent.video.encoder import EncoderSettings, choose_encoder, encoder_settings
from agent.video.overlay import Overlay
from agent.video.segments import H264Stream, SegmentFile
from agent.video.settings import VideoConfig

log = logging.getLogger(__name__)



class MomentSource(Protocol):
    """What the sensors know right now (GPS reading, time quality); agent.device.sensors.Sensors fits."""

    def moment(self) -> Moment: ...


@dataclass(frozen=True)
class TrackPoint:
    """One GPS reading seen while recording, with the frame clock's time."""

    wall_ns: int
    mono_ns: int
    gps: GpsReading


@dataclass(frozen=True)
class ClosedSegment:
    """A finished, closed segment file waiting to be sealed."""

    path: Path
    stream_id: str  # one per recorder run: segments of a run chain by segment_no
    segment_no: int
    start: Moment  # first frame's time + sensors at that moment
    end: Moment  # last frame's time + sensors at close
    first_index: int
    frame_wall_ns: tuple[int, ...]
    frame_mono_ns: tuple[int, ...]
    nominal_frame_ns: int
    encoder: EncoderSettings
    gps_track: tuple[TrackPoint, ...]
    events: tuple[VideoEvent, ...]
    closed_mono_ns: int  # when the file was closed (sealing latency is measured from here)

    @property
    def frame_count(self) -> int:
        return len(self.frame_mono_ns)

    @property
    def duration_s(self) -> float:
        """What a player reports: first to last frame plus one nominal frame."""
        return (self.frame_mono_ns[-1] - self.frame_mono_ns[0] + self.nominal_frame_ns) / 1e9


@dataclass(frozen=True)
class StillShot:
    """A frame picked for a still (already overlaid if overlay is on); ``done`` gets the SealedItem."""

    frame: Frame
    moment: Moment
    reason: str  # "schedule" or "request"
    done: Future[SealedItem] = field(default_factory=Future, compare=False, repr=False)
    extra: tuple[tuple[str, Any], ...] = ()  # caller's context (e.g. the officer and nonce of a snapshot)


@dataclass
class _Open:
    """Book-keeping of the segment being written."""

    file: SegmentFile
    enc: EncoderSettings
    segment_no: int
    start: Moment
    first_index: int
    wall: list[int] = field(default_factory=list)
    mono: list[int] = field(default_factory=list)
    track: list[TrackPoint] = field(default_factory=list)
    events: list[VideoEvent] = field(default_factory=list)
    end: Moment | None = None  # set when the next segment starts (the file closes a few frames later)


class Recorder:
    """Feeds frames into segments; call :meth:`push` from one thread (the capture loop)."""

    def __init__(self, cfg: VideoConfig, *, staging: Callable[[str], Path], sensors: MomentSource,
                 on_segment: Callable[[ClosedSegment], None],
                 on_still: Callable[[StillShot], None] | None = None,
                 on_event: Callable[[VideoEvent], None] | None = None,
                 analyzer: Analyzer | None = None, overlay: Overlay | None = None) -> None:
        self.cfg = cfg
        self.codec = choose_encoder(cfg.encoder)
        self._staging = staging
        self._sensors = sensors
        self._on_segment = on_segment
        self._on_still = on_still
        self._on_event = on_event
        self._analyzer = analyzer
        self._overlay = overlay
        self.stream_id = uuid.uuid4().hex
        self._seg: _Open | None = None
        self._stream: H264Stream | None = None  # one encoder across segments (a new one for a new frame size)
        self._next_no = 0
        self._segment_ns = int(cfg.segment_seconds * 1e9)
        self._gps_ns = int(cfg.gps_interval_s * 1e9)
        self._still_ns = int(cfg.still_interval_s * 1e9)
        self._next_still_mono: int | None = None
        self._last_gps_mono: int | None = None
        self._last_gps: GpsReading | None = None
        self._requests: list[tuple[str, Future[SealedItem], tuple[tuple[str, Any], ...]]] = []
        self._req_lock = threading.Lock()
        self._closed = False
        self.frames_in = 0

    # -- public ---------------------------------------------------------------------------
    def request_still(self, reason: str = "request", extra: dict[str, Any] | None = None) -> Future[SealedItem]:
        """Take the next frame as a still (any thread); the future resolves once it is sealed."""
        if self._on_still is None:
            raise CaptureError("this recorder has no still handler")
        shot_future: Future[SealedItem] = Future()
        with self._req_lock:
            self._requests.append((reason, shot_future, tuple(sorted((extra or {}).items()))))
        return shot_future

    def push(self, frame: Frame) -> None:
        """Encode one frame; rotates segments, samples GPS, runs analytics, takes due stills."""
        if self._closed:
            raise CaptureError("recorder is closed")
        self.frames_in += 1
        seg = self._seg
        resized = seg is not None and (frame.width, frame.height) != (seg.enc.width, seg.enc.height)
        if seg is not None and seg.mono and (resized or frame.mono_ns - seg.mono[0] >= self._segment_ns):
            self._end_segment()
            seg = None
            if resized:
                self._close_stream()
        moment: Moment | None = None
        if seg is None or self._last_gps_mono is None or frame.mono_ns - self._last_gps_mono >= self._gps_ns:
            moment = dataclasses.replace(self._sensors.moment(), wall_ns=frame.wall_ns, mono_ns=frame.mono_ns)
            self._last_gps_mono, self._last_gps = frame.mono_ns, moment.gps
        if seg is None:
            seg = self._open_segment(frame, moment)
        if moment is not None:
            seg.track.append(TrackPoint(frame.wall_ns, frame.mono_ns, moment.gps))
        if self._analyzer is not None:
            for event in self._analyzer.feed(frame, self._last_gps):
                seg.events.append(event)
                if self._on_event is not None:
                    self._on_event(event)
        shown = frame if self._overlay is None else self._overlay.apply(frame, self._last_gps)
        assert self._stream is not None
        self._stream.encode(shown)
        seg.wall.append(frame.wall_ns)
        seg.mono.append(frame.mono_ns)
        self._take_stills(shown, moment)

    def close(self) -> None:
        """Close and hand over the open segment; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._seg is not None:
                self._end_segment()
        finally:
            self._close_stream()
        with self._req_lock:
            pending, self._requests = self._requests, []
        for _reason, fut, _extra in pending:
            fut.set_exception(CaptureError("recorder closed before a frame was available for the still"))

    # -- internals ------------------------------------------------------------------------
    def _open_segment(self, frame: Frame, moment: Moment | None) -> _Open:
        if self._stream is None:
            self._stream = H264Stream(encoder_settings(self.cfg, self.codec, frame.width, frame.height))
        path = self._staging("mp4")
        start = moment or dataclasses.replace(self._sensors.moment(), wall_ns=frame.wall_ns,
                                              mono_ns=frame.mono_ns)
        holder: list[_Open] = []
        file = self._stream.start_segment(path, lambda _f: self._file_closed(holder[0]))
        seg = _Open(file=file, enc=self._stream.enc, segment_no=self._next_no, start=start, first_index=frame.index)
        holder.append(seg)
        self._next_no += 1
        self._seg = seg
        return seg

    def _end_segment(self) -> None:
        """No more frames for the open segment: note its end; its file closes once the encoder has drained it."""
        seg, self._seg = self._seg, None
        assert seg is not None
        if seg.mono:
            seg.end = dataclasses.replace(self._sensors.moment(), wall_ns=seg.wall[-1], mono_ns=seg.mono[-1])

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()

    def _file_closed(self, seg: _Open) -> None:
        """The encoder has written the segment's last packet and closed its file: hand it over."""
        if not seg.mono or seg.end is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(seg.file.path)
            return
        closed = ClosedSegment(
            path=seg.file.path, stream_id=self.stream_id, segment_no=seg.segment_no, start=seg.start, end=seg.end,
            first_index=seg.first_index, frame_wall_ns=tuple(seg.wall), frame_mono_ns=tuple(seg.mono),
            nominal_frame_ns=round(1e9 / self.cfg.fps), encoder=seg.enc, gps_track=tuple(seg.track),
            events=tuple(seg.events), closed_mono_ns=time.monotonic_ns())
        self._on_segment(closed)

    def _take_stills(self, frame: Frame, moment: Moment | None) -> None:
        if self._on_still is None:
            return
        shots: list[tuple[str, Future[SealedItem], tuple[tuple[str, Any], ...]]] = []
        if self._still_ns:
            if self._next_still_mono is None:
                self._next_still_mono = frame.mono_ns
            if frame.mono_ns >= self._next_still_mono:
                self._next_still_mono += self._still_ns * max(
                    1, 1 + (frame.mono_ns - self._next_still_mono) // self._still_ns)
                shots.append(("schedule", Future(), ()))
        with self._req_lock:
            if self._requests:
                shots.extend(self._requests)
                self._requests = []
        if not shots:
            return
        m = moment or dataclasses.replace(self._sensors.moment(), wall_ns=frame.wall_ns, mono_ns=frame.mono_ns)
        for reason, fut, extra in shots:
            self._on_still(StillShot(frame=frame, moment=m, reason=reason, done=fut, extra=extra))


class FrameSink(Protocol):
    """What RecorderThread drives: the PyAV Recorder or the native picamera2 recorder."""

    def push(self, frame: Frame) -> None: ...

    def close(self) -> None: ...


class RecorderThread:
    """Pulls frames from ``next_frame`` (None = end of stream) into a :class:`Recorder` on a named thread."""

    def __init__(self, next_frame: Callable[[], Frame | None], recorder: FrameSink, *,
                 max_frames: int | None = None, on_error: Callable[[BaseException], None] | None = None) -> None:
        self._next = next_frame
        self._recorder = recorder
        self._max = max_frames
        self._on_error = on_error
        self.error: BaseException | None = None
        self._thread = Worker("video-recorder", self._run)

    def start(self) -> None:
        self._thread.start()

    def _run(self, stopping: threading.Event) -> None:
        n = 0
        try:
            while not stopping.is_set() and (self._max is None or n < self._max):
                frame = self._next()
                if frame is None:
                    break
                self._recorder.push(frame)
                n += 1
        except Exception as exc:  # reported, never swallowed: the caller decides
            if not stopping.is_set():
                self.error = exc
                log.exception("video recorder stopped")
                if self._on_error is not None:
                    self._on_error(exc)
        finally:
            self._recorder.close()

    def join(self, timeout: float = 10.0) -> None:
        """Wait for the end of the stream; raises ZombieThread if it has not come within ``timeout``."""
        join_or_raise(self._thread, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Stop after the current frame, close the open segment, join; idempotent."""
        self._thread.stop(timeout)


def backend_frames(backend: Any) -> Callable[[], Frame | None]:
    """Adapt a CaptureBackend's blocking read() (EndOfStream -> None) for RecorderThread."""
    from agent.capture.base import EndOfStream

    def next_frame() -> Frame | None:
        try:
            frame: Frame = backend.read()
        except EndOfStream:
            return None
        return frame

    return next_frame
