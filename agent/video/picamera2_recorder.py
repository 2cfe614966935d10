"""Continuous recording on the Pi with picamera2: main stream -> native H.264 -> sealed fMP4 segments.

picamera2 encodes the main stream itself (``H264Encoder``: the bcm2835 V4L2 codec on a Pi 4,
libav on a Pi 5 where ``encoders.H264Encoder`` already is ``LibavH264Encoder``) and hands packets to
a ``SplittableOutput`` wrapping one ``PyavOutput`` per segment. Every ``segment_seconds`` a named
thread calls ``split_output(new, wait_for_keyframe=True)``, which returns once the old file is
closed at a keyframe without dropping a frame; the closed file becomes the same
:class:`ClosedSegment` the PyAV :class:`~agent.video.recorder.Recorder` produces, so both are sealed
alike. Per-frame times are taken from each request's ``SensorTimestamp``/``FrameWallClock`` in the
``pre_callback`` and matched to the packets each segment really muxed, so the record's frame count
equals the file's packet count.

The recorder has the Recorder's driving interface (``push``/``request_still``/``close``): the lores
stream reaches a :class:`~agent.device.pipeline.FrameHub` through :meth:`lores_backend`, and frames pushed
back from the hub feed analytics, whose events land in the segment covering them.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

from agent.capture.base import CaptureBackend, CaptureSettings, EndOfStream
from agent.capture.picamera2 import (
    Picamera2Config,
    crop_limits,
    frame_pixels,
    full_sensor_fps,
    import_picamera2,
    jpeg,
    open_camera,
    request_frame,
    request_times,
    scaler_crop,
    sensor_meta,
)
from agent.core.clock import Clock
from agent.core.errors import CaptureError
from agent.core.model import Frame, GpsReading, SealedItem, SensorMeta
from agent.core.threads import Worker, ZombieThread, join_or_raise
from agent.core.view import ViewRegion
from agent.video.analytics import Analyzer, VideoEvent
from agent.video.encoder import FRAGMENT_FLAGS, EncoderSettings
from agent.video.recorder import ClosedSegment, MomentSource, StillShot, TrackPoint
from agent.video.settings import VideoConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NativeEncoderSettings(EncoderSettings):
    """EncoderSettings of a segment encoded by picamera2 (the input is the ISP's YUV420, not BGR)."""

    stream: str = "main"  # "lores" when main is the full sensor for document stills

    def as_record(self) -> dict[str, Any]:
        rec = super().as_record()
        rec["time_base"] = "1/1000000"
        rec["input"] = f"picamera2 {self.stream} stream YUV420 from the ISP (no colour conversion)"
        return rec


@dataclass
class _Segment:
    """What one PyavOutput muxed: packet times mapped to sensor times, GPS at its first frame."""

    no: int
    path: Path
    wall: list[int] = field(default_factory=list)
    mono: list[int] = field(default_factory=list)
    start: Any = None  # Moment of the first frame
    base_us: int | None = None
    done: bool = False


def _segment_output_class(pyav_output: type) -> type:
    """A PyavOutput that writes fragmented MP4 from pts 0 and reports every video packet it muxes."""

    class SegmentOutput(pyav_output):  # type: ignore[valid-type,misc]
        def __init__(self, path: Path, seg: _Segment, on_packet: Callable[[_Segment, int], None]) -> None:
            super().__init__(str(path), format="mp4")
            self.seg = seg
            self._on_packet = on_packet

        def start(self) -> None:
            # PyavOutput.start() opens a plain MP4 (unplayable until closed): same container, fragmented,
            # so a crash keeps every finished fragment (DESIGN-NOTES 5)
            import av

            self._container = av.open(self._output_name, "w", format="mp4",
                                      options={"movflags": FRAGMENT_FLAGS, "flush_packets": "1"})
            self.recording = True

        def outputframe(self, frame: Any, keyframe: bool = True, timestamp: int | None = None,
                        packet: Any = None, audio: bool = False) -> None:
            if audio or timestamp is None or not self.recording or self._container is None:
                super().outputframe(frame, keyframe, timestamp, packet, audio)
                return
            if self.seg.base_us is None:
                self.seg.base_us = timestamp
            rel = timestamp - self.seg.base_us
            if packet is None:
                super().outputframe(frame, keyframe, rel, packet, audio)
            else:
                pts, dts = packet.pts, packet.dts
                packet.pts, packet.dts = pts - self.seg.base_us, (dts - self.seg.base_us if dts is not None else None)
                try:
                    super().outputframe(frame, keyframe, rel, packet, audio)
                finally:
                    packet.pts, packet.dts = pts, dts
            self._on_packet(self.seg, timestamp)

    return SegmentOutput


class Picamera2Recorder:
    """Owns the camera: records main -> H.264 segments, serves lores frames and full-size stills."""

    def __init__(self, cfg: VideoConfig, *, settings: CaptureSettings, clock: Clock,
                 staging: Callable[[str], Path], sensors: MomentSource,
                 on_segment: Callable[[ClosedSegment], None],
                 on_still: Callable[[StillShot], None] | None = None,
                 on_event: Callable[[VideoEvent], None] | None = None,
                 analyzer: Analyzer | None = None, pi: Picamera2Config | None = None,
                 lores_queue: int = 4) -> None:
        self.cfg, self.settings, self.clock, self.pi = cfg, settings, clock, pi or Picamera2Config()
        self._staging, self._sensors = staging, sensors
        self._on_segment, self._on_still, self._on_event = on_segment, on_still, on_event
        self._analyzer = analyzer
        self.stream_id = uuid.uuid4().hex
        self.fps = settings.fps
        self.gop = max(1, round(self.fps * cfg.fragment_seconds))
        self._segment_ns = int(cfg.segment_seconds * 1e9)
        self._gps_ns = int(cfg.gps_interval_s * 1e9)
        self._times: collections.OrderedDict[int, tuple[int, int]] = collections.OrderedDict()
        self._lock = threading.Lock()  # times, track, events, current segment
        self._lores: queue.Queue[tuple[Any, int, int, SensorMeta] | None] = queue.Queue(lores_queue)
        self.lores_dropped = 0
        self._track: list[TrackPoint] = []
        self._events: list[VideoEvent] = []
        self._last_gps_mono: int | None = None
        self._last_gps: GpsReading | None = None
        self._frames = 0
        self._next_no = 0
        self._cur: _Segment | None = None
        self._cam: Any = None
        self._split: Any = None
        self._encoder: Any = None
        self._output_cls: type | None = None
        self._stop = threading.Event()
        self._thread: Worker | None = None
        self._state = "new"
        self._still_no = 0
        self._next_still_mono: int | None = None
        self.encoder_settings: NativeEncoderSettings | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Configure main (YUV420) + lores, start H.264 recording and the segment thread; idempotent."""
        if self._state != "new":
            return
        module = import_picamera2()
        from picamera2.encoders import H264Encoder, LibavH264Encoder
        from picamera2.outputs import PyavOutput, SplittableOutput

        s, pi = self.settings, self.pi
        cam = open_camera(module, pi.camera_num)
        try:
            main, lores, encode = self._stream_sizes(cam)
            cam.configure(cam.create_video_configuration(
                main={"size": main, "format": "YUV420"}, lores={"size": lores, "format": "YUV420"},
                controls={"FrameRate": float(s.fps)}, buffer_count=pi.buffer_count, encode=encode))
            hw = pi.encoder == "auto" and H264Encoder is not LibavH264Encoder
            cls = H264Encoder if pi.encoder == "auto" else LibavH264Encoder
            bitrate = self.cfg.bitrate_kbps * 1000
            # PyAV's add_stream(rate=) takes int/Fraction, not float: picamera2 passes framerate through
            rate: int | Fraction = int(s.fps) if float(s.fps).is_integer() else Fraction(s.fps).limit_denominator(1001)
            self._encoder = cls(bitrate=bitrate, repeat=True, iperiod=self.gop, framerate=rate)
            self._output_cls = _segment_output_class(PyavOutput)
            self._split = SplittableOutput(output=self._new_output())
            cam.pre_callback = self._on_request
            cam.start_recording(self._encoder, self._split)
        except CaptureError:
            cam.close()
            raise
        except Exception as exc:
            cam.close()
            raise CaptureError(f"picamera2 camera {pi.camera_num} could not start recording: {exc}") from exc
        self._cam = cam
        codec = "h264_bcm2835_v4l2 (picamera2 H264Encoder)" if hw else "libx264 (picamera2 LibavH264Encoder)"
        self.encoder_settings = NativeEncoderSettings(
            codec=codec, width=s.width, height=s.height, pix_fmt="yuv420p", fps=s.fps, gop=self.gop,
            options=(("bitrate", str(bitrate)), ("iperiod", str(self.gop)), ("repeat", "1")), stream=encode)
        self._state = "open"
        self._thread = Worker("picamera2-segments", self._rotate, stopping=self._stop)
        self._thread.start()

    def close(self) -> None:
        """Stop recording, hand over the last segment, release the camera; idempotent."""
        if self._state == "closed":
            return
        was_open, self._state = self._state == "open", "closed"
        self._stop.set()
        if self._thread is not None:
            try:
                self._thread.stop(2 * self.cfg.fragment_seconds + 5)
            except ZombieThread:  # no keyframe came (camera stalled): let split_output return
                log.error("picamera2 segment split did not finish; forcing the switch")
                getattr(self._split, "_split_done", threading.Event()).set()
        if was_open:
            try:
                self._cam.stop_recording()  # flushes the encoder; SplittableOutput closes the open file
            finally:
                self._cam.close()
            if self._cur is not None:
                self._finish(self._cur)
        while True:  # readers see the end at once, not after the queued frames
            try:
                self._lores.get_nowait()
            except queue.Empty:
                break
        self._lores.put_nowait(None)
        join_or_raise(self._thread, 5)  # the forced switch (or the camera's release) has let it end

    def _stream_sizes(self, cam: Any) -> tuple[tuple[int, int], tuple[int, int], str]:
        """(main size, lores size, encoded stream): with ``document_stills`` main is the full sensor and H.264
        encodes lores at the video size (picamera2's still_during_video example), else main is the video."""
        s, pi = self.settings, self.pi
        if not pi.document_stills:
            return (s.width, s.height), (pi.lores_width, pi.lores_height), "main"
        sensor = tuple(int(v) for v in cam.sensor_resolution)
        if s.width > sensor[0] or s.height > sensor[1]:
            raise CaptureError(f"capture {s.width}x{s.height} is larger than the {sensor[0]}x{sensor[1]} sensor")
        top = full_sensor_fps(cam, (sensor[0], sensor[1]))
        if top is not None and s.fps > top:
            raise CaptureError(f"document_stills needs the full-sensor mode, which runs at {top:g} fps at most; "
                               f"capture.fps {s.fps:g} is higher (lower it or turn document_stills off)")
        return (sensor[0], sensor[1]), (s.width, s.height), "lores"

    # -- stills ---------------------------------------------------------------------------------
    def still_frame(self, full: bool = False) -> Frame:
        """A still frame from the next request (released at once): the video-size stream (main, or lores with
        ``document_stills``), or with ``full`` the full-sensor main stream of ``document_stills``."""
        if self._state != "open":
            raise CaptureError(f"picamera2 recorder is {self._state}, not recording")
        if full and not self.pi.document_stills:
            raise CaptureError("full-resolution stills on picamera2 need [capture.picamera2] document_stills = true "
                               "(main at the full sensor while H.264 encodes lores)")
        stream = "main" if full or not self.pi.document_stills else "lores"
        try:
            request = self._cam.capture_request()
        except Exception as exc:
            raise CaptureError(f"picamera2 still capture failed: {exc}") from exc
        frame = request_frame(request, stream, "YUV420", self._still_no, self.clock)
        self._still_no += 1
        return frame

    def full_frame(self) -> Frame:
        """A full-sensor still frame without stopping the recording (``document_stills``)."""
        return self.still_frame(full=True)

    def sensor_size(self) -> tuple[int, int] | None:
        if not self.pi.document_stills or self._cam is None:
            return None
        w, h = self._cam.sensor_resolution
        return int(w), int(h)

    def capture_still(self, quality: int = 90) -> bytes:
        return jpeg(self.still_frame(), quality)

    # -- digital zoom (ScalerCrop: main, lores and stills alike) ---------------------------------
    def zoom_area(self) -> tuple[int, int, int, int] | None:
        return None if self._state != "open" else crop_limits(self._cam)[2]

    def set_view(self, region: ViewRegion) -> tuple[int, int, int, int]:
        if self._state != "open":
            raise CaptureError(f"picamera2 recorder is {self._state}, not recording")
        crop = scaler_crop(region, self._cam)
        self._cam.set_controls({"ScalerCrop": crop})
        return crop

    def request_still(self, reason: str = "request", extra: dict[str, Any] | None = None) -> Future[SealedItem]:
        """Capture a full-size still now and hand it to ``on_still``; the future resolves once sealed."""
        if self._on_still is None:
            raise CaptureError("this recorder has no still handler")
        frame = self.still_frame()
        moment = dataclasses.replace(self._sensors.moment(), wall_ns=frame.wall_ns, mono_ns=frame.mono_ns)
        shot = StillShot(frame=frame, moment=moment, reason=reason, extra=tuple(sorted((extra or {}).items())))
        self._on_still(shot)
        return shot.done

    # -- lores frames pushed back (analytics, scheduled stills) -----------------------------------
    def push(self, frame: Frame) -> None:
        """Feed a lores frame: runs analytics (events join the segment covering them) and scheduled stills."""
        if self._analyzer is not None:
            for event in self._analyzer.feed(frame, self._last_gps):
                with self._lock:
                    self._events.append(event)
                if self._on_event is not None:
                    self._on_event(event)
        still_ns = int(self.cfg.still_interval_s * 1e9)
        due = self._next_still_mono is None or frame.mono_ns >= self._next_still_mono
        if still_ns and due and self._on_still is not None and self._state == "open":
            self._next_still_mono = frame.mono_ns + still_ns
            self.request_still("schedule")

    def lores_backend(self) -> LoresFrames:
        """A CaptureBackend over the lores stream for FrameHub (opening it starts recording)."""
        return LoresFrames(self)

    # -- camera thread ----------------------------------------------------------------------------
    def _on_request(self, request: Any) -> None:
        """pre_callback: runs on picamera2's thread before the encoders see the request; stay quick."""
        metadata = request.get_metadata()
        mono, wall = request_times(metadata, self.clock)
        with self._lock:
            self._times[mono // 1000] = (wall, mono)
            while len(self._times) > 512:
                self._times.popitem(last=False)
        try:
            self._lores.put_nowait((request.make_array("lores"), wall, mono, sensor_meta(metadata)))
        except queue.Full:
            self.lores_dropped += 1

    def _on_packet(self, seg: _Segment, timestamp_us: int) -> None:
        """A video packet reached ``seg``'s file: record its frame's sensor times (and GPS when due)."""
        first = getattr(self._encoder, "firsttimestamp", None) or 0
        with self._lock:  # picamera2 rounds ns/1000 through a float: allow one µs either way
            times = next((t for d in (0, -1, 1) if (t := self._times.get(first + timestamp_us + d))), None)
        if times is None:  # metadata not seen (should not happen): derive from the encoder's µs
            mono = (first + timestamp_us) * 1000
            times = (self.clock.wall_ns() - self.clock.mono_ns() + mono, mono)
        wall, mono = times
        if seg.start is None or self._last_gps_mono is None or mono - self._last_gps_mono >= self._gps_ns:
            moment = dataclasses.replace(self._sensors.moment(), wall_ns=wall, mono_ns=mono)
            self._last_gps_mono, self._last_gps = mono, moment.gps
            with self._lock:
                self._track.append(TrackPoint(wall, mono, moment.gps))
            if seg.start is None:
                seg.start = moment
        seg.wall.append(wall)
        seg.mono.append(mono)

    # -- segments ---------------------------------------------------------------------------------
    def _new_output(self) -> Any:
        assert self._output_cls is not None
        seg = _Segment(no=self._next_no, path=self._staging("mp4"))
        self._next_no += 1
        self._cur = seg
        return self._output_cls(seg.path, seg, self._on_packet)

    def _rotate(self, stopping: threading.Event) -> None:
        """Split at the keyframe that starts each ``segment_seconds`` (GOP-aligned), then seal the old one."""
        half_gop_ns = int(self.gop / self.fps * 1e9) // 2
        while not stopping.wait(0.02):
            seg = self._cur
            if seg is None or not seg.mono or seg.mono[-1] - seg.mono[0] < self._segment_ns - half_gop_ns:
                continue
            try:
                self._split.split_output(self._new_output(), wait_for_keyframe=True)
                self._finish(seg)
            except Exception:  # logged; recording goes on into the new file
                log.exception("picamera2 segment split failed")

    def _finish(self, seg: _Segment) -> None:
        if seg.done:
            return
        seg.done = True
        if not seg.mono:
            seg.path.unlink(missing_ok=True)
            return
        last = seg.mono[-1]
        with self._lock:
            track = [p for p in self._track if p.mono_ns <= last]
            self._track = [p for p in self._track if p.mono_ns > last]
            events = [e for e in self._events if e.mono_ns <= last]
            self._events = [e for e in self._events if e.mono_ns > last]
        end = dataclasses.replace(self._sensors.moment(), wall_ns=seg.wall[-1], mono_ns=last)
        assert self.encoder_settings is not None and seg.start is not None
        closed = ClosedSegment(
            path=seg.path, stream_id=self.stream_id, segment_no=seg.no, start=seg.start, end=end,
            first_index=self._frames, frame_wall_ns=tuple(seg.wall), frame_mono_ns=tuple(seg.mono),
            nominal_frame_ns=round(1e9 / self.fps), encoder=self.encoder_settings, gps_track=tuple(track),
            events=tuple(events), closed_mono_ns=time.monotonic_ns())
        self._frames += len(seg.mono)
        self._on_segment(closed)


class LoresFrames(CaptureBackend):
    """The recorder's lores stream as a CaptureBackend (FrameHub reads it; stills come from main)."""

    name: ClassVar[str] = "picamera2-lores"
    capabilities: ClassVar[frozenset[str]] = frozenset({"still", "h264", "sensor_timestamps"})

    def __init__(self, recorder: Picamera2Recorder, timeout_s: float = 5.0) -> None:
        super().__init__(recorder.settings, recorder.clock)
        self.recorder = recorder
        self.timeout_s = timeout_s
        self._index = 0

    def describe(self) -> str:
        s, pi = self.settings, self.recorder.pi
        if pi.document_stills:
            return (f"picamera2 camera {pi.camera_num} main full sensor (document stills), "
                    f"lores {s.width}x{s.height}@{s.fps:g} H.264")
        return (f"picamera2 camera {pi.camera_num} main {s.width}x{s.height}@{s.fps:g} H.264, "
                f"lores {pi.lores_width}x{pi.lores_height}")

    def _open(self) -> None:
        self.recorder.start()

    def _read(self) -> Frame:
        try:
            item = self.recorder._lores.get(timeout=self.timeout_s)
        except queue.Empty:
            raise CaptureError(f"picamera2 lores stream delivered nothing for {self.timeout_s:g} s") from None
        if item is None:
            raise EndOfStream("picamera2 recorder closed")
        array, wall, mono, meta = item
        pixels, pix = frame_pixels(array, "YUV420")
        frame = Frame(image=pixels, index=self._index, wall_ns=wall, mono_ns=mono, sensor=meta, fmt=pix)
        self._index += 1
        return frame

    def _close(self) -> None:
        pass  # the recorder owns the camera; VideoService/runtime closes it

    def capture_still(self, quality: int = 90) -> bytes:
        return self.recorder.capture_still(quality)

    def zoom_area(self) -> tuple[int, int, int, int] | None:
        return self.recorder.zoom_area()

    def set_view(self, region: ViewRegion) -> tuple[int, int, int, int]:
        return self.recorder.set_view(region)

    def full_frame(self, latest: Frame | None) -> Frame | None:
        return self.recorder.full_frame()

    def sensor_size(self) -> tuple[int, int] | None:
        return self.recorder.sensor_size()
